"""hear_sela.baselines.logmel: shapes, values against the project frontend, timestamps, the HEAR checks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hear_sela import frontend
from hear_sela.baselines import logmel
from hear_sela.config import FrontendConfig
from hear_sela.frontend import LogMel
from helpers.hear_validator import validate


def test_scene_is_mean_and_std_of_the_frontend_log_mel():
    model = logmel.load_model("/path/that/does/not/exist")  # ignored: no weights
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 128, 64)
    audio = torch.rand(3, 16000 + 37) * 2 - 1
    emb = logmel.get_scene_embeddings(audio, model)
    mel = LogMel(FrontendConfig()).log_mel(audio)  # (3, 64, T)
    assert emb.shape == (3, 128) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[:, :64], mel.mean(-1))
    torch.testing.assert_close(emb[:, 64:], mel.std(-1, unbiased=False))
    quiet = logmel.get_scene_embeddings(audio * 0.01, model)
    assert (quiet[:, :64] < emb[:, :64]).all(), "a quieter clip has a lower mean log-mel"


@pytest.mark.parametrize("deltas", [False, True])
def test_timestamps_are_frame_centres_in_ms(deltas):
    model = logmel.load_model(deltas=deltas)
    audio = torch.rand(2, 16000 + 100) * 2 - 1  # 1.00625 s
    emb, ts = logmel.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, 101, 128 if deltas else 64) == (2, 101, model.timestamp_embedding_size)
    assert ts.shape == (2, 101) and ts.dtype == torch.float32
    torch.testing.assert_close(ts[0], torch.arange(101) * 10.0)
    mel = LogMel(FrontendConfig()).log_mel(audio)  # (2, 64, 101): frame t centred on sample 160 t
    torch.testing.assert_close(emb[:, :, :64], mel.transpose(1, 2))
    if deltas:
        ramp = torch.arange(20.0)[None, None, :].expand(1, 64, 20)  # slope 1 per frame
        torch.testing.assert_close(frontend.deltas(ramp)[..., 2:-2], torch.ones(1, 64, 16))


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="hop_ms"):
        logmel.load_model(hop_ms=25)


def test_hear_checks_replica():
    validate("hear_sela.baselines.logmel")


@pytest.mark.integration
def test_real_hear_validator(tmp_path):
    """`python -m hearvalidator.validate hear_sela.baselines.logmel -d cpu`, unchanged."""
    pytest.importorskip("hearvalidator")
    cmd = [sys.executable, "-m", "hearvalidator.validate", "hear_sela.baselines.logmel", "-d", "cpu"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Looks good!" in proc.stdout
