"""HEAR `timestamp_mode`: frames = the encoder's own frame features of one pass over the clip, interpolated at each
timestamp; frames_context appends the head's pooling of the frames around it; frames_mel appends the log-mel frame
and its delta; short_windows = shorter windows; all keep HEAR's timestamp rules. Checked against direct
computations on the embedded default weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hear_sela
from hear_sela.frontend import deltas
from hear_sela.hear_frames import interpolate_frames

MODES = ("windows", "short_windows", "frames", "frames_context", "frames_mel")
HOP_MS = {"windows": 50.0, "short_windows": 50.0, "frames": 50.0, "frames_context": 50.0, "frames_mel": 10.0}


def _noise(n: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, round(seconds * 16000), generator=g) * 2 - 1  # (N, S)


@pytest.fixture(scope="module")
def models():
    return {m: hear_sela.load_model(timestamp_mode=m) for m in MODES}


def _direct_frames(model, audio: torch.Tensor) -> np.ndarray:
    """(N, T', D) frame features of one unchunked encoder pass over each whole clip."""
    with torch.no_grad():
        return model.encoder.forward_features(model.frontend(audio).unsqueeze(1)).numpy()


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_keeps_hears_timestamp_rules(models, mode):
    model = models[mode]
    for seconds in (0.05, 1.07, 2.02):
        audio = _noise(2, seconds)
        emb, ts = hear_sela.get_timestamp_embeddings(audio, model)
        hop = HOP_MS[mode]  # frames_mel defaults to the frontend's 10 ms hop, the other modes to 50 ms
        k = math.floor(seconds * 1000 / hop + 1e-9) + 1
        assert emb.shape == (2, k, model.timestamp_embedding_size) and emb.dtype == torch.float32
        torch.testing.assert_close(ts[0], torch.arange(k, dtype=torch.float32) * hop)
        assert torch.isfinite(emb).all()
    d = models["windows"].timestamp_embedding_size
    extra = {"frames_context": d, "frames_mel": 2 * 64}.get(mode, 0)
    assert model.timestamp_embedding_size == d + extra
    assert model.scene_embedding_size == d


def test_frames_are_the_encoders_frames_interpolated_at_each_timestamp(models):
    model = models["frames"]
    audio = _noise(2, 3.3)
    emb, ts = hear_sela.get_timestamp_embeddings(audio, model)
    feats = _direct_frames(model, audio)  # (N, T', D)
    stride, frame_ms = int(model.encoder.time_stride), 10.0
    centres_ms = (np.arange(feats.shape[1]) * stride + (stride - 1) / 2) * frame_ms  # encoder frame centres
    for i in range(2):
        expected = np.stack([np.interp(ts[i].numpy(), centres_ms, feats[i, :, j]) for j in range(feats.shape[2])], -1)
        np.testing.assert_allclose(emb[i].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_frames_of_a_long_clip_are_chunked_without_changing_them():
    chunked = hear_sela.load_model(timestamp_mode="frames", chunk_seconds=2.0)
    whole = hear_sela.load_model(timestamp_mode="frames")
    audio = _noise(1, 12.0, seed=3)
    assert chunked.chunk_frames * 2 < audio.shape[1] / 160  # really chunked
    torch.testing.assert_close(hear_sela.get_timestamp_embeddings(audio, chunked)[0],
                               hear_sela.get_timestamp_embeddings(audio, whole)[0], rtol=1e-4, atol=1e-4)


def test_frames_context_appends_the_heads_pooling_of_the_frames_around_t(models):
    model = models["frames_context"]
    audio = _noise(1, 4.0, seed=1)
    emb, ts = hear_sela.get_timestamp_embeddings(audio, model)
    d = model.scene_embedding_size
    torch.testing.assert_close(emb[..., :d], hear_sela.get_timestamp_embeddings(audio, models["frames"])[0])
    feats = torch.from_numpy(_direct_frames(model, audio))[0]  # (T', D)
    stride = int(model.encoder.time_stride)
    centres = torch.arange(feats.shape[0]) * stride + (stride - 1) / 2  # input frames
    half = model.context_span / 2
    checked = 0
    for k, t in enumerate(ts[0].tolist()):
        near = (centres - t / 10.0).abs() < half  # frames whose centre lies within the context span
        if near.sum() * stride != model.context_span:
            continue  # at the clip's ends the window is clamped
        expected = feats[near].max(0).values + feats[near].mean(0)  # audiontt's head: max + mean over time
        torch.testing.assert_close(emb[0, k, d:], expected, rtol=1e-4, atol=1e-4)
        checked += 1
    assert checked > 20


def test_frames_mel_is_frames_then_the_frontends_log_mel_frame_then_its_delta(models):
    model = models["frames_mel"]
    audio = _noise(2, 2.5, seed=4)
    emb, ts = hear_sela.get_timestamp_embeddings(audio, model)
    d, f = model.scene_embedding_size, 64
    assert emb.shape[-1] == d + 2 * f
    frames = hear_sela.load_model(timestamp_mode="frames", hop_ms=10.0)
    torch.testing.assert_close(emb[..., :d], hear_sela.get_timestamp_embeddings(audio, frames)[0])
    with torch.no_grad():
        mel = model.frontend(audio)  # (N, F, T) normalised, frame t centred at t * 10 ms
    assert mel.shape[-1] == ts.shape[1]  # at the 10 ms hop, one timestamp per frontend frame
    torch.testing.assert_close(emb[..., d:d + f], mel.transpose(1, 2))
    torch.testing.assert_close(emb[..., d + f:], deltas(mel).transpose(1, 2))


def test_frames_mel_between_frames_is_linear_in_the_log_mel_too():
    model = hear_sela.load_model(timestamp_mode="frames_mel", hop_ms=15.0)
    audio = _noise(1, 1.0, seed=5)
    emb, ts = hear_sela.get_timestamp_embeddings(audio, model)
    d, f = model.scene_embedding_size, 64
    with torch.no_grad():
        mel = model.frontend(audio)[0].numpy()  # (F, T)
    pos = ts[0].numpy() / 10.0  # frontend frames
    expected = np.stack([np.interp(pos, np.arange(mel.shape[1]), mel[j]) for j in range(f)], -1)
    np.testing.assert_allclose(emb[0, :, d:d + f].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_scene_embeddings_do_not_depend_on_the_timestamp_mode(models):
    audio = _noise(2, 1.3, seed=6)
    scene = hear_sela.get_scene_embeddings(audio, models["windows"])
    for mode in MODES:
        torch.testing.assert_close(hear_sela.get_scene_embeddings(audio, models[mode]), scene)


def test_short_windows_are_windows_of_short_window_ms(models):
    audio = _noise(1, 1.5, seed=2)
    short = hear_sela.get_timestamp_embeddings(audio, models["short_windows"])[0]
    explicit = hear_sela.load_model(timestamp_mode="windows", window_ms=models["short_windows"].options.short_window_ms)
    torch.testing.assert_close(short, hear_sela.get_timestamp_embeddings(audio, explicit)[0])
    assert models["short_windows"].window_frames < models["windows"].window_frames


def test_interpolate_frames_clamps_at_the_ends():
    feats = torch.arange(4, dtype=torch.float32).reshape(1, 4, 1)  # frame j = j, centred at 8j + 3.5
    out = interpolate_frames(feats, 8, torch.tensor([0.0, 3.5, 7.5, 27.5, 40.0]))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.0, 0.5, 3.0, 3.0]))


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match=r"timestamp_mode='frame' must be one of \['windows', 'short_windows'"):
        hear_sela.load_model(timestamp_mode="frame")
