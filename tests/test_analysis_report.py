"""The analysis pipeline on a constructed label store: export schema, tables, plots and report."""

import numpy as np
import pandas as pd
import pytest

from hear_sela.analysis.core import AnalysisInputs, analyze, random_name
from hear_sela.analysis.report import cluster_report, interpret, label_report, left_out_lines, markdown_table


def _inputs(rng, multilabel=False):
    """30 clips of 3 classes, 2 segments each; head 0 follows the class (one segment in ten flipped), head 1 is
    noise. Labels are AudioSet names, so the top-level mapping applies."""
    classes = ["Dog", "Bark", "Guitar"] if not multilabel else ["Dog", "Guitar", "Rain"]
    n_clips, k = 30, 6
    cls = np.repeat(np.arange(3), 10)
    seg_clip = np.repeat(np.arange(n_clips), 2)
    head0 = cls[seg_clip] * 2
    flip = rng.random(len(head0)) < 0.1
    head0[flip] = rng.integers(0, k, flip.sum())
    head1 = rng.integers(0, k, len(head0))
    labels = [(classes[c],) for c in cls]
    if multilabel:  # every third clip also carries the next class
        labels = [tuple(sorted({classes[c], classes[(c + 1) % 3]})) if i % 3 == 0 else (classes[c],)
                  for i, c in enumerate(cls)]
    labels[-1] = ()  # a clip without reference label
    emb = np.eye(3)[cls] * 3 + rng.normal(0, 0.3, (n_clips, 3))
    return AnalysisInputs(
        labels=np.stack([head0, head1]), confidences=rng.uniform(0.2, 1.0, (2, len(head0))), n_clusters=k,
        segment_clip=seg_clip, segment_start=np.tile([0.0, 1.5], n_clips),
        clip_ids=[f"clip{i:02d}" for i in range(n_clips)], clip_labels=labels,
        embeddings={"encoder": emb, "log-mel": rng.normal(size=(n_clips, 4))}, source="constructed")


def test_analyze_single_label(tmp_path):
    rng = np.random.default_rng(0)
    inputs = _inputs(rng)
    res = analyze(inputs, tmp_path, seed=0)
    t = res.metrics.set_index(["reference", "method"])
    assert set(t.index.get_level_values(0)) == {"labels", "top-level"}
    methods = list(t.loc["labels"].index)
    assert methods == ["SeLa head 0", "SeLa head 1", "k-means: encoder", "k-means: log-mel", random_name(0)]
    leaf = t.loc["labels"]
    assert leaf.loc["SeLa head 0", "nmi"] > 0.6 > leaf.loc["SeLa head 1", "nmi"]
    assert leaf.loc["k-means: encoder", "nmi"] > leaf.loc[random_name(0), "nmi"]
    assert (leaf["clips"] == 29).all()  # the unlabelled clip is left out
    assert res.report_head == 0
    # "Dog" and "Bark" are both Animal: the top-level reference has 2 classes
    assert (t.loc["top-level", "labels"] == 2).all()

    seg = pd.read_csv(tmp_path / "labels.csv")
    assert list(seg.columns) == ["clip_id", "segment", "start_s", "head", "label", "confidence"]
    assert len(seg) == 2 * 60 and set(seg["segment"]) == {0, 1} and set(seg["head"]) == {0, 1}
    row = seg[(seg.clip_id == "clip03") & (seg.segment == 1) & (seg["head"] == 1)].iloc[0]
    assert row.label == inputs.labels[1, 7] and row.start_s == 1.5
    assert row.confidence == pytest.approx(inputs.confidences[1, 7], rel=1e-5)
    clips = pd.read_csv(tmp_path / "clip_labels.csv")
    assert list(clips.columns) == ["clip_id", "head", "label", "confidence", "segments"]
    assert len(clips) == 60 and (clips["segments"] == 2).all()
    # the Parquet copies (pyarrow comes with the `analysis` extra) hold the same tables with typed columns
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "labels.parquet"), seg, check_exact=False, rtol=1e-5)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "clip_labels.parquet"), clips, check_exact=False,
                                  rtol=1e-5)

    report = (tmp_path / "report.md").read_text()
    for name in ("heatmap.png", "cluster_sizes.png", "embedding_map.png"):
        assert (tmp_path / name).stat().st_size > 5000 and f"({name})" in report
    assert "SeLa head 0" in report and "### Reference: top-level" in report


