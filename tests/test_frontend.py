"""LogMel: shapes, where a pure tone lands, backend agreement, normalisation, input checks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from hear_sela.config import FRONTEND_PRESETS, FrontendConfig
from hear_sela.frontend import LogMel, mel_filterbank

PRESETS = sorted(FRONTEND_PRESETS)
BACKENDS = ["nnaudio", "torchaudio"]
# The two backends compute the same Slaney filterbank on the same centred, reflect-padded Hann STFT; measured max
# |difference| of log-mel on synth audio is 2e-4 (float32 STFT rounding), so 1e-3 is the stated tolerance.
BACKEND_TOL = 1e-3


def _cfg(preset: str, backend: str = "nnaudio", **kw) -> FrontendConfig:
    return FrontendConfig(**{**FRONTEND_PRESETS[preset], "backend": backend, **kw})


def _sine(freq: float, seconds: float = 1.0, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", PRESETS)
def test_shapes_and_frame_count(preset, backend):
    cfg = _cfg(preset, backend)
    lm = LogMel(cfg)
    for n in (16000, 12345, 48000):
        out = lm(torch.randn(3, n) * 0.1)
        assert out.shape == (3, cfg.n_mels, n // cfg.hop_length + 1) == (3, cfg.n_mels, lm.num_frames(n))
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert lm.frame_rate == cfg.sample_rate / cfg.hop_length


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("freq", [1000.0, 250.0, 3000.0])
def test_sine_peaks_at_the_mel_bin_whose_filter_peaks_there(preset, backend, freq):
    cfg = _cfg(preset, backend)
    fb = mel_filterbank(cfg)  # (n_fft // 2 + 1, F)
    fft_bin = round(freq * cfg.n_fft / cfg.sample_rate)
    expected = int(fb[fft_bin].argmax())
    spec = LogMel(cfg).log_mel(_sine(freq)[None])[0]  # (F, T)
    assert int(spec.mean(dim=1).argmax()) == expected
    # and that filter is centred near the tone: closer to it than half the spacing of its neighbours' centres
    centres = fb.argmax(dim=0).double() * cfg.sample_rate / cfg.n_fft  # (F,) Hz
    spacing = (centres[expected + 1] - centres[expected - 1]) / 2
    assert abs(centres[expected] - freq) <= spacing / 2 + cfg.sample_rate / cfg.n_fft


@pytest.mark.parametrize("preset", PRESETS)
def test_backends_agree(preset):
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    x = np.stack([rng.normal(0, 0.1, 32000), 0.3 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.01, 32000),
                  np.zeros(32000)]).astype(np.float32)
    a = LogMel(_cfg(preset, "nnaudio")).log_mel(torch.from_numpy(x))
    b = LogMel(_cfg(preset, "torchaudio")).log_mel(torch.from_numpy(x))
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < BACKEND_TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_silence_is_log_eps_everywhere(backend):
    """The feature cache zero-pads segments in the waveform; that must give exactly log(eps), as real silence does."""
    cfg = _cfg("byola", backend)
    out = LogMel(cfg).log_mel(torch.zeros(2, 8000))
    assert torch.allclose(out, torch.full_like(out, math.log(cfg.eps)))


def test_normalize_uses_config_stats_and_is_identity_without():
    x = torch.randn(2, 16000) * 0.1
    raw = LogMel(_cfg("byola")).log_mel(x)
    assert torch.equal(LogMel(_cfg("byola"))(x), raw)
    normed = LogMel(_cfg("byola", norm_mean=-5.0, norm_std=2.5))(x)
    assert torch.allclose(normed, (raw + 5.0) / 2.5)


def test_louder_input_gives_larger_log_mel():
    x = torch.randn(1, 16000) * 0.01
    lm = LogMel(_cfg("byola"))
    # power scales by gain**2, so the log-mel rises by 2 log(gain) wherever the signal dominates eps
    diff = (lm.log_mel(10 * x) - lm.log_mel(x)).median()
    assert abs(diff.item() - 2 * math.log(10)) < 0.05


def test_short_input_is_padded_not_rejected():
    lm = LogMel(_cfg("byola"))
    out = lm.log_mel(torch.randn(1, 100))
    assert out.shape == (1, 64, lm.num_frames(lm.cfg.n_fft // 2 + 1))


def test_input_checks():
    lm = LogMel(_cfg("byola"))
    with pytest.raises(ValueError, match="batch, samples"):
        lm.log_mel(torch.zeros(16000))
    with pytest.raises(ValueError, match="Nyquist"):
        LogMel(replace(_cfg("byola"), f_max=9000.0))
    with pytest.raises(ValueError, match="backend"):
        LogMel(replace(_cfg("byola"), backend="librosa"))


def test_presets_match_published_settings():
    byola, sela = _cfg("byola"), _cfg("sela_audio")
    assert (byola.n_fft, byola.hop_length, byola.n_mels, byola.f_min, byola.f_max) == (1024, 160, 64, 60.0, 7800.0)
    assert (sela.n_fft, sela.hop_length, sela.n_mels, sela.f_min, sela.f_max) == (512, 320, 64, 50.0, 8000.0)
