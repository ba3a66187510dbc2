"""examples/fusion_module: a HEAR module wrapping hear_sela, imported by name as heareval imports modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

import hear_sela
from hear_sela.checkpoint import encoder_checkpoint_state, save_checkpoint
from hear_sela.config import config_from_dict
from hear_sela.encoders import build_encoder

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "fusion_module"


@pytest.fixture(scope="module")
def fusion(tmp_path_factory):
    sys.path.insert(0, str(EXAMPLE_DIR))
    try:
        module = importlib.import_module("hear_sela_fusion")  # what heareval's Embedding does
    finally:
        sys.path.remove(str(EXAMPLE_DIR))
    cfg = config_from_dict({"model": {"encoder": "audiontt_d512"}})
    ckpt = tmp_path_factory.mktemp("fusion") / "m.pt"
    save_checkpoint(ckpt, encoder_checkpoint_state(cfg, build_encoder(cfg)))
    return module, str(ckpt)


def test_fusion_module_follows_the_hear_api(fusion):
    module, ckpt = fusion
    model = module.load_model(ckpt, hop_ms=25)  # options pass through to hear_sela
    assert isinstance(model, torch.nn.Module) and model.sample_rate == 16000
    assert model.scene_embedding_size == 512 + 128 and model.timestamp_embedding_size == 512 + 64
    x = torch.rand(3, 24000) * 2 - 1
    scene = module.get_scene_embeddings(x, model)
    emb, ts = module.get_timestamp_embeddings(x, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == torch.float32
    assert emb.shape == (3, 61, model.timestamp_embedding_size) and ts.shape == (3, 61)
    # the hear_sela part is hear_sela's own output, untouched
    sela = hear_sela.load_model(ckpt, hop_ms=25)
    torch.testing.assert_close(scene[:, :512], hear_sela.get_scene_embeddings(x, sela))
    sela_emb, sela_ts = hear_sela.get_timestamp_embeddings(x, sela)
    torch.testing.assert_close(emb[..., :512], sela_emb)
    torch.testing.assert_close(ts, sela_ts)
    # the baseline part moves with the audio: a louder clip has a higher mean log-mel
    louder = module.get_scene_embeddings(x * 4, model)
    assert (louder[:, 512:576] > scene[:, 512:576]).all()


def test_fusion_module_inherits_input_validation(fusion):
    module, ckpt = fusion
    model = module.load_model(ckpt)
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        module.get_scene_embeddings(torch.zeros(16000), model)
    emb, ts = module.get_timestamp_embeddings(torch.zeros(0, 16000), model)
    assert emb.shape == (0, 21, model.timestamp_embedding_size)
