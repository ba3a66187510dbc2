"""`hear-sela analyze` end to end on a tiny SeLa checkpoint in the training loop's format (encoder, config, heads,
label store), over a tiny synth corpus and its feature cache (conftest's tiny_sela_run)."""

import json

import pandas as pd
import pytest

from hear_sela.cli import main as cli
from hear_sela.data.segment_labels import LABEL_COLUMNS
from hear_sela.training.state import read_checkpoint


def test_analyze_command(tiny_sela_run, capsys):
    root, cache = tiny_sela_run
    out = root / "analysis"
    assert cli(["analyze", str(root / "final.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SeLa head 0" in printed and "k-means: untrained encoder" in printed and "report.md" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segments"] == len(cache) and summary["heads"] == 2 and summary["clusters"] == 8
    assert "label store" in summary["source"]
    metrics = pd.read_csv(out / "metrics.csv").set_index("method")
    assert set(metrics["reference"]) == {"labels"}  # synth class names are not AudioSet classes
    assert {"k-means: trained encoder", "k-means: untrained encoder", "k-means: mean log-mel"} <= set(metrics.index)
    # head 0 carries the generating class (mod 8), head 1 the shuffled initial labels
    assert metrics.loc["SeLa head 0", "nmi"] > metrics.loc["SeLa head 1", "nmi"]
    seg = pd.read_csv(out / "labels.csv")
    assert len(seg) == 2 * len(cache)
    stored = read_checkpoint(root / "final.pt").label_store.labels
    first = seg[seg["head"] == 0].set_index(["clip_id", "segment"])["label"]
    clip0 = cache.clips[0].clip_id
    assert first.loc[(clip0, 0)] == int(stored[0, 0])
    for name in ("report.md", "heatmap.png", "cluster_sizes.png", "embedding_map.png", "clusters.csv",
                 "label_best_cluster.csv", "clip_labels.csv"):
        assert (out / name).is_file(), name


def test_labels_and_analyze_write_one_labels_csv_format(tiny_sela_run):
    """`hear-sela labels` and `hear-sela analyze` write labels.csv with the same columns and rows for one run."""
    root, cache = tiny_sela_run
    assert cli(["labels", str(root / "final.pt"), "--stored", "--cache", str(cache.root),
                "--out", str(root / "stored_labels.csv")]) == 0
    if not (root / "analysis" / "labels.csv").is_file():
        assert cli(["analyze", str(root / "final.pt"), "--out", str(root / "analysis")]) == 0
    from_labels = pd.read_csv(root / "stored_labels.csv")
    from_analyze = pd.read_csv(root / "analysis" / "labels.csv")
    assert list(from_labels.columns) == list(from_analyze.columns) == list(LABEL_COLUMNS)
    pd.testing.assert_frame_equal(from_labels, from_analyze)


def test_analyze_other_data_uses_the_heads(tiny_sela_run):
    root, _ = tiny_sela_run
    out = root / "other"
    args = ["analyze", str(root / "final.pt"), "--out", str(out), "--data", "data.synth.seed=5",
            "--data", f"data.root={root / 'corpus5'}", "--data", f"data.cache_dir={root / 'cache5'}"]
    assert cli(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "heads' argmax" in summary["source"]
    conf = pd.read_csv(out / "labels.csv")["confidence"]
    assert ((conf > 0) & (conf <= 1)).all() and conf.nunique() > 1  # softmax maxima, not the stored 0.9 / 1.0


def _unlabelled_folder(cache, folder):
    """A few of the corpus's WAVs in a folder with no labels CSV: data a user has no annotations for."""
    import shutil

    folder.mkdir()
    for clip in cache.clips[:6]:
        shutil.copy(clip.path, folder / f"{clip.clip_id.replace('/', '_')}.wav")
    return folder


def test_analyze_without_labels_reports_what_it_can(tiny_sela_run, capsys, caplog):
    root, cache = tiny_sela_run
    folder = _unlabelled_folder(cache, root / "unlabelled")
    out = root / "unlabelled_analysis"
    args = ["analyze", str(root / "final.pt"), "--out", str(out), "--data", "data.source=folder",
            "--data", f"data.root={folder}", "--data", f"data.cache_dir={root / 'cache_unlabelled'}"]
    with caplog.at_level("INFO"):
        assert cli(args) == 0
    printed = capsys.readouterr().out
    assert "SeLa head 0" in printed and "report.md" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference_labels"] is False and summary["clips"] == 6 and 0 <= summary["head_pair_nmi"] <= 1
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["method"]) == ["SeLa head 0", "SeLa head 1"] and (metrics["k_used"] >= 1).all()
    for name in ("report.md", "cluster_sizes.png", "embedding_map.png", "clusters.csv", "labels.csv",
                 "clip_labels.csv"):
        assert (out / name).is_file(), name
    hints = [r.getMessage() for r in caplog.records if "--labels CSV" in r.getMessage()]
    assert len(hints) == 1, hints  # one line saying what labels would add
    assert "--labels CSV" in (out / "report.md").read_text()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "AudioSet classes" not in messages  # no "100% of the 0 reference labels ..."
    assert "untrained encoder" not in messages  # baselines are scored against labels: not embedded without them
    # what `hear-sela browse` reads is written too, and a site of clusters without reference labels builds
    assert cli(["browse", str(out), "--out", str(root / "unlabelled_site")]) == 0
    pages = list((root / "unlabelled_site").glob("h0/c*.html"))
    assert pages and all("No clip of this cluster has a reference label" in f.read_text() for f in pages)


def test_analyze_checks_the_labels_csv_before_embedding(tiny_sela_run, caplog, monkeypatch):
    from hear_sela.analysis import sources

    def no_embedding(*args, **kwargs):
        raise AssertionError("embedded before the inputs were checked")

    monkeypatch.setattr(sources, "segment_embeddings", no_embedding)
    root, _ = tiny_sela_run
    args = ["analyze", str(root / "final.pt"), "--out", str(root / "never"), "--labels", str(root / "nope.csv")]
    with caplog.at_level("ERROR"):
        assert cli(args) == 1
    assert "labels CSV not found" in caplog.text and "nope.csv" in caplog.text
    with pytest.raises(ValueError, match="--head 7 out of range"):
        cli(["analyze", str(root / "final.pt"), "--out", str(root / "never"), "--head", "7"])
