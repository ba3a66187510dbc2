"""The one segment-embedding path (`embed.embed_segments`): the label update's view of a segment is the HEAR
module's, and it is normalised with the frontend's statistics. Legend: N segments, F mel bins, T frames, D."""

from __future__ import annotations

import numpy as np
import torch

from hear_sela.checkpoint import encoder_checkpoint_state, save_checkpoint
from hear_sela.config import config_from_dict
from hear_sela.embed import embed_segments
from hear_sela.encoders import build_encoder
from hear_sela.hear import get_scene_embeddings, load_model

STATS = {"norm_mean": -6.0, "norm_std": 2.5}  # far from (0, 1), so leaving them out changes the embedding


def _checkpoint(tmp_path, **frontend):
    cfg = config_from_dict({"frontend": {**STATS, **frontend},
                            "model": {"encoder": "audiontt", "encoder_kwargs": {"d": 32, "channels": 4}}})
    torch.manual_seed(0)
    encoder = build_encoder(cfg)
    path = save_checkpoint(tmp_path / "ckpt.pt", encoder_checkpoint_state(cfg, encoder))
    return cfg, path


def test_hear_scene_embedding_of_a_segment_equals_the_label_update_embedding(tmp_path):
    cfg, path = _checkpoint(tmp_path)
    model = load_model(str(path))
    wav = torch.randn(3, 16000, generator=torch.Generator().manual_seed(1)) * 0.1  # three 1 s segments
    features = model.frontend.log_mel(wav).numpy()  # (N, F, T) un-normalised, as the feature cache stores them
    label_update = embed_segments(model.encoder, features, cfg.frontend, 2, torch.device("cpu"))  # (N, D)
    hear = get_scene_embeddings(wav, model)  # (N, D)
    torch.testing.assert_close(label_update, hear, atol=1e-5, rtol=1e-5)


def test_label_update_embedding_is_normalised_by_the_frontend(tmp_path):
    cfg, _ = _checkpoint(tmp_path)
    torch.manual_seed(0)
    encoder = build_encoder(cfg).eval()
    features = np.random.default_rng(0).normal(-6.0, 2.5, size=(4, 64, 96)).astype(np.float16)  # (N, F, T)
    got = embed_segments(encoder, features, cfg.frontend, 3, torch.device("cpu"))
    x = torch.from_numpy(features).float().unsqueeze(1)  # (N, 1, F, T)
    with torch.no_grad():
        want = encoder((x - STATS["norm_mean"]) / STATS["norm_std"])
        raw = encoder(x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert (got - raw).abs().max() > 1e-2  # the statistics matter for this input
