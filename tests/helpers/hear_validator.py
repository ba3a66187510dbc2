"""hear-validator's checks, replicated without tensorflow (hearbenchmark/hear-validator 2021.0.2, and the later
2021.0.6 checks): API functions exist; load_model returns an nn.Module; sample_rate is a HEAR rate; embedding sizes
are ints; timestamp embeddings on white noise are float32 (n, T, D) with (n, T) timestamps at a regular spacing
(deviation < 1e-3 ms), none after the clip's end, hop <= 50 ms, first <= hop, last >= length - hop; scene embeddings
are float32 (n, D)."""

from __future__ import annotations

import importlib

import torch

HEAR_RATES = (16000, 22050, 32000, 44100, 48000)


def validate(module_name: str, model_file_path: str = "") -> None:
    module = importlib.import_module(module_name)
    for fn in ("load_model", "get_timestamp_embeddings", "get_scene_embeddings"):
        assert callable(getattr(module, fn, None)), f"API function {fn} missing"
    model = module.load_model(model_file_path) if model_file_path else module.load_model()
    assert isinstance(model, torch.nn.Module)
    model.to("cpu")
    assert model.sample_rate in HEAR_RATES
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)

    # the validator's lengths; 4 clips where it uses 16 (batching is tested in test_hear_api)
    for n, seconds in ((4, 2.0), (2, 1.07), (2, 1.98), (2, 4.0)):
        audio = torch.rand(n, int(seconds * model.sample_rate)) * 2 - 1
        emb, ts = module.get_timestamp_embeddings(audio, model)
        assert emb.dtype == torch.float32
        assert emb.ndim == 3 and ts.ndim == 2 and emb.shape[:2] == ts.shape and emb.shape[0] == n
        assert emb.shape[2] == model.timestamp_embedding_size
        diff = torch.diff(ts)
        hop = diff.float().mean()
        assert torch.all(torch.abs(diff - hop) < 1e-3), "timestamps not at regular intervals"
        assert hop <= 50.0, f"hop {hop} ms > 50 ms"
        clip_ms = 1000.0 * audio.shape[1] / model.sample_rate
        assert ts.max() <= clip_ms, "timestamp after the end of the clip"
        assert ts[:, 0].max() <= hop, "first timestamp after one hop"
        assert ts[:, -1].min() >= clip_ms - hop, "last timestamp more than one hop before the end"

    for n, seconds in ((8, 3.74), (4, 2.74)):
        audio = torch.rand(n, int(seconds * model.sample_rate)) * 2 - 1
        emb = module.get_scene_embeddings(audio, model)
        assert emb.dtype == torch.float32 and emb.shape == (n, model.scene_embedding_size)
