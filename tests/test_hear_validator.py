"""hear-validator's checks, replicated without tensorflow (helpers/hear_validator.py says which), plus the real
validator as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers.hear_validator import validate


def test_replica_passes_with_default_weights():
    validate("hear_sela")


def test_replica_passes_with_a_checkpoint(resnet18_checkpoint):
    validate("hear_sela", resnet18_checkpoint)


def test_replica_catches_a_broken_module(monkeypatch):
    """The replica is not vacuous: timestamps in seconds instead of ms fail it."""
    import hear_sela.hear as hear

    real = hear.get_timestamp_embeddings
    monkeypatch.setattr(hear, "get_timestamp_embeddings", lambda a, m: (real(a, m)[0], real(a, m)[1] / 1000 + 7))
    with pytest.raises(AssertionError, match="first|regular|after"):
        validate("hear_sela")


@pytest.mark.integration
@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_real_hear_validator(resnet18_checkpoint, with_checkpoint, tmp_path):
    """`python -m hearvalidator.validate hear_sela [-m CKPT] -d cpu`, unchanged (it imports tensorflow first)."""
    pytest.importorskip("hearvalidator")
    cmd = [sys.executable, "-m", "hearvalidator.validate", "hear_sela", "-d", "cpu"]
    if with_checkpoint:
        cmd += ["-m", resnet18_checkpoint]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Looks good!" in proc.stdout
