"""What a cluster page shows, chosen by pure functions: each cluster's centre, its members closest to it and its
borderline members, its nearest clusters, its reference-label shares, and the segment of each clip to play.

Distances are Euclidean in the analysis's reduced clip-embedding space (`analysis.core.reduce_features`: standardised,
PCA to <= 128 dims), where the k-means baseline runs too. A cluster's centre is the mean of its clips there.
Borderline members are those whose nearest *other* centre is least farther than their own: the clips the head
could most easily have put elsewhere.

Legend: H heads, C clips, S segments, K clusters, D reduced embedding dimension, L reference labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hear_sela.analysis.metrics import cluster_label_counts, label_entropy


def cluster_centres(x: np.ndarray, labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each cluster's rows: x (C, D), labels (C,) in [0, K) -> (centres (K, D) float64, NaN rows for empty
    clusters; sizes (K,) int64)."""
    x = np.asarray(x, dtype=np.float64)
    sizes = np.bincount(labels, minlength=n_clusters)
    sums = np.zeros((n_clusters, x.shape[1]))
    np.add.at(sums, labels, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / sizes[:, None], sizes


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (A, D) x (B, D) -> (A, B); NaN rows of b give +inf."""
    d2 = (a ** 2).sum(1)[:, None] - 2.0 * a @ np.nan_to_num(b).T + (np.nan_to_num(b) ** 2).sum(1)[None, :]
    d = np.sqrt(np.maximum(d2, 0.0))
    d[:, np.isnan(b).any(axis=1)] = np.inf
    return d


def centre_distances(x: np.ndarray, labels: np.ndarray, centres: np.ndarray, chunk: int = 4096
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each clip's distance to its own cluster's centre and to the nearest other one.

    x (C, D), labels (C,), centres (K, D) (NaN rows: empty clusters, never nearest) -> (own (C,), other (C,) +inf
    when there is no other non-empty cluster, other_cluster (C,) int64, -1 then)."""
    x = np.asarray(x, dtype=np.float64)
    own, other = np.empty(len(x)), np.empty(len(x))
    other_k = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), chunk):  # (chunk, K) at a time: 50k clips x 1000 clusters would be 400 MB at once
        d = _pairwise(x[i:i + chunk], centres)  # (B, K)
        rows = np.arange(len(d))
        own[i:i + chunk] = d[rows, labels[i:i + chunk]]
        d[rows, labels[i:i + chunk]] = np.inf
        other_k[i:i + chunk] = d.argmin(axis=1)
        other[i:i + chunk] = d[rows, other_k[i:i + chunk]]
    other_k[~np.isfinite(other)] = -1
    return own, other, other_k


def members_by_cluster(labels: np.ndarray, n_clusters: int) -> list[np.ndarray]:
    """Clip indices of each cluster, ascending: labels (C,) -> K arrays."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(n_clusters)]


def choose_members(members: np.ndarray, own: np.ndarray, other: np.ndarray, n_central: int, n_border: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The `n_central` members closest to the centre, then the `n_border` borderline ones among the rest (smallest
    margin other - own; ties by index). members (M,) clip indices; own, other (C,) -> (central, border) clip
    indices, disjoint; a cluster of M <= n_central clips shows them all as central."""
    members = np.asarray(members, dtype=np.int64)
    central = members[np.lexsort((members, own[members]))][:n_central]
    rest = np.setdiff1d(members, central)
    border = rest[np.lexsort((rest, other[rest] - own[rest]))][:n_border]
    return central, border


def nearest_clusters(centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The `n` nearest non-empty clusters of each cluster by centre distance: centres (K, D) (NaN rows empty) ->
    (ids (K, n) int64, -1 padded; distances (K, n), +inf padded). Empty clusters get only padding."""
    d = _pairwise(np.nan_to_num(centres), centres)  # (K, K)
    np.fill_diagonal(d, np.inf)
    d[np.isnan(centres).any(axis=1)] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :n]
    dist = np.take_along_axis(d, order, axis=1)
    return np.where(np.isfinite(dist), order, -1), dist


def shared_segment(segment_labels: np.ndarray, segment_clip: np.ndarray, clip_labels: np.ndarray) -> np.ndarray:
    """Per clip, the one segment every head's pages play: the one most heads put in the clip's own cluster (ties: the
    earliest; segments are stored in time order). One excerpt per clip, written once and linked from every head,
    keeps a 10-head site near the size of a 1-head one.
    segment_labels (H, S), segment_clip (S,) non-decreasing, clip_labels (H, C) -> (C,) segment index, -1 for a clip
    without segments."""
    agree = (segment_labels == clip_labels[:, segment_clip]).sum(axis=0)  # (S,) heads whose clip vote it carries
    order = np.lexsort((np.arange(len(segment_clip)), -agree, segment_clip))  # by clip, most agreeing first
    clips, first = np.unique(segment_clip[order], return_index=True)
    out = np.full(clip_labels.shape[1], -1, dtype=np.int64)
    out[clips] = order[first]
    return out


@dataclass(frozen=True)
class ClusterStats:
    """Per-cluster numbers of one head, each (K,): clips, clips with a reference label, share of those carrying
    the top label (purity), entropy (bits) of the label distribution, mean clip confidence; counts (K, L)."""

    sizes: np.ndarray
    labelled: np.ndarray
    purity: np.ndarray
    entropy: np.ndarray
    confidence: np.ndarray
    counts: np.ndarray


def cluster_stats(labels: np.ndarray, confidence: np.ndarray, y: np.ndarray, n_clusters: int) -> ClusterStats:
    """labels, confidence (C,), y (C, L) bool reference labels (rows of zeros: no label) -> ClusterStats."""
    sizes = np.bincount(labels, minlength=n_clusters)
    has = y.any(axis=1)
    labelled = np.bincount(labels[has], minlength=n_clusters)
    counts = cluster_label_counts(labels, y, n_clusters)  # (K, L)
    top = counts.max(axis=1) if counts.shape[1] else np.zeros(n_clusters, dtype=np.int64)
    purity = np.divide(top, labelled, out=np.full(n_clusters, np.nan), where=labelled > 0)
    conf = np.bincount(labels, weights=confidence, minlength=n_clusters)
    conf = np.divide(conf, sizes, out=np.full(n_clusters, np.nan), where=sizes > 0)
    return ClusterStats(sizes, labelled, purity, label_entropy(counts), conf, counts)


def top_labels(counts: np.ndarray, labelled: int, vocab: Sequence[str], n: int) -> list[tuple[str, int, float]]:
    """A cluster's `n` most common reference labels: counts (L,) -> [(label, clips, share of its labelled clips)],
    most common first (ties: vocabulary order), labels with no clip left out."""
    order = np.argsort(-counts, kind="stable")[:n]
    return [(vocab[j], int(counts[j]), float(counts[j]) / labelled) for j in order if counts[j] > 0]
