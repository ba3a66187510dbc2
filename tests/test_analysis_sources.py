"""Analysis inputs: reference CSVs, clip means, fresh labels from heads, segment embeddings, --data."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from hear_sela.analysis.metrics import purity
from hear_sela.analysis.sources import (
    clip_mean,
    data_config,
    head_labels,
    mean_log_mel,
    segment_embeddings,
)
from hear_sela.config import Config, ConfigError, FrontendConfig
from hear_sela.data.folder import scan_folder
from hear_sela.data.records import ClipRecord, DataError, match_label_rows, read_labels_table
from hear_sela.objectives.heads import MultiHead


def test_read_labels_csv_fsd50k_schema(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text('fname,labels,mids,split\n64760,"Electric_guitar,Guitar","/m/02sgy,/m/0342h",train\n'
                    '16399,Dog,/m/0bt9lr,val\n')
    table = read_labels_table(path)
    table, mids = table.labels, table.mids
    assert table["64760"] == ("Electric_guitar", "Guitar") and mids == {"Electric_guitar": "/m/02sgy",
                                                                        "Guitar": "/m/0342h", "Dog": "/m/0bt9lr"}
    clips = [ClipRecord("64760", "/fsd/64760.wav"), ClipRecord("16399", "/fsd/16399.wav"),
             ClipRecord("nope", "/fsd/nope.wav")]
    assert match_label_rows(clips, table, path) == [("Electric_guitar", "Guitar"), ("Dog",), ()]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,tags\nx,y\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_labels_table(bad)


def _repeated_names_folder(root, words=("yes", "no", "up"), clips=4):
    """word/<speaker>_nohash_0.wav with the same speakers (file names) in every word's folder, as Speech Commands."""
    rng = np.random.default_rng(0)
    for word in words:
        (root / word).mkdir(parents=True)
        for i in range(clips):
            sf.write(root / word / f"spk{i:02d}_nohash_0.wav", rng.normal(0, 0.1, 1600).astype(np.float32), 16000)
    return scan_folder(root)


def test_labels_csv_matches_the_relative_path_not_the_file_name(tmp_path, caplog):
    records = _repeated_names_folder(tmp_path / "data")
    csv = tmp_path / "labels.csv"  # as docs/data.md says: fname relative to data.root; here with extension
    csv.write_text("fname,labels\n" + "".join(f"{r.clip_id}.wav,{r.clip_id.split('/')[0]}\n" for r in records))
    table = read_labels_table(csv).labels
    words = [r.clip_id.split("/")[0] for r in records]
    got = match_label_rows(records, table, csv)
    assert [lab[0] for lab in got] == words
    # Purity of the folders themselves as clusters against the matched labels: 1 when every clip gets its row.
    # By bare file name all "spk00_nohash_0" took one word's label (purity 1/3 here).
    folders = np.unique(words, return_inverse=True)[1]
    assert purity(folders, np.array([lab[0] for lab in got])) == 1.0
    # Without extension too, and mixed.
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("fname,labels\n" + "".join(f"{r.clip_id}{'.wav' if i % 2 else ''},{w}\n"
                                                for i, (r, w) in enumerate(zip(records, words))))
    assert [lab[0] for lab in match_label_rows(records, read_labels_table(mixed).labels, mixed)] == words


def test_labels_csv_unmatched_unlabelled_and_doubled_rows_are_named(tmp_path, caplog):
    records = _repeated_names_folder(tmp_path / "data", clips=2)
    csv = tmp_path / "labels.csv"
    csv.write_text("fname,labels\nyes/spk00_nohash_0.wav,yes\nspk01_nohash_0,yes\ndown/spk00_nohash_0,down\n")
    with caplog.at_level(logging.WARNING):
        got = match_label_rows(records, read_labels_table(csv).labels, csv)
    assert got[[r.clip_id for r in records].index("yes/spk00_nohash_0")] == ("yes",)
    assert sum(bool(lab) for lab in got) == 1  # the bare name "spk01_nohash_0" is no clip's row
    assert "2 row(s) name no clip" in caplog.text
    assert "spk01_nohash_0" in caplog.text and "down/spk00_nohash_0" in caplog.text
    assert "5 of 6 clips have no row" in caplog.text and "no/spk01_nohash_0" in caplog.text
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("fname,labels\nyes/spk00_nohash_0.wav,yes\nyes/spk00_nohash_0,no\n")
    with pytest.raises(DataError, match=r"doubled.csv.*yes/spk00_nohash_0"):
        match_label_rows(records, read_labels_table(doubled).labels, doubled)


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
    moved, changed = data_config(cfg, [f"data.cache_dir={tmp_path / 'copy'}", "data.on_stale=error"])
    assert not changed and moved.data.cache_dir == str(tmp_path / "copy")  # a copy of the cache: same data
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
