"""Published BYOL-A weights (a generated state dict of their layout; the real file is never in the repository):
the import computes BYOL-A's AudioNTT2020 function exactly, the export carries BYOL-A's frontend and statistics, and
other files get an error naming the expected keys."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import hear_sela
from hear_sela.byola_import import BYOLA_NORM_MEAN, BYOLA_NORM_STD, EXPECTED_KEYS, byola_bundle, import_byola
from hear_sela.checkpoint import CheckpointError, load_encoder_bundle

D, C, MELS = 32, 16, 64


def byola_layout_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under BYOL-A's keys: features.{0,4,8} conv, features.{1,5,9} BatchNorm, fc.{0,3} linear."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for conv, bn, c_in in ((0, 1, 1), (4, 5, C), (8, 9, C)):
        state[f"features.{conv}.weight"] = torch.randn(C, c_in, 3, 3, generator=g) / 3
        state[f"features.{conv}.bias"] = torch.randn(C, generator=g) * 0.1
        state[f"features.{bn}.weight"] = 1 + 0.2 * torch.randn(C, generator=g)
        state[f"features.{bn}.bias"] = 0.1 * torch.randn(C, generator=g)
        state[f"features.{bn}.running_mean"] = 0.1 * torch.randn(C, generator=g)
        state[f"features.{bn}.running_var"] = 0.5 + torch.rand(C, generator=g)
        state[f"features.{bn}.num_batches_tracked"] = torch.tensor(1000)
    state["fc.0.weight"] = torch.randn(D, C * MELS // 8, generator=g) / 10
    state["fc.0.bias"] = torch.randn(D, generator=g) * 0.1
    state["fc.3.weight"] = torch.randn(D, D, generator=g) / 5
    state["fc.3.bias"] = torch.randn(D, generator=g) * 0.1
    return state


def byola_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """BYOL-A's AudioNTT2020 forward as its paper and byol_a/models.py describe it, on the raw state dict:
    (B, 1, F, T) -> conv blocks -> (B, T', F', C) flattened frequency-major -> fc -> max + mean over time (B, D)."""
    for conv, bn in ((0, 1), (4, 5), (8, 9)):
        x = F.conv2d(x, state[f"features.{conv}.weight"], state[f"features.{conv}.bias"], padding=1)
        x = F.batch_norm(x, state[f"features.{bn}.running_mean"], state[f"features.{bn}.running_var"],
                         state[f"features.{bn}.weight"], state[f"features.{bn}.bias"], training=False, eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2, 2)
    x = x.permute(0, 3, 2, 1)  # (B, T', F', C)
    x = x.reshape(x.shape[0], x.shape[1], -1)  # (B, T', F' * C)
    x = F.relu(F.linear(x, state["fc.0.weight"], state["fc.0.bias"]))
    x = F.relu(F.linear(x, state["fc.3.weight"], state["fc.3.bias"]))  # (B, T', D)
    return x.max(dim=1).values + x.mean(dim=1)


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
