"""Published BYOL-A weights (a generated state dict of their layout; the real file is never in the repository):
the import computes BYOL-A's AudioNTT2020 function exactly, the export carries BYOL-A's frontend and statistics, and
other files get an error naming the expected keys."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import hear_sela
from hear_sela.byola_import import BYOLA_NORM_MEAN, BYOLA_NORM_STD, EXPECTED_KEYS, byola_bundle, import_byola
from hear_sela.checkpoint import CheckpointError, load_encoder_bundle
from helpers.byola import MELS, D, byola_layout_state, byola_reference


@pytest.fixture
def byola_file(tmp_path):
    path = tmp_path / "AudioNTT2020-BYOLA-64x96d32.pth"
    torch.save(byola_layout_state(), path)
    return path


def test_expected_keys_are_byola_layout():
    assert set(EXPECTED_KEYS) == set(byola_layout_state())


def test_import_computes_byolas_function(byola_file):
    bundle = byola_bundle(byola_file)
    x = torch.randn(3, 1, MELS, 96)  # (B, 1, F, T)
    with torch.no_grad():
        ours = bundle.encoder(x)  # (B, D)
    expected = byola_reference(byola_layout_state(), x)
    assert ours.shape == (3, D)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_export_carries_byolas_frontend_and_loads_everywhere(byola_file, tmp_path):
    out = import_byola(byola_file, tmp_path / "byola.safetensors")
    bundle = load_encoder_bundle(out)
    fe = bundle.config.frontend
    assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.f_min, fe.f_max) == (16000, 1024, 160, 64, 60, 7800)
    assert (fe.norm_mean, fe.norm_std) == (BYOLA_NORM_MEAN, BYOLA_NORM_STD) == (-5.4919195, 5.0389895)
    assert bundle.objective == "byol" and bundle.encoder.embed_dim == D
    x = torch.randn(2, 1, MELS, 40)
    with torch.no_grad():
        torch.testing.assert_close(bundle.encoder(x), byola_reference(byola_layout_state(), x), rtol=1e-5, atol=1e-5)
    audio = torch.rand(2, 16000) * 2 - 1
    direct, exported = hear_sela.load_model(str(byola_file)), hear_sela.load_model(str(out))
    assert direct.scene_embedding_size == D and direct.frontend.cfg.norm_mean == BYOLA_NORM_MEAN
    torch.testing.assert_close(hear_sela.get_scene_embeddings(audio, direct),
                               hear_sela.get_scene_embeddings(audio, exported))


def test_other_keys_get_an_error_naming_the_expected_ones(tmp_path):
    state = byola_layout_state()
    state["fc.6.weight"] = state.pop("fc.3.weight")
    bad = tmp_path / "other.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"other.pth: not a BYOL-A AudioNTT2020 state dict: expected keys "
                                              r"features.\{0,4,8\}.*missing \['fc.3.weight'\].*'fc.6.weight'"):
        byola_bundle(bad)
    torch.save({**byola_layout_state(), "projector.0.weight": torch.zeros(2)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"missing \[\], unexpected \['projector.0.weight'\]"):
        byola_bundle(tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"not a hear_sela checkpoint or export.*; nor a BYOL-A .*expected"):
        hear_sela.load_model(str(bad))
    proc = subprocess.run([sys.executable, "-m", "hear_sela.cli", "import-byola", str(bad), str(tmp_path / "o.st")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "expected keys features.{0,4,8}" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.st").exists()
