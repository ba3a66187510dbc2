"""hear_sela: self-labeling audio representation learning (SeLa) with a BYOL-A baseline."""

import warnings

__version__ = "0.1.0"

# torch imports pynvml when it is installed (heareval depends on it) and pynvml 13 warns on import; the warning is
# about the environment, not about anything a user of hear_sela can act on.
warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)

# The HEAR 2021 API (heareval: `python -m heareval.embeddings.runner hear_sela`). Resolved on first access, so
# `import hear_sela` (and `hear-sela --help`) does not import torch.
_HEAR_API = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
__all__ = ["__version__", *_HEAR_API]


def __getattr__(name: str):
    if name in _HEAR_API:
        from hear_sela import hear

        return getattr(hear, name)
    raise AttributeError(f"module 'hear_sela' has no attribute {name!r}")
