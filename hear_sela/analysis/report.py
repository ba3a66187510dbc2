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
