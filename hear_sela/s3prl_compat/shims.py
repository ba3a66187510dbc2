"""The compatibility shims that let s3prl 0.4.18 run on a current stack (torch >= 2.6, torchaudio >= 2.9,
huggingface_hub >= 1.0), each applied only when its check finds it needed.

Rules: a shim adds what is missing and never replaces something that works; each one says why it exists;
`apply_shims()` returns and records what it applied in this process, so a test can assert the expected set on the
tested stack and notice when an upgrade makes one unnecessary (or breaks one). Nothing under site-packages is edited.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import logging
import pickle
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shim:
    name: str
    why: str
    needed: Callable[[], bool]
    apply: Callable[[], None]


def _missing_module(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


# ---------------------------------------------------------------- torchaudio


def set_audio_backend(backend: str | None) -> None:
    """torchaudio.set_audio_backend stand-in: a no-op, as it already was in torchaudio 2.1-2.8's dispatcher mode."""
    if backend not in (None, "sox_io", "soundfile", "sox"):
        raise ValueError(f"unknown torchaudio backend {backend!r}")


def _needs_set_audio_backend() -> bool:
    import torchaudio

    return not hasattr(torchaudio, "set_audio_backend")


def _add_set_audio_backend() -> None:
    import torchaudio

    torchaudio.set_audio_backend = set_audio_backend


def _needs_sox_effects() -> bool:
    return _missing_module("torchaudio.sox_effects")


def _add_sox_effects() -> None:
    import torchaudio

    from hear_sela.s3prl_compat import sox_effects

    sys.modules["torchaudio.sox_effects"] = sox_effects
    torchaudio.sox_effects = sox_effects


def _needs_load() -> bool:
    # torchaudio.load exists but decodes only through torchcodec; without it every call raises ImportError
    import torchaudio

    from hear_sela.s3prl_compat import audio

    return _missing_module("torchcodec") and torchaudio.load is not audio.load


def _add_load() -> None:
    import torchaudio

    from hear_sela.s3prl_compat import audio

    torchaudio.load = audio.load


# ---------------------------------------------------------------- huggingface_hub


class _RemovedFromHub:
    """Placeholder for a huggingface_hub name removed in 1.0 that s3prl imports at module level. s3prl uses it only
    for `--hub huggingface` and `--push_to_hf_hub` (password login, git-based Repository), which cannot work with
    huggingface_hub >= 1.0 whatever we do; any use raises with that explanation."""

    name = "?"

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"huggingface_hub.{self.name} was removed in huggingface_hub 1.0; s3prl's --hub "
                           "huggingface and --push_to_hf_hub need huggingface_hub < 1.0")

    @classmethod
    def save_token(cls, *args, **kwargs):
        cls()

    @classmethod
    def get_token(cls, *args, **kwargs):
        cls()


def _hub_placeholder(name: str) -> Shim:
    def needed() -> bool:
        import huggingface_hub

        return not hasattr(huggingface_hub, name)

    def apply() -> None:
        import huggingface_hub

        setattr(huggingface_hub, name, type(name, (_RemovedFromHub,), {"name": name, "__module__": __name__}))

    return Shim(f"huggingface_hub.{name}", "removed in huggingface_hub 1.0; imported by s3prl's run_downstream/runner",
                needed, apply)


# ---------------------------------------------------------------- catalyst


def _add_catalyst_sampler() -> None:
    from hear_sela.s3prl_compat import catalyst_sampler

    for parent in ("catalyst", "catalyst.data"):
        stub = types.ModuleType(parent, "hear_sela stand-in: only catalyst.data.sampler.DistributedSamplerWrapper "
                                        "(for s3prl's speech_commands loader); install catalyst for the rest")
        stub.__path__ = []  # a package, so the submodule import resolves from sys.modules
        sys.modules[parent] = stub
    sys.modules["catalyst"].data = sys.modules["catalyst.data"]
    sys.modules["catalyst.data"].sampler = catalyst_sampler
    sys.modules["catalyst.data.sampler"] = catalyst_sampler


# ---------------------------------------------------------------- torch.load


def _needs_namespace_global() -> bool:
    # run_downstream's -e / -i call torch.load(ckpt) without weights_only; since torch 2.6 that means the safe
    # unpickler, which rejects the argparse.Namespace s3prl stores as ckpt["Args"]
    import torch

    buf = io.BytesIO()
    torch.save(argparse.Namespace(), buf)
    buf.seek(0)
    try:
        torch.load(buf)
    except pickle.UnpicklingError:  # "Weights only load failed ... argparse.Namespace"
        return True
    return False


def _add_namespace_global() -> None:
    import torch

    torch.serialization.add_safe_globals([argparse.Namespace])


# ---------------------------------------------------------------- import order


def _needs_triton_first() -> bool:
    # s3prl/__init__ imports torch.utils.tensorboard, which imports tensorflow when it is installed (the [hear]
    # extra installs it); loading triton (torch._dynamo, timm -> our encoders) after tensorflow 2.21 then crashes
    # the process with a segfault (LLVM symbols; see hear_sela.heareval_compat).
    return "triton" not in sys.modules and not _missing_module("triton") and not _missing_module("tensorflow")


def _load_triton() -> None:
    if "tensorflow" in sys.modules:  # s3prl (or tensorflow) came first: load triton with its own symbols
        from hear_sela.heareval_compat import load_triton_beside_tensorflow

        load_triton_beside_tensorflow()
    else:
        importlib.import_module("triton")


SHIMS: tuple[Shim, ...] = (
    Shim("load triton before tensorflow", "tensorflow then triton segfaults; s3prl imports tensorflow",
         _needs_triton_first, _load_triton),
    Shim("torchaudio.set_audio_backend", "removed in torchaudio 2.9; called by s3prl's hub imports and run_downstream",
         _needs_set_audio_backend, _add_set_audio_backend),
    Shim("torchaudio.sox_effects", "removed in torchaudio 2.9; imported by s3prl's hub and speech_commands loader",
         _needs_sox_effects, _add_sox_effects),
    Shim("torchaudio.load", "needs torchcodec since torchaudio 2.9; used by s3prl's voxceleb1 and emotion loaders",
         _needs_load, _add_load),
    _hub_placeholder("HfFolder"),
    _hub_placeholder("Repository"),
    Shim("catalyst.data.sampler", "s3prl's speech_commands loader imports catalyst for one sampler class",
         lambda: _missing_module("catalyst"), _add_catalyst_sampler),
    Shim("torch safe global argparse.Namespace", "torch >= 2.6 loads weights_only by default; s3prl's -e/-i "
         "checkpoints hold an argparse.Namespace", _needs_namespace_global, _add_namespace_global),
)

_applied: list[str] = []  # process-wide by nature: the shims patch process-wide modules


def apply_shims() -> list[str]:
    """Apply every needed shim (idempotent); returns the names applied in this process so far."""
    for shim in SHIMS:
        if shim.name not in _applied and shim.needed():
            shim.apply()
            _applied.append(shim.name)
            log.info("s3prl compat: %s (%s)", shim.name, shim.why)
    return list(_applied)


def needed_shims() -> list[str]:
    """Names of the shims this process still needs (after `apply_shims()`: none)."""
    return [s.name for s in SHIMS if s.needed()]
