"""Tables of the analysis (per-cluster report, best cluster per reference label) and the Markdown writer.

Legend: C clips, K clusters, L reference labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hear_sela.analysis.metrics import best_cluster_per_label, cluster_label_counts, label_entropy


def _fmt(value: object, floatfmt: str, na: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return na
    if isinstance(value, float | np.floating):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f", na: str = "") -> str:
    """A GitHub-flavoured Markdown table of `df` (numbers right-aligned)."""
    cols = list(df.columns)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    head = "| " + " | ".join(str(c) for c in cols) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(_fmt(v, floatfmt, na) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def cluster_report(pred: np.ndarray, y: np.ndarray, vocab: Sequence[str], clip_ids: Sequence[str],
                   confidence: np.ndarray, n_clusters: int, top_labels: int = 3, examples: int = 5) -> pd.DataFrame:
    """One row per non-empty cluster, largest first.

    pred (C,) cluster of each clip, y (C, L) bool reference labels, confidence (C,) of each clip's label.
    Columns: cluster, size, top_labels ("label (precision)" with precision = share of the cluster's clips carrying
    the label), entropy_bits (of the cluster's label-occurrence distribution; 0 = one label only), examples (the
    clip ids of the cluster's most confident clips).
    """
    counts = cluster_label_counts(pred, y, n_clusters)  # (K, L)
    sizes = np.bincount(pred, minlength=n_clusters)  # (K,)
    entropy = label_entropy(counts)
    rows = []
    for k in np.argsort(-sizes, kind="stable"):
        if sizes[k] == 0:
            break
        order = np.argsort(-counts[k], kind="stable")[:top_labels]
        tops = ", ".join(f"{vocab[j]} ({counts[k, j] / sizes[k]:.2f})" for j in order if counts[k, j] > 0)
        members = np.flatnonzero(pred == k)
        best = members[np.argsort(-confidence[members], kind="stable")[:examples]]
        rows.append({"cluster": int(k), "size": int(sizes[k]), "top_labels": tops or "(no reference label)",
                     "entropy_bits": float(entropy[k]), "examples": " ".join(clip_ids[i] for i in best)})
    return pd.DataFrame(rows, columns=["cluster", "size", "top_labels", "entropy_bits", "examples"])


def label_report(pred: np.ndarray, y: np.ndarray, vocab: Sequence[str], n_clusters: int) -> pd.DataFrame:
    """For each reference label its best-matching cluster by F1 (cluster membership as a detector of the label).

    Columns: label, clips, best_cluster, f1, precision, recall; sorted by F1, best first.
    """
    counts = cluster_label_counts(pred, y, n_clusters)
    best, f1, precision, recall = best_cluster_per_label(counts, np.bincount(pred, minlength=n_clusters),
                                                         y.sum(axis=0))
    df = pd.DataFrame({"label": list(vocab), "clips": y.sum(axis=0).astype(int), "best_cluster": best.astype(int),
                       "f1": f1, "precision": precision, "recall": recall})
    return df.sort_values(["f1", "label"], ascending=[False, True], kind="stable").reset_index(drop=True)


# A random labeling scoring this much NMI (or tag MI) means K is too large for the clips: the uncorrected scores
# reward many small clusters, whatever they contain.
CHANCE_WARNING = 0.2
MIN_CLIPS_PER_CLUSTER = 10


def interpret(table: pd.DataFrame, n_clusters: int, random_method: str) -> list[str]:
    """Plain-language reading of the score table: which method wins per reference level, SeLa's heads against
    each baseline, and a warning when K is large for the number of clips (chance scores high).

    `table`: `core.score_table` rows (method, reference, clips, nmi, ami, tag_mi, ...); SeLa rows are named
    "SeLa head i", baselines "k-means: <features>" and `random_method`. The comparison uses AMI (chance-corrected)
    for single-label references and tag MI otherwise.
    """
    lines: list[str] = []
    for ref, part in table.groupby("reference", sort=False):
        metric = "ami" if part["ami"].notna().all() else "tag_mi"
        scores = part.set_index("method")[metric]
        heads = scores[[m for m in scores.index if m.startswith("SeLa head")]]
        baselines = scores.drop(heads.index)
        best_head, best = str(heads.idxmax()), float(heads.max())
        winner = str(scores.idxmax())
        clips = int(part["clips"].iloc[0])
        lines.append(f"- **{ref}** ({clips} clips, by {metric.upper().replace('_', ' ')}): best is `{winner}` "
                     f"({float(scores.max()):.3f}).")
        beaten = [(m, float(v)) for m, v in baselines.items() if v >= best]
        if not beaten:
            runner = baselines.idxmax()
            lines.append(f"  SeLa's best head (`{best_head}`, {best:.3f}) beats every baseline; the next best is "
                         f"`{runner}` ({float(baselines.max()):.3f}).")
        else:
            listed = ", ".join(f"`{m}` ({v:.3f})" for m, v in sorted(beaten, key=lambda mv: -mv[1]))
            lines.append(f"  SeLa's best head (`{best_head}`, {best:.3f}) does not beat {listed}: the heads have "
                         "learned no more about these labels than those features already give (too little "
                         "training or data, or labels the sounds do not separate by).")
        chance = scores.get(random_method)
        uncorrected = "nmi" if part["nmi"].notna().all() else "tag_mi"
        chance_raw = float(part.set_index("method")[uncorrected].get(random_method, float("nan")))
        per_cluster = clips / max(1, n_clusters)
        if chance_raw >= CHANCE_WARNING or per_cluster < MIN_CLIPS_PER_CLUSTER:
            lines.append(f"  **Warning: K={n_clusters} is large for {clips} clips** ({per_cluster:.1f} clips per "
                         f"cluster): the random labeling scores {uncorrected.upper().replace('_', ' ')} "
                         f"{chance_raw:.3f}, so uncorrected scores (NMI, purity, tag MI) mostly measure K. Read "
                         "AMI/ARI (0 = chance) or analyse more clips, or train with fewer clusters "
                         f"(`sela.clusters`, about clips / {MIN_CLIPS_PER_CLUSTER} or fewer)."
                         + (f" Random AMI here: {float(chance):.3f}." if metric == "ami" and chance is not None
                            else ""))
    return lines


def left_out_lines(skipped: Sequence[dict], too_short: Sequence[dict], min_seconds: float | None,
                   limit: int = 50) -> list[str]:
    """Markdown list of the files the feature cache left out: unreadable ones with the reason, and clips shorter
    than one segment with their length (the first `limit` of each)."""
    lines: list[str] = []
    if skipped:
        lines += [f"{len(skipped)} file(s) could not be read and were skipped:", ""]
        lines += [f"- `{f.get('path', f.get('clip_id'))}`: {f.get('reason', '')}" for f in skipped[:limit]]
        lines += [f"- ... and {len(skipped) - limit} more (the cache's manifest.json lists all)"] * (
            len(skipped) > limit)
        lines.append("")
    if too_short:
        setting = (f"shorter than `data.min_segment_seconds` = {min_seconds:g} s" if min_seconds is not None
                   else "too short for one segment")
        lines += [f"{len(too_short)} clip(s) {setting} gave no segment (lower the setting to keep them):", ""]
        lines += [f"- `{f.get('path', f.get('clip_id'))}` ({float(f.get('seconds', float('nan'))):.2f} s)"
                  for f in too_short[:limit]]
        lines += [f"- ... and {len(too_short) - limit} more (the cache's manifest.json lists all)"] * (
            len(too_short) > limit)
        lines.append("")
    return lines or ["None: every file was read and gave at least one segment.", ""]
