"""The analysis proper: a label store (H heads' labels of S segments) against clip-level reference annotations.

Segments -> clips: reference annotations are per clip, so each head's segment labels are aggregated per clip by
majority vote (ties: larger summed confidence, then lower cluster id); the clip's confidence is the mean confidence
of the segments that carry the winning label. Clips without any reference label are left out of the metrics (they
are still exported). Without any reference label (`analyze_unlabelled`): each head's cluster sizes, how alike the
heads cluster the clips, the 2-D map, the exports, and a line saying what labels would add.

Baselines, computed on the same clips and scored by the same metrics:
- k-means (sklearn, K = the heads' K, capped at the number of clips) on each given clip-embedding set, e.g. the
  checkpoint's encoder, a randomly initialised encoder of the same architecture, and mean log-mel features.
  Features are standardised per dimension and reduced to at most 128 PCA dimensions first (speed; k-means in
  the leading components). MiniBatchKMeans above 2e7 clip x cluster pairs.
- random: the report head's clip labels randomly permuted (exactly the same cluster sizes).

Legend: H heads, S segments, C clips, K clusters, L reference labels, D embedding dimension.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hear_sela.analysis import metrics as M
from hear_sela.analysis import plots
from hear_sela.analysis.report import cluster_report, interpret, label_report, left_out_lines, markdown_table
from hear_sela.data.segment_labels import segment_label_table, write_segment_labels

log = logging.getLogger("hear_sela.analysis")

def random_name(head: int) -> str:
    return f"random (head {head} permuted)"


@dataclass
class AnalysisInputs:
    labels: np.ndarray  # (H, S) int64 cluster of each segment per head
    confidences: np.ndarray  # (H, S) float
    n_clusters: int  # K
    segment_clip: np.ndarray  # (S,) index into clip_ids
    segment_start: np.ndarray  # (S,) seconds
    clip_ids: list[str]  # (C,)
    clip_labels: list[tuple[str, ...]]  # (C,) reference labels, () where unknown
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (C, D) clip features for baselines
    map_embedding: str | None = None  # which of `embeddings` to draw as the 2-D map (default: the first)
    vocabulary: Mapping[str, str] | None = None  # reference label -> AudioSet mid, for the top-level mapping
    source: str = ""  # what was analysed (shown in the report)
    skipped_files: list[dict] = field(default_factory=list)  # the cache's unreadable files: path, reason
    too_short: list[dict] = field(default_factory=list)  # clips that gave no segment: path, seconds
    min_segment_seconds: float | None = None  # the setting that made them too short
    cache_dir: str | None = None  # the feature cache of the segments (audio paths, log-mel), for `hear-sela browse`


@dataclass
class AnalysisResult:
    metrics: pd.DataFrame  # long: method, reference, k_used, clips, nmi, ami, ari, purity, tag_mi, ml_purity, onmi
    clusters: pd.DataFrame  # per-cluster report of the report head
    labels: pd.DataFrame  # best cluster per reference label
    report_head: int
    files: dict[str, Path]


def clip_labels(inputs: AnalysisInputs) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of every head: ((H, C) labels, (H, C) confidences)."""
    n_clips = len(inputs.clip_ids)
    out = [M.majority_vote(lab, inputs.segment_clip, n_clips, conf)
           for lab, conf in zip(inputs.labels, inputs.confidences)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def reduce_features(features: np.ndarray, seed: int = 0, max_dims: int = 128) -> np.ndarray:
    """Standardised per dimension, then PCA to at most `max_dims`: (C, D) -> (C, min(D, C, max_dims)) float64. The
    space where k-means runs and where `hear-sela browse` measures a clip's distance to its cluster's centre."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    dims = min(max_dims, x.shape[1], len(x))
    if dims < x.shape[1]:
        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    return x


def kmeans_labels(features: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """k-means cluster of each row of `features` (C, D) -> (C,), K capped at C (see module docstring)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = reduce_features(features, seed)
    k = min(n_clusters, len(x))
    algo = KMeans if len(x) * k <= 2e7 else MiniBatchKMeans
    return algo(n_clusters=k, n_init=3, random_state=seed).fit_predict(x).astype(np.int64)


def reference_levels(inputs: AnalysisInputs, min_matched: float = 0.8) -> dict[str, list[tuple[str, ...]]]:
    """'labels' (as given) and, when at least `min_matched` of the distinct labels are AudioSet ontology classes
    (FSD50K: all), 'top-level' (their top-level AudioSet ancestors). Labels that match the ontology only by
    accident (a synth class called "rain") stay below that share and get no top-level level."""
    from hear_sela.analysis.ontology import to_top_level

    levels = {"labels": [tuple(x) for x in inputs.clip_labels]}
    distinct = {lab for labels in inputs.clip_labels for lab in labels}
    tops, unmatched = to_top_level(inputs.clip_labels, inputs.vocabulary)
    share = 1.0 - len(unmatched) / max(1, len(distinct))
    if distinct and share >= min_matched:
        if unmatched:
            log.warning("%d reference labels are not in the AudioSet ontology (e.g. %s); left out of top-level",
                        len(unmatched), unmatched[:5])
        levels["top-level"] = tops
    else:
        log.info("%.0f%% of the %d reference labels are AudioSet classes: no top-level scores", 100 * share,
                 len(distinct))
    return levels


def score_table(methods: Mapping[str, np.ndarray], label_sets: Sequence[tuple[str, ...]], n_clusters: int,
                reference: str) -> pd.DataFrame:
    """One row per clustering method, on the clips that have a reference label. methods: name -> (C,) labels."""
    keep = np.array([len(x) > 0 for x in label_sets])
    kept = [x for x, k in zip(label_sets, keep) if k]
    y, vocab = M.multi_hot(kept)
    single = all(len(x) == 1 for x in kept)
    rows = []
    for name, pred in methods.items():
        p = np.asarray(pred)[keep]
        row: dict[str, object] = {"method": name, "reference": reference, "k_used": int(len(np.unique(p))),
                                  "clips": int(keep.sum()), "labels": len(vocab)}
        if single:
            row.update(M.single_label_scores(p, np.array([x[0] for x in kept])))
        row.update(M.multilabel_scores(p, y, max(n_clusters, int(p.max()) + 1)))
        rows.append(row)
    cols = ["method", "reference", "clips", "labels", "k_used", "nmi", "ami", "ari", "purity", "tag_mi",
            "ml_purity", "onmi"]
    return pd.DataFrame(rows).reindex(columns=cols)


def export_labels(inputs: AnalysisInputs, clip_lab: np.ndarray, clip_conf: np.ndarray, out_dir: Path
                  ) -> dict[str, Path]:
    """labels.csv (every segment and head, the format of `data.segment_labels`, as `hear-sela labels` writes it) and
    clip_labels.csv (clip-level votes: clip_id, head, label, confidence, segments = the clip's count); the same as
    .parquet with pyarrow (the `analysis` extra)."""
    seg = segment_label_table(inputs.labels, inputs.confidences, inputs.segment_clip, inputs.segment_start,
                              inputs.clip_ids)
    h = inputs.labels.shape[0]
    ids = np.asarray(inputs.clip_ids, dtype=object)
    n_segments = np.bincount(np.asarray(inputs.segment_clip), minlength=len(ids))
    clips = pd.DataFrame({
        "clip_id": np.tile(ids, h), "head": np.repeat(np.arange(h), len(ids)),
        "label": clip_lab.reshape(-1), "confidence": clip_conf.reshape(-1), "segments": np.tile(n_segments, h)})
    files = {"labels_csv": out_dir / "labels.csv", "clip_labels_csv": out_dir / "clip_labels.csv"}
    write_segment_labels(files["labels_csv"], seg)
    clips.to_csv(files["clip_labels_csv"], index=False, float_format="%.6g")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        log.info("pyarrow not installed: CSV exports only")
    else:
        files["labels_parquet"] = out_dir / "labels.parquet"
        files["clip_labels_parquet"] = out_dir / "clip_labels.parquet"
        seg.to_parquet(files["labels_parquet"], index=False)
        clips.to_parquet(files["clip_labels_parquet"], index=False)
    return files


def analyze(inputs: AnalysisInputs, out_dir: str | Path, head: int | None = None, seed: int = 0) -> AnalysisResult:
    """Metrics, baselines, reports, exports and plots into `out_dir`; see the module docstring."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_heads, k = inputs.labels.shape[0], inputs.n_clusters
    clip_lab, clip_conf = clip_labels(inputs)  # (H, C)
    files = export_labels(inputs, clip_lab, clip_conf, out_dir)
    if not any(inputs.clip_labels):
        return analyze_unlabelled(inputs, out_dir, clip_lab, clip_conf, files, head, seed)

    levels = reference_levels(inputs)
    heads = {f"SeLa head {i}": clip_lab[i] for i in range(n_heads)}
    leaf = score_table(heads, levels["labels"], k, "labels")
    primary = "nmi" if leaf["nmi"].notna().all() else "tag_mi"
    check_head(head, n_heads)
    report_head = int(leaf[primary].to_numpy().argmax()) if head is None else head

    methods: dict[str, np.ndarray] = dict(heads)
    for name, feats in inputs.embeddings.items():
        log.info("k-means (K=%d) on %s features %s", k, name, feats.shape)
        methods[f"k-means: {name}"] = kmeans_labels(feats, k, seed)
    methods[random_name(report_head)] = M.random_labeling(clip_lab[report_head], seed)
    table = pd.concat([score_table(methods, sets, k, ref) for ref, sets in levels.items()], ignore_index=True)
    table.to_csv(out_dir / "metrics.csv", index=False, float_format="%.6g")
    files["metrics_csv"] = out_dir / "metrics.csv"

    keep = np.array([len(x) > 0 for x in levels["labels"]])
    y, vocab = M.multi_hot([x for x, kk in zip(levels["labels"], keep) if kk])
    pred = clip_lab[report_head][keep]
    ids = [c for c, kk in zip(inputs.clip_ids, keep) if kk]
    clusters = cluster_report(pred, y, vocab, ids, clip_conf[report_head][keep], k)
    per_label = label_report(pred, y, vocab, k)
    clusters.to_csv(out_dir / "clusters.csv", index=False, float_format="%.4g")
    per_label.to_csv(out_dir / "label_best_cluster.csv", index=False, float_format="%.4g")

    counts = M.cluster_label_counts(pred, y, k)
    files["heatmap"] = plots.cluster_label_heatmap(counts, np.bincount(pred, minlength=k), vocab,
                                                   out_dir / "heatmap.png", title=f"head {report_head}: share of "
                                                   "each cluster's clips carrying a label (largest clusters)")
    files["sizes"] = plots.cluster_size_histogram(np.bincount(clip_lab[report_head], minlength=k),
                                                  out_dir / "cluster_sizes.png")
    map_name = inputs.map_embedding or next(iter(inputs.embeddings), None)
    method, xy = "", None
    if map_name is not None:
        xy, method = plots.project_2d(inputs.embeddings[map_name], seed)  # (C, 2): every clip, for the browser
        files["map"] = plots.embedding_map(xy[keep], pred, [x[0] for x in levels["labels"] if x], method,
                                           out_dir / "embedding_map.png")
    files.update(export_clips(inputs, xy, map_name, seed, out_dir))
    dead = dead_units_of(inputs.embeddings)
    summary = {"source": inputs.source, "heads": n_heads, "clusters": k, "clips": len(inputs.clip_ids),
               "segments": int(inputs.labels.shape[1]), "report_head": report_head, "primary_metric": primary,
               "map": {"embedding": map_name, "method": method}, "dead_units": dead, "cache": inputs.cache_dir,
               "metrics": json.loads(table.to_json(orient="records"))}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    files["summary"] = out_dir / "summary.json"
    files["report"] = write_report(out_dir, inputs, table, clusters, per_label, report_head, primary, method,
                                   map_name, files, dead)
    for line in interpret(table, k, random_name(report_head)):
        if "does not beat" in line or "Warning" in line:
            log.warning("%s", line.strip().lstrip("- ").replace("**", "").replace("`", ""))
    return AnalysisResult(table, clusters, per_label, report_head, files)


NO_LABELS_HINT = ("no clip has a reference label, so the heads are not scored: pass --labels CSV (an id column and "
                  "'labels', as FSD50K's dev.csv) to add NMI/AMI/purity against them, k-means and random "
                  "baselines and each cluster's labels")


def check_head(head: int | None, n_heads: int) -> None:
    if head is not None and not 0 <= head < n_heads:
        raise ValueError(f"--head {head} out of range: the checkpoint has {n_heads} heads")


def analyze_unlabelled(inputs: AnalysisInputs, out_dir: Path, clip_lab: np.ndarray, clip_conf: np.ndarray,
                       files: dict[str, Path], head: int | None, seed: int) -> AnalysisResult:
    """What `analyze` reports without reference labels: cluster sizes per head, how alike the heads cluster the
    clips (mean pairwise NMI), the size plot, the 2-D map (by the report head's cluster and by another head's), the
    label export, summary.json and report.md. clip_lab, clip_conf (H, C). The report head is `head` or head 0."""
    from hear_sela.objectives.label_update import mean_pairwise_nmi

    log.warning("%s", NO_LABELS_HINT)
    n_heads, k, n_clips = clip_lab.shape[0], inputs.n_clusters, len(inputs.clip_ids)
    check_head(head, n_heads)
    report_head = 0 if head is None else head
    sizes = [np.bincount(lab, minlength=k) for lab in clip_lab]  # H x (K,)
    table = pd.DataFrame([{"method": f"SeLa head {i}", "reference": "none", "clips": n_clips, "labels": 0,
                           "k_used": int((s > 0).sum()), "largest": int(s.max())} for i, s in enumerate(sizes)])
    head_nmi = mean_pairwise_nmi(clip_lab)
    table.to_csv(out_dir / "metrics.csv", index=False, float_format="%.6g")
    files["metrics_csv"] = out_dir / "metrics.csv"
    pred = clip_lab[report_head]
    clusters = cluster_report(pred, np.zeros((n_clips, 0), dtype=bool), [], inputs.clip_ids,
                              clip_conf[report_head], k)
    clusters.to_csv(out_dir / "clusters.csv", index=False, float_format="%.4g")
    files["sizes"] = plots.cluster_size_histogram(sizes[report_head], out_dir / "cluster_sizes.png")
    map_name = inputs.map_embedding or next(iter(inputs.embeddings), None)
    method, xy = "", None
    if map_name is not None:
        other = (report_head + 1) % n_heads
        xy, method = plots.project_2d(inputs.embeddings[map_name], seed)
        files["map"] = plots.embedding_map(xy, pred, [f"cluster {c}" for c in clip_lab[other]], method,
                                           out_dir / "embedding_map.png", reference_name=f"head {other}'s cluster")
    files.update(export_clips(inputs, xy, map_name, seed, out_dir))
    summary = {"source": inputs.source, "heads": n_heads, "clusters": k, "clips": n_clips,
               "segments": int(inputs.labels.shape[1]), "report_head": report_head, "reference_labels": False,
               "head_pair_nmi": head_nmi, "map": {"embedding": map_name, "method": method}, "cache": inputs.cache_dir,
               "dead_units": dead_units_of(inputs.embeddings), "metrics": json.loads(table.to_json(orient="records"))}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    files["summary"] = out_dir / "summary.json"
    lines = ["# Emergent classes (no reference labels)", "",
             f"Source: `{inputs.source}`; {n_heads} heads x K={k} clusters; {inputs.labels.shape[1]} segments in "
             f"{n_clips} clips, labelled per clip by majority vote of its segments.", "", f"{NO_LABELS_HINT}.", "",
             "## Clusters per head", "", markdown_table(table[["method", "clips", "k_used", "largest"]]), "",
             f"Head agreement: mean NMI between the heads' clip labels {head_nmi:.3f} (1 = every head clusters the "
             "clips alike; NaN with one head).", "",
             f"## Clusters of head {report_head}", "", f"![cluster sizes]({files['sizes'].name})", ""]
    if "map" in files:
        lines += [f"![2-D map]({files['map'].name})", "", f"2-D map: {method} of the `{map_name}` clip embeddings, "
                  f"coloured by head {report_head}'s cluster (left) and head {(report_head + 1) % n_heads}'s "
                  "(right).", ""]
    lines += ["Largest clusters (all in `clusters.csv`):", "",
              markdown_table(clusters[["cluster", "size", "examples"]].head(30)), "", "## Files", ""]
    files["report"] = out_dir / "report.md"
    lines += [f"- `{p.name}`" for p in files.values()]
    files["report"].write_text("\n".join(lines) + "\n")
    return AnalysisResult(table, clusters, pd.DataFrame(), report_head, files)


def export_clips(inputs: AnalysisInputs, xy: np.ndarray | None, map_name: str | None, seed: int, out_dir: Path
                 ) -> dict[str, Path]:
    """What `hear-sela browse` reads beside the label exports: clips.csv (clip_id, labels comma-joined as in a
    labels CSV, map_x, map_y: the 2-D map, empty without one) and clip_embeddings.npy ((C, D') float16: the map's
    clip embeddings through `reduce_features`, where the browser measures distances to cluster centres)."""
    clips = pd.DataFrame({"clip_id": inputs.clip_ids, "labels": [",".join(x) for x in inputs.clip_labels],
                          "map_x": np.nan if xy is None else xy[:, 0], "map_y": np.nan if xy is None else xy[:, 1]})
    files = {"clips_csv": out_dir / "clips.csv"}
    clips.to_csv(files["clips_csv"], index=False, float_format="%.5g")
    if map_name is not None:
        files["clip_embeddings"] = out_dir / "clip_embeddings.npy"
        np.save(files["clip_embeddings"], reduce_features(inputs.embeddings[map_name], seed).astype(np.float16))
    return files


def dead_units_of(embeddings: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per clip-feature set (C, D): the share of dimensions that are 0 for every clip."""
    import torch

    from hear_sela.embed import alive_dims, dead_fraction

    return {name: dead_fraction(alive_dims(torch.from_numpy(np.asarray(f)))) for name, f in embeddings.items()}


def write_report(out_dir: Path, inputs: AnalysisInputs, table: pd.DataFrame, clusters: pd.DataFrame,
                 per_label: pd.DataFrame, head: int, primary: str, method: str, map_name: str | None,
                 files: dict[str, Path], dead: dict[str, float] | None = None) -> Path:
    """report.md: everything above, readable on GitHub or in any Markdown viewer."""
    h, s = inputs.labels.shape
    lines = [
        "# Emergent classes vs reference labels", "",
        f"Source: `{inputs.source}`; {h} heads x K={inputs.n_clusters} clusters; {s} segments in "
        f"{len(inputs.clip_ids)} clips. Segment labels are aggregated per clip by majority vote; clips without a "
        "reference label are left out of the scores.", "",
        "## Scores", "",
        "NMI/AMI/ARI/purity (single-label references only): sklearn, NMI with arithmetic normalisation. "
        "tag_mi: the audio SeLa code's MI between one-hot clusters and multi-hot tags over log2(K). "
        "ml_purity: a clip is correct if its cluster's majority label is among its labels. onmi: overlapping NMI "
        "(McDaid et al. 2011, NMI_max). Baselines: k-means with the same K on the named clip features, and a "
        "random labeling with the report head's cluster sizes. Docs: hear_sela's docs/analysis.md.", ""]
    lines += ["### What the scores say", "", *interpret(table, inputs.n_clusters, random_name(head)), ""]
    for ref, part in table.groupby("reference", sort=False):
        cols = [c for c in part.columns if c != "reference" and part[c].notna().any()]
        lines += [f"### Reference: {ref}", "", markdown_table(part[cols].reset_index(drop=True)), ""]
    if dead:
        lines += ["Dead units (share of embedding dimensions that are 0 for every clip; a large share means the "
                  "encoder uses few of its dimensions): " + ", ".join(f"`{k}` {v:.3f}" for k, v in dead.items()),
                  ""]
    lines += ["## Files left out", "", *left_out_lines(inputs.skipped_files, inputs.too_short,
                                                      inputs.min_segment_seconds)]
    lines += [f"## Clusters of head {head}", "",
              f"Head {head} is the best head by {primary} (or the one asked for). Precision in brackets = share of "
              "the cluster's clips carrying the label; entropy of the cluster's label distribution in bits.", "",
              f"![cluster x label heatmap]({files['heatmap'].name})", "",
              f"![cluster sizes]({files['sizes'].name})", ""]
    if "map" in files:
        lines += [f"![2-D map]({files['map'].name})", "",
                  f"2-D map: {method} of the `{map_name}` clip embeddings, coloured by head {head}'s cluster "
                  "(left) and by the clip's first reference label (right).", ""]
    lines += [f"Largest clusters (all {len(clusters)} non-empty ones in `clusters.csv`):", "",
              markdown_table(clusters.head(30)), "",
              "## Best cluster per reference label", "",
              "F1 of cluster membership as a detector of the label (all labels in `label_best_cluster.csv`):", "",
              markdown_table(per_label.head(40)), "",
              "## Files", ""]
    lines += [f"- `{p.name}`" for p in files.values()]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