def test_analyze_multilabel_and_head_choice(tmp_path):
    res = analyze(_inputs(np.random.default_rng(1), multilabel=True), tmp_path, head=1)
    leaf = res.metrics[res.metrics.reference == "labels"].set_index("method")
    assert leaf["nmi"].isna().all()  # single-label scores only for single-label references
    assert leaf.loc["SeLa head 0", "tag_mi"] > leaf.loc[random_name(1), "tag_mi"]
    assert leaf.loc["SeLa head 0", "ml_purity"] > leaf.loc["SeLa head 1", "ml_purity"]
    assert res.report_head == 1


def test_cluster_and_label_reports_by_hand():
    pred = np.array([0, 0, 0, 2])
    y = np.array([[1, 0], [1, 1], [1, 0], [0, 1]], dtype=bool)
    conf = np.array([0.2, 0.9, 0.5, 0.7])
    rep = cluster_report(pred, y, ["a", "b"], ["w", "x", "y", "z"], conf, n_clusters=3, examples=2)
    assert rep["cluster"].tolist() == [0, 2] and rep["size"].tolist() == [3, 1]
    assert rep.loc[0, "top_labels"] == "a (1.00), b (0.33)"
    assert rep.loc[0, "examples"] == "x y"
    # cluster 0 label occurrences a:3, b:1 -> entropy of (.75, .25)
    assert rep.loc[0, "entropy_bits"] == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
    lab = label_report(pred, y, ["a", "b"], n_clusters=3).set_index("label")
    assert lab.loc["a", "best_cluster"] == 0 and lab.loc["a", "f1"] == pytest.approx(2 * 1 * 1 / 2)
    # b: cluster 0 p=1/3 r=1/2 -> F1 .4; cluster 2 p=1 r=1/2 -> F1 2/3
    assert lab.loc["b", "best_cluster"] == 2 and lab.loc["b", "f1"] == pytest.approx(2 / 3)


def test_markdown_table():
    df = pd.DataFrame({"m": ["x|y", "z"], "v": [0.12345, np.nan]})
    assert markdown_table(df, na="-").splitlines() == ["| m | v |", "|---|---:|", "| x\\|y | 0.123 |", "| z | - |"]


def test_no_top_level_for_labels_outside_the_ontology(tmp_path):
    inputs = _inputs(np.random.default_rng(2))
    names = {"Dog": "tone_bright", "Bark": "rain", "Guitar": "chirp_up"}  # "rain" matches an AudioSet class only
    inputs.clip_labels = [tuple(names[x] for x in labels) for labels in inputs.clip_labels]
    res = analyze(inputs, tmp_path)
    assert set(res.metrics["reference"]) == {"labels"}


