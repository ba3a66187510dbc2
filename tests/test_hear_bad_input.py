"""Bad or unusual input to the HEAR API: each case gives a clear error or a correct result.

Decisions (docs/hear.md, "What it computes"): audio must be a 2-D (n_sounds, n_samples) floating tensor; float32 is the
HEAR type, other float dtypes (float64, float16) are cast to float32; integer PCM, other ranks, NaN/inf and zero-length
clips raise ValueError; an empty batch returns empty embeddings; clips shorter than the encoder's input are padded with
silence.
"""

from __future__ import annotations

import resource

import numpy as np
import pytest
import torch

import hear_sela

SR = 16000


@pytest.fixture(scope="module")
def model():
    return hear_sela.load_model()  # the embedded default weights


def _both(audio, model):
    hear_sela.get_scene_embeddings(audio, model)
    hear_sela.get_timestamp_embeddings(audio, model)


def test_one_dimensional_audio_is_refused_with_a_hint(model):
    with pytest.raises(ValueError, match=r"\(n_sounds, n_samples\).*\(16000,\).*audio\[None\]"):
        _both(torch.zeros(SR), model)


def test_three_dimensional_audio_is_refused(model):
    with pytest.raises(ValueError, match=r"\(2, 2, 16000\).*mono"):
        _both(torch.zeros(2, 2, SR), model)


def test_int16_audio_is_refused_with_the_conversion(model):
    with pytest.raises(ValueError, match=r"torch.int16.*32768"):
        _both(torch.zeros(1, SR, dtype=torch.int16), model)


def test_float64_is_cast_and_gives_the_float32_result(model):
    x = torch.rand(2, SR, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(hear_sela.get_scene_embeddings(x, model),
                               hear_sela.get_scene_embeddings(x.float(), model), rtol=0, atol=0)
    e64, t64 = hear_sela.get_timestamp_embeddings(x, model)
    e32, t32 = hear_sela.get_timestamp_embeddings(x.float(), model)
    assert e64.dtype == torch.float32
    torch.testing.assert_close(e64, e32, rtol=0, atol=0)
    torch.testing.assert_close(t64, t32, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_audio_names_the_sound(model, bad):
    x = torch.zeros(3, SR)
    x[2, 100] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite.*\[2\]"):
        _both(x, model)


def test_numpy_input_is_a_type_error(model):
    with pytest.raises(TypeError, match="torch.Tensor"):
        hear_sela.get_scene_embeddings(np.zeros((1, SR), dtype=np.float32), model)


def test_foreign_model_is_a_type_error():
    with pytest.raises(TypeError, match="load_model"):
        hear_sela.get_scene_embeddings(torch.zeros(1, SR), torch.nn.Linear(2, 2))


def test_empty_batch_gives_empty_embeddings(model):
    x = torch.zeros(0, SR)
    assert hear_sela.get_scene_embeddings(x, model).shape == (0, model.scene_embedding_size)
    emb, ts = hear_sela.get_timestamp_embeddings(x, model)
    assert emb.shape == (0, 21, model.timestamp_embedding_size) and ts.shape == (0, 21)


def test_zero_length_audio_is_refused(model):
    with pytest.raises(ValueError, match="zero samples"):
        _both(torch.zeros(2, 0), model)


def test_ten_milliseconds_of_audio(model):
    """160 samples: shorter than the encoder's 8-frame input, so it is padded with silence; one timestamp at 0 ms."""
    x = torch.rand(2, 160) * 2 - 1
    scene = hear_sela.get_scene_embeddings(x, model)
    emb, ts = hear_sela.get_timestamp_embeddings(x, model)
    assert scene.shape == (2, model.scene_embedding_size) and torch.isfinite(scene).all()
    assert emb.shape == (2, 1, model.timestamp_embedding_size) and torch.isfinite(emb).all()
    assert ts.tolist() == [[0.0], [0.0]]
    # the result is that of the clip followed by silence: the 2 log-mel frames of the clip, then silence frames
    logmel = model.frontend(x)[..., :2]  # (2, F, 2): frames centred on samples 0 and 160
    padded = torch.nn.functional.pad(logmel, (0, model.encoder.min_frames - 2), value=model.silence)
    with torch.no_grad():
        torch.testing.assert_close(scene, model.encoder(padded.unsqueeze(1)))
    assert not torch.allclose(scene[0], scene[1])  # different clips still give different embeddings


@pytest.mark.slow
def test_thirty_minutes_of_audio(model):
    """30 min at 16 kHz: chunked scene embedding equal to the per-chunk definition, bounded memory, all timestamps."""
    seconds = 30 * 60
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, seconds * SR, generator=g) * 2 - 1) * 0.1  # (1, 28.8 M) = 115 MB
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    scene = hear_sela.get_scene_embeddings(x, model)
    emb, ts = hear_sela.get_timestamp_embeddings(x, model)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    k = seconds * 1000 // 50 + 1
    assert scene.shape == (1, model.scene_embedding_size) and torch.isfinite(scene).all()
    assert emb.shape == (1, k, model.timestamp_embedding_size) and torch.isfinite(emb).all()
    assert ts[0, -1].item() == seconds * 1000.0 and ts[0, 1].item() == 50.0
    # input 0.1 GiB + timestamp output 0.3 GiB; one unchunked pass would need > 20 GiB of activations
    assert peak - rss0 < 4.0, f"peak memory grew by {peak - rss0:.1f} GiB"
    # the first minute of the clip embeds like the same minute on its own only through its own frames
    head = hear_sela.get_timestamp_embeddings(x[:, :60 * SR], model)[0]
    torch.testing.assert_close(emb[:, :1000], head[:, :1000], rtol=1e-4, atol=1e-5)


def test_load_model_on_a_directory_says_it_is_one(tmp_path):
    from hear_sela.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=r"is a directory, not a model file; .*final.pt"):
        hear_sela.load_model(str(tmp_path))
