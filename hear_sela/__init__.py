"""hear_sela: self-labeling audio representation learning (SeLa) with a BYOL-A baseline."""

__version__ = "0.1.0"

# The HEAR 2021 API (heareval: `python -m heareval.embeddings.runner hear_sela`). Resolved on first access, so
# `import hear_sela` (and `hear-sela --help`) does not import torch.
_HEAR_API = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
__all__ = ["__version__", *_HEAR_API]


def __getattr__(name: str):
    if name in _HEAR_API:
        from hear_sela import hear

        return getattr(hear, name)
    raise AttributeError(f"module 'hear_sela' has no attribute {name!r}")