def _scored(rng, n_clips: int, k: int, head_quality: float):
    """n_clips of 3 classes; one head that follows the class for a share `head_quality` of the segments; clip
    embeddings that separate the classes perfectly (k-means on them is near-perfect)."""
    cls = np.repeat(np.arange(3), n_clips // 3)
    seg_clip = np.arange(len(cls))
    head = np.where(rng.random(len(cls)) < head_quality, cls, rng.integers(0, k, len(cls)))
    return AnalysisInputs(
        labels=head[None], confidences=np.ones((1, len(cls))), n_clusters=k, segment_clip=seg_clip,
        segment_start=np.zeros(len(cls)), clip_ids=[f"c{i}" for i in range(len(cls))],
        clip_labels=[(f"class{c}",) for c in cls],
        embeddings={"untrained encoder": np.eye(3)[cls] * 5 + rng.normal(0, 0.1, (len(cls), 3))},
        source="constructed", skipped_files=[{"clip_id": "b", "path": "/data/bad.wav", "reason": "truncated WAV"}],
        too_short=[{"clip_id": "s", "path": "/data/dog_1.wav", "seconds": 0.4}], min_segment_seconds=1.0)


def _says(report: str) -> str:
    return report.split("### What the scores say")[1].split("### Reference")[0]


def test_report_says_a_baseline_wins_and_warns_when_k_is_large(tmp_path):
    analyze(_scored(np.random.default_rng(0), 90, 45, head_quality=0.3), tmp_path)  # 2 clips per cluster
    says = _says((tmp_path / "report.md").read_text())
    assert "best is `k-means: untrained encoder`" in says
    assert "does not beat `k-means: untrained encoder`" in says
    assert "Warning: K=45 is large for 90 clips" in says and "2.0 clips per cluster" in says


def test_report_says_sela_wins_without_a_warning_when_k_fits(tmp_path):
    inputs = _scored(np.random.default_rng(0), 300, 3, head_quality=1.0)
    inputs.embeddings = {"mean log-mel": np.random.default_rng(1).normal(size=(300, 4))}  # uninformative
    res = analyze(inputs, tmp_path)
    says = _says((tmp_path / "report.md").read_text())
    assert "SeLa's best head (`SeLa head 0`, 1.000) beats every baseline" in says
    leaf = res.metrics[res.metrics.reference == "labels"].set_index("method")["ami"].drop("SeLa head 0")
    assert f"the next best is `{leaf.idxmax()}` ({leaf.max():.3f})" in says
    assert "Warning" not in says


def _table(rows: list[tuple]) -> pd.DataFrame:
    cols = ["reference", "clips", "method", "nmi", "ami", "tag_mi"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_interpret_by_hand():
    """Each reading from a score table written by hand: the metric per reference kind, the best head among
    several, the baselines it loses to (best first), and each of the two large-K triggers on its own."""
    rnd = "random (head 0 permuted)"
    nan = float("nan")
    table = _table([
        # single-label, 20 clips per cluster, chance NMI low: AMI decides, no warning
        ("labels", 200, "SeLa head 0", 0.50, 0.30, nan), ("labels", 200, "SeLa head 1", 0.40, 0.10, nan),
        ("labels", 200, "k-means: encoder", 0.55, 0.35, nan), ("labels", 200, "k-means: log-mel", 0.52, 0.32, nan),
        ("labels", 200, rnd, 0.05, 0.00, nan),
        # multi-label, 20 clips per cluster but chance tag MI 0.25: warns on chance alone
        ("tags", 200, "SeLa head 0", nan, nan, 0.40), ("tags", 200, "SeLa head 1", nan, nan, 0.60),
        ("tags", 200, "k-means: encoder", nan, nan, 0.50), ("tags", 200, "k-means: log-mel", nan, nan, 0.30),
        ("tags", 200, rnd, nan, nan, 0.25),
        # 5 clips per cluster, chance NMI 0.1: warns on clips per cluster alone
        ("few", 50, "SeLa head 0", 0.6, 0.2, nan), ("few", 50, "SeLa head 1", 0.6, 0.1, nan),
        ("few", 50, "k-means: encoder", 0.5, 0.15, nan), ("few", 50, "k-means: log-mel", 0.5, 0.12, nan),
        ("few", 50, rnd, 0.10, 0.01, nan),
    ])
    text = "\n".join(interpret(table, 10, rnd))
    labels, tags, few = text.split("- **")[1:]
    assert labels.startswith("labels** (200 clips, by AMI): best is `k-means: encoder` (0.350).")
    assert ("SeLa's best head (`SeLa head 0`, 0.300) does not beat `k-means: encoder` (0.350), "
            "`k-means: log-mel` (0.320):") in labels
    assert "Warning" not in labels
    assert tags.startswith("tags** (200 clips, by TAG MI): best is `SeLa head 1` (0.600).")
    assert "SeLa's best head (`SeLa head 1`, 0.600) beats every baseline; the next best is `k-means: encoder`" in tags
    assert ("**Warning: K=10 is large for 200 clips** (20.0 clips per cluster): the random labeling scores TAG MI "
            "0.250") in tags and "Random AMI" not in tags
    assert "SeLa's best head (`SeLa head 0`, 0.200) beats every baseline" in few
    assert ("**Warning: K=10 is large for 50 clips** (5.0 clips per cluster): the random labeling scores NMI 0.100"
            in few) and "Random AMI here: 0.010." in few


def test_left_out_lines_by_hand():
    assert left_out_lines([], [], 1.0) == ["None: every file was read and gave at least one segment.", ""]
    bad = [{"path": f"/d/bad{i}.wav", "reason": "truncated WAV"} for i in range(3)]
    short = [{"clip_id": "s0", "seconds": 0.25}]
    text = "\n".join(left_out_lines(bad, short, None, limit=2))
    assert "3 file(s) could not be read" in text and "- `/d/bad1.wav`: truncated WAV" in text
    assert "bad2" not in text and "- ... and 1 more (the cache's manifest.json lists all)" in text
    assert "1 clip(s) too short for one segment gave no segment" in text and "- `s0` (0.25 s)" in text


def test_report_lists_skipped_and_too_short_files(tmp_path):
    analyze(_scored(np.random.default_rng(0), 30, 3, head_quality=1.0), tmp_path)
    left_out = (tmp_path / "report.md").read_text().split("## Files left out")[1]
    assert "`/data/bad.wav`: truncated WAV" in left_out
    assert "`/data/dog_1.wav` (0.40 s)" in left_out and "`data.min_segment_seconds` = 1 s" in left_out
