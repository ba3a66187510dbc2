"""The smallest layer that lets heareval 2021.1.3 and hearvalidator run on today's stack. Nothing is edited or shadowed.

What breaks, and what this module does about it (docs/hear.md, "The compatibility layer"; each piece has a test in
tests/test_hear_compat.py that fails when it stops working, and one that fails when it stops being needed):

1. Segfault on CPU and GPU: heareval's runners and hearvalidator import tensorflow before the module under test.
   Loading triton's libtriton.so (imported by torch._dynamo, hence by torchvision and timm) after tensorflow
   crashes the process, because it binds to the LLVM symbols tensorflow already loaded. `load_triton_beside_tensorflow`
   (called when hear_sela.hear is imported) loads the real triton with RTLD_DEEPBIND in that situation, so it
   resolves its own symbols. With it, `python -m heareval.embeddings.runner hear_sela` runs unchanged.
2. torch >= 2.6 loads with weights_only=True by default, which refuses heareval's own prediction checkpoints:
   run the predictions runner with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (it concerns heareval's files; ours always
   load with weights_only=True or safetensors).
3. CUDA machines only: heareval.embeddings.runner raises "GPUs not available in tensorflow, but found by pytorch"
   with tensorflow-cpu, and heareval.gpu_max_mem.device_name calls .decode() on the str that pynvml >= 12 returns.
   `python -m hear_sela.heareval_compat embeddings|predictions|validate ARGS` runs heareval's own entry points with
   those two checks fixed in-process, and sets (2) for predictions.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys

WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
ENTRY_POINTS = {
    "embeddings": "heareval.embeddings.runner",
    "predictions": "heareval.predictions.runner",
    "validate": "hearvalidator.validate",
}


def load_triton_beside_tensorflow() -> bool:
    """Import triton with RTLD_DEEPBIND when tensorflow is already loaded (else importing it segfaults).

    Returns True when it did so; a no-op when tensorflow is absent, triton is loaded or not installed, or the
    platform has no RTLD_DEEPBIND (not glibc).
    """
    if ("tensorflow" not in sys.modules or "triton" in sys.modules or not hasattr(os, "RTLD_DEEPBIND")
            or importlib.util.find_spec("triton") is None):
        return False
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import triton  # noqa: F401  (loaded now, with its own symbols, so torch._dynamo's import finds it)
    except ImportError:
        return False  # a broken triton: torch then treats it as absent, as it would anyway
    finally:
        sys.setdlopenflags(flags)
    return True


def patch_cuda_checks(tensorflow_check: bool = True) -> list[str]:
    """Fix heareval's two CUDA-only failures in this process; returns what was patched (nothing on CPU)."""
    import torch

    patched: list[str] = []
    if not torch.cuda.is_available():
        return patched
    if tensorflow_check:
        import tensorflow as tf

        load_triton_beside_tensorflow()
        if not tf.config.list_physical_devices("GPU"):
            # heareval only checks; its embeddings never run in tensorflow for a torch module
            tf.test.is_gpu_available = lambda *args, **kwargs: True
            patched.append("tensorflow GPU check")
    import heareval.gpu_max_mem as gpu_max_mem
    import pynvml

    name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
    if isinstance(name, str):
        gpu_max_mem.device_name = lambda device_index=0: pynvml.nvmlDeviceGetName(
            pynvml.nvmlDeviceGetHandleByIndex(device_index))
        patched.append("gpu_max_mem.device_name")
    return patched


def main(argv: list[str] | None = None) -> None:
    """`python -m hear_sela.heareval_compat embeddings|predictions|validate [heareval's own arguments]`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ENTRY_POINTS:
        sys.exit(f"usage: python -m hear_sela.heareval_compat {{{'|'.join(ENTRY_POINTS)}}} ARGS...\n"
                 "runs heareval's runner (or hearvalidator) with arguments passed through unchanged")
    command, rest = argv[0], argv[1:]
    if command == "predictions":
        os.environ.setdefault(WEIGHTS_ONLY_ENV, "1")
        patch_cuda_checks(tensorflow_check=False)  # this runner never imports tensorflow
    else:
        import tensorflow  # noqa: F401  (the order heareval imports in; then triton must load apart from it)

        load_triton_beside_tensorflow()
        patch_cuda_checks()
    sys.argv = [ENTRY_POINTS[command], *rest]
    runpy.run_module(ENTRY_POINTS[command], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
