"""hear_sela.heareval_compat: each piece works, and a second test per piece fails once upstream makes it unneeded."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hear_sela import heareval_compat
from hear_sela.checkpoint import CheckpointError

needs_tf_and_triton = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("triton") is None,
    reason="the tensorflow-then-triton crash needs both installed (torch CUDA wheels bring triton)",
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=300)


# ---------------------------------------------------------------- 1. triton after tensorflow


@pytest.mark.integration  # imports heareval's runner
@needs_tf_and_triton
def test_heareval_import_order_works(resnet18_checkpoint):
    """heareval's order: tensorflow, torch, then our module, whose encoders import timm -> torch._dynamo -> triton."""
    proc = _python(f"""
        import tensorflow, torch
        import hear_sela
        model = hear_sela.load_model({resnet18_checkpoint!r})
        import timm, torch._dynamo  # what crashed
        print(hear_sela.get_scene_embeddings(torch.zeros(1, 16000), model).shape)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.Size([1, 512])" in proc.stdout


@pytest.mark.integration  # imports tensorflow
@needs_tf_and_triton
def test_triton_after_tensorflow_still_crashes_without_the_fix():
    """When this fails, tensorflow and triton coexist again: drop load_triton_beside_tensorflow."""
    proc = _python("import tensorflow\nimport triton\nprint('imported')")
    assert proc.returncode != 0 and "imported" not in proc.stdout, (
        "importing triton after tensorflow works now: load_triton_beside_tensorflow is no longer needed")


def test_triton_preload_only_acts_after_tensorflow(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert heareval_compat.load_triton_beside_tensorflow() is False
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    monkeypatch.setitem(sys.modules, "triton", object())  # already loaded: nothing to do
    assert heareval_compat.load_triton_beside_tensorflow() is False


# ---------------------------------------------------------------- 2. heareval's own checkpoints and weights_only


def _heareval_like_checkpoint(path) -> None:
    # heareval's PL checkpoints keep its hyper-parameters, which include classes such as torch.nn.Identity
    torch.save({"epoch": 3, "hyper_parameters": {"embedding_norm": torch.nn.Identity}}, path)


def test_weights_only_override_loads_heareval_checkpoints(tmp_path, monkeypatch):
    path = tmp_path / "epoch=3.ckpt"
    _heareval_like_checkpoint(path)
    monkeypatch.setenv(heareval_compat.WEIGHTS_ONLY_ENV, "1")
    with pytest.warns(UserWarning, match="forcing weights_only=False"):  # what the variable does, said by torch
        assert torch.load(path)["epoch"] == 3  # the call heareval makes, unchanged


def test_weights_only_default_still_refuses_heareval_checkpoints(tmp_path, monkeypatch):
    """When this fails, torch.load accepts heareval's checkpoints again: the env var is no longer needed."""
    path = tmp_path / "epoch=3.ckpt"
    _heareval_like_checkpoint(path)
    monkeypatch.delenv(heareval_compat.WEIGHTS_ONLY_ENV, raising=False)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path)


def test_weights_only_override_does_not_weaken_our_loading(tmp_path, monkeypatch):
    """Our loader passes weights_only=True explicitly, which the environment variable cannot override."""
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "hear_sela.export", "config": {}, "encoder": {}, "module": torch.nn.Identity()}, foreign)
    monkeypatch.setenv(heareval_compat.WEIGHTS_ONLY_ENV, "1")
    import hear_sela

    with pytest.raises(CheckpointError, match="foreign.pt"):
        hear_sela.load_model(str(foreign))


# ---------------------------------------------------------------- 3. the CUDA-machine wrapper


def test_cuda_patches_do_nothing_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    assert heareval_compat.patch_cuda_checks() == []


@pytest.mark.integration
def test_wrapper_runs_heareval_entry_points():
    proc = subprocess.run([sys.executable, "-m", "hear_sela.heareval_compat", "embeddings", "--help"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--tasks-dir" in proc.stdout and "--model-options" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "hear_sela.heareval_compat", "embed"], capture_output=True, text=True)
    assert bad.returncode != 0 and "embeddings|predictions|validate" in bad.stderr


@pytest.mark.gpu
def test_cuda_checks_fail_unpatched_and_pass_patched():
    """On a CUDA machine with tensorflow-cpu: heareval's runner refuses to import, and device_name() calls .decode()
    on a str; patched, both work. When the unpatched half passes, that patch is no longer needed."""
    pytest.importorskip("heareval")
    unpatched = _python("import heareval.embeddings.runner")
    tf_sees_gpu = _python("import tensorflow as tf; assert tf.config.list_physical_devices('GPU')").returncode == 0
    if not tf_sees_gpu:
        assert "GPUs not available in tensorflow" in unpatched.stderr
    patched = _python("""
        from hear_sela import heareval_compat
        import tensorflow
        heareval_compat.load_triton_beside_tensorflow()
        print(heareval_compat.patch_cuda_checks())
        import heareval.embeddings.runner
        import heareval.gpu_max_mem as g
        print(type(g.device_name()).__name__)
    """)
    assert patched.returncode == 0, patched.stderr[-3000:]
    assert patched.stdout.strip().endswith("str")
