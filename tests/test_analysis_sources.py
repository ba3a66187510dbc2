"""Analysis inputs: reference CSVs, clip means, fresh labels from heads, segment embeddings, --data."""

import numpy as np
import pytest
import torch

from hear_sela.analysis.sources import (
    clip_mean,
    data_config,
    head_labels,
    match_labels,
    mean_log_mel,
    segment_embeddings,
)
from hear_sela.config import Config, ConfigError, FrontendConfig
from hear_sela.data.records import read_labels_table
from hear_sela.objectives.sela_parts import MultiHead


def test_read_labels_csv_fsd50k_schema(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text('fname,labels,mids,split\n64760,"Electric_guitar,Guitar","/m/02sgy,/m/0342h",train\n'
                    '16399,Dog,/m/0bt9lr,val\n')
    table = read_labels_table(path)
    table, mids = table.labels, table.mids
    assert table["64760"] == ("Electric_guitar", "Guitar") and mids == {"Electric_guitar": "/m/02sgy",
                                                                        "Guitar": "/m/0342h", "Dog": "/m/0bt9lr"}
    assert match_labels(["64760.wav", "16399", "nope"], table) == [("Electric_guitar", "Guitar"), ("Dog",), ()]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,tags\nx,y\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_labels_table(bad)


def test_clip_mean():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0]])
    out = clip_mean(values, np.array([0, 0, 2]), n_clips=3)
    assert out.tolist() == [[2.0, 3.0], [0.0, 0.0], [10.0, 10.0]]


def test_head_labels_argmax_and_confidence():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (S, D)
    weight = torch.tensor([[[2.0, 0.0], [0.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]])  # (H=2, K=2, D=2)
    bias = torch.tensor([[0.0, 0.1], [0.0, 1.0]])
    heads = MultiHead(dim=2, heads=2, clusters=2)
    with torch.no_grad():
        heads.weight.copy_(weight)
        heads.bias.copy_(bias)
    lab, conf = head_labels(emb, heads, chunk=2)
    assert lab.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert conf[0, 0] == pytest.approx(np.exp(2) / (np.exp(2) + np.exp(0.1)))
    assert conf[1] == pytest.approx([np.e / (1 + np.e)] * 3)


def test_segment_embeddings_normalises_like_the_label_update():
    class Probe(torch.nn.Module):
        def forward(self, x):  # (B, 1, F, T) -> (B, 2)
            return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], -1)

    feats = np.random.default_rng(0).normal(5.0, 2.0, (5, 4, 50)).astype(np.float16)
    out = segment_embeddings(Probe(), feats, FrontendConfig(norm_mean=5.0, norm_std=2.0), 2, torch.device("cpu"))
    assert out.shape == (5, 2)
    assert np.abs(out[:, 0]).max() < 0.5 and np.abs(out[:, 1] - 1).max() < 0.3


def test_data_config(tmp_path):
    cfg = Config()
    same, changed = data_config(cfg, [])
    assert not changed and same == cfg
    new, changed = data_config(cfg, ["data.split=eval", "data.synth.clips_per_class=3"])
    assert changed and new.data.split == "eval" and new.data.synth.clips_per_class == 3
    assert new.frontend == cfg.frontend
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  source: folder\n  root: /x\ntrain:\n  epochs: 3\n")
    new, changed = data_config(cfg, [str(recipe)])
    assert changed and new.data.source == "folder" and new.train.epochs == cfg.train.epochs
    with pytest.raises(ConfigError, match="only data"):
        data_config(cfg, ["train.epochs=3"])
    with pytest.raises(ConfigError, match="missing.yaml"):
        data_config(cfg, ["missing.yaml"])


def test_mean_log_mel_skips_padding():
    feats = np.zeros((3, 2, 4), dtype=np.float16)
    feats[:, :, :2] = 1.0
    feats[:, :, 2:] = -16.0  # padding: log(eps)
    assert mean_log_mel(feats, frames=np.array([2, 2, 4]), batch_size=2).tolist() == [[1, 1], [1, 1], [-7.5, -7.5]]
    assert mean_log_mel(feats)[0].tolist() == [-7.5, -7.5]
