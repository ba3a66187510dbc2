"""Clustering metrics of emergent classes against reference annotations. Pure numpy functions.

Legend: N clips, K clusters (a head's label space), L reference labels (tags), C clips with a segment each.

Single-label references (one label per clip): sklearn's NMI (arithmetic normalisation), AMI, ARI, and purity.

Multi-label references (FSD50K: a set of tags per clip), `Y` a multi-hot (N, L) matrix:
- `tag_mi`: the measure of the audio SeLa code (mnuhurr/audio-self-labeling, utils.py::cls_tag_mi), written from
  its description. Every (clip, tag) pair is one joint observation, so a clip with m tags counts m times in the
  joint counts C[k, l] = #clips of cluster k carrying tag l, and p(k, l) = C / C.sum(). The cluster marginal p(k)
  is the clips' cluster distribution (each clip once, *not* the row sums of p(k, l)); the tag marginal p(l) is
  the tag-occurrence distribution (the column sums of p(k, l)). MI = sum p(k, l) log2(p(k, l) / (p(k) p(l)))
  over cells where both are > 0, divided by log2(K) with K the head's number of clusters (the width of the
  one-hot matrix, used or not). With one tag per clip this is MI / log2(K), not sklearn's NMI. Clips without tags
  add to p(k) but to no joint cell (callers here drop them first).
- `multilabel_purity`: each cluster's majority tag is the tag carried by most of its clips; a clip is correct if
  its cluster's majority tag is among its tags. Reduces to purity for single-label data.
- `overlapping_nmi`: the standard NMI for covers, NMI_max of McDaid, Greene & Hurley (2011, arXiv:1110.2515),
  with the clusters as a partition and each tag as the set of clips carrying it (the form the `onmi` tool
  computes). 1 for identical covers, about 0 for independent ones, symmetric. Its admissibility rule rejects a
  small pure cluster inside a much larger class, so it falls to about 0 when K is well above the number of classes
  (SeLa's usual over-clustering); it is informative at K near the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn import metrics as skm


def multi_hot(label_sets: Sequence[Sequence[str]], vocabulary: Sequence[str] | None = None
              ) -> tuple[np.ndarray, list[str]]:
    """Label sets -> (Y (N, L) bool, vocabulary). Vocabulary default: sorted union; unknown labels raise."""
    vocab = sorted({lab for labels in label_sets for lab in labels}) if vocabulary is None else list(vocabulary)
    index = {lab: j for j, lab in enumerate(vocab)}
    y = np.zeros((len(label_sets), len(vocab)), dtype=bool)
    for i, labels in enumerate(label_sets):
        for lab in labels:
            if lab not in index:
                raise ValueError(f"label {lab!r} of item {i} is not in the vocabulary ({len(vocab)} labels)")
            y[i, index[lab]] = True
    return y, vocab


def cluster_label_counts(pred: np.ndarray, y: np.ndarray, n_clusters: int) -> np.ndarray:
    """C[k, l] = number of items in cluster k carrying label l. pred (N,) int, y (N, L) bool -> (K, L) int64."""
    pred = np.asarray(pred)
    if pred.ndim != 1 or len(pred) != len(y):
        raise ValueError(f"pred {pred.shape} and y {np.shape(y)} must have the same number of items")
    if len(pred) and (pred.min() < 0 or pred.max() >= n_clusters):
        raise ValueError(f"cluster ids must lie in [0, {n_clusters}), got [{pred.min()}, {pred.max()}]")
    one_hot = sparse.csr_matrix((np.ones(len(pred)), (np.arange(len(pred)), pred)), shape=(len(pred), n_clusters))
    return np.asarray((one_hot.T @ sparse.csr_matrix(y, dtype=np.float64)).todense()).round().astype(np.int64)


# ---------------------------------------------------------------- single-label


def purity(pred: np.ndarray, ref: np.ndarray) -> float:
    """Fraction of items whose reference label is their cluster's most common one. pred, ref (N,)."""
    table = skm.cluster.contingency_matrix(ref, pred)  # (classes, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def single_label_scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """NMI (arithmetic), AMI, ARI, purity of a clustering `pred` (N,) against single labels `ref` (N,)."""
    return {
        "nmi": float(skm.normalized_mutual_info_score(ref, pred)),
        "ami": float(skm.adjusted_mutual_info_score(ref, pred)),
        "ari": float(skm.adjusted_rand_score(ref, pred)),
        "purity": purity(pred, ref),
    }


# ---------------------------------------------------------------- multi-label


def tag_mi(pred: np.ndarray, y: np.ndarray, n_clusters: int) -> float:
    """The audio SeLa code's tag MI (module docstring), in [0, 1]-ish. pred (N,) int, y (N, L) bool."""
    if n_clusters < 2:
        raise ValueError(f"tag_mi needs n_clusters >= 2, got {n_clusters}")
    joint = cluster_label_counts(pred, y, n_clusters).astype(np.float64)  # (K, L)
    if joint.sum() == 0:
        return 0.0
    p_kl = joint / joint.sum()
    p_k = np.bincount(pred, minlength=n_clusters) / len(pred)  # clips, each once
    p_l = p_kl.sum(axis=0)  # tag occurrences
    indep = p_k[:, None] * p_l[None, :]
    ok = (p_kl > 0) & (indep > 0)
    mi = float(np.sum(p_kl[ok] * np.log2(p_kl[ok] / indep[ok])))
    return mi / float(np.log2(n_clusters))


def majority_labels(counts: np.ndarray) -> np.ndarray:
    """Per cluster the label carried by most of its items (lowest index on ties); -1 for empty clusters.
    counts (K, L) -> (K,)."""
    best = counts.argmax(axis=1)
    return np.where(counts.max(axis=1) > 0, best, -1)


def multilabel_purity(pred: np.ndarray, y: np.ndarray, n_clusters: int | None = None) -> float:
    """Fraction of items whose cluster's majority tag is among their own tags. pred (N,), y (N, L) bool."""
    n_clusters = int(pred.max()) + 1 if n_clusters is None else n_clusters
    majority = majority_labels(cluster_label_counts(pred, y, n_clusters))  # (K,)
    maj = majority[pred]  # (N,)
    hit = (maj >= 0) & y[np.arange(len(pred)), np.maximum(maj, 0)]
    return float(hit.mean()) if len(pred) else 0.0


def _h(p: np.ndarray) -> np.ndarray:
    """-p log2 p with 0 log 0 = 0, elementwise."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros_like(p)
    pos = p > 0
    out[pos] = -p[pos] * np.log2(p[pos])
    return out


def _binary_entropy(sizes: np.ndarray, n: int) -> np.ndarray:
    """Entropy of membership in a set of each size among n items. (M,) -> (M,)."""
    p = sizes / n
    return _h(p) + _h(1.0 - p)


def overlapping_nmi(pred: np.ndarray, y: np.ndarray) -> float:
    """McDaid et al.'s NMI_max between the partition `pred` (N,) and the cover given by the columns of y (N, L).

    For a cluster X_k and a tag set Y_l, with a = P(in neither), b = P(in Y_l only), c = P(in X_k only),
    d = P(in both), H(X_k | Y_l) = H(X_k, Y_l) - H(Y_l), only admissible when h(a) + h(d) >= h(b) + h(c)
    (otherwise Y_l is no evidence about X_k). H(X_k | Y) = min over admissible l, or H(X_k) if none.
    I = (H(X) - H(X|Y) + H(Y) - H(Y|X)) / 2 with H(X) = sum_k H(X_k); NMI_max = I / max(H(X), H(Y)).
    """
    n = len(pred)
    y = np.asarray(y, dtype=bool)
    y = y[:, y.any(axis=0)]  # unused tags are not sets of the cover
    _, pred = np.unique(pred, return_inverse=True)  # empty clusters are not sets of the cover either
    k = int(pred.max()) + 1 if n else 0
    if n == 0 or k == 0 or y.shape[1] == 0:
        return 0.0
    both = cluster_label_counts(pred, y, k).astype(np.float64)  # (K, L)
    size_x = np.bincount(pred, minlength=k).astype(np.float64)[:, None]  # (K, 1)
    size_y = y.sum(axis=0).astype(np.float64)[None, :]  # (1, L)
    d = both / n
    c = (size_x - both) / n
    b = (size_y - both) / n
    a = 1.0 - b - c - d
    h_joint = _h(a) + _h(b) + _h(c) + _h(d)  # (K, L)
    admissible = _h(a) + _h(d) >= _h(b) + _h(c)
    hx = _binary_entropy(size_x[:, 0], n)  # (K,)
    hy = _binary_entropy(size_y[0], n)  # (L,)
    cond_x = np.where(admissible, h_joint - hy[None, :], np.inf).min(axis=1)  # H(X_k | Y)
    cond_x = np.minimum(np.where(np.isfinite(cond_x), cond_x, hx), hx)
    cond_y = np.where(admissible, h_joint - hx[:, None], np.inf).min(axis=0)  # H(Y_l | X)
    cond_y = np.minimum(np.where(np.isfinite(cond_y), cond_y, hy), hy)
    total_x, total_y = hx.sum(), hy.sum()
    denom = max(total_x, total_y)
    if denom <= 0:  # both covers are one set of all items: identical
        return 1.0
    mutual = 0.5 * (total_x - cond_x.sum() + total_y - cond_y.sum())
    return float(np.clip(mutual / denom, 0.0, 1.0))


def multilabel_scores(pred: np.ndarray, y: np.ndarray, n_clusters: int) -> dict[str, float]:
    """tag_mi, multi-label purity and overlapping NMI of `pred` (N,) against multi-hot `y` (N, L)."""
    return {
        "tag_mi": tag_mi(pred, y, n_clusters),
        "ml_purity": multilabel_purity(pred, y, n_clusters),
        "onmi": overlapping_nmi(pred, y),
    }


# ---------------------------------------------------------------- per-cluster and per-label views


def label_entropy(counts: np.ndarray) -> np.ndarray:
    """Entropy (bits) of each cluster's tag-occurrence distribution. counts (K, L) -> (K,); 0 for empty rows."""
    totals = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)
    return _h(p).sum(axis=1)


def best_cluster_per_label(counts: np.ndarray, cluster_sizes: np.ndarray, label_sizes: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each label l the cluster k maximising F1 of "clip in k" as a detector of "clip carries l".

    counts (K, L), cluster_sizes (K,), label_sizes (L,) -> (best cluster (L,), f1 (L,), precision (L,), recall (L,)).
    """
    precision = np.divide(counts, cluster_sizes[:, None], out=np.zeros(counts.shape), where=cluster_sizes[:, None] > 0)
    recall = np.divide(counts, label_sizes[None, :], out=np.zeros(counts.shape), where=label_sizes[None, :] > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(counts.shape), where=denom > 0)  # (K, L)
    best = f1.argmax(axis=0)
    cols = np.arange(counts.shape[1])
    return best, f1[best, cols], precision[best, cols], recall[best, cols]


# ---------------------------------------------------------------- segment -> clip, baselines


def majority_vote(segment_labels: np.ndarray, segment_clip: np.ndarray, n_clips: int,
                  confidences: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clip label = the label of most of its segments; ties go to the larger summed confidence, then the lower id.

    segment_labels, segment_clip (S,) int, confidences (S,) or None -> clip labels (C,) int64 (-1 for clips
    without segments), clip confidence (C,) = mean confidence of the segments that carry the chosen label.
    """
    segment_labels = np.asarray(segment_labels, dtype=np.int64)
    segment_clip = np.asarray(segment_clip, dtype=np.int64)
    conf = np.ones(len(segment_labels)) if confidences is None else np.asarray(confidences, dtype=np.float64)
    # one row per (clip, label) pair: votes and summed confidence
    pairs, inverse = np.unique(np.stack([segment_clip, segment_labels], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    votes = np.bincount(inverse, minlength=len(pairs))
    conf_sum = np.bincount(inverse, weights=conf, minlength=len(pairs))
    # sort so that each clip's winner comes first: clip asc, votes desc, confidence desc, label asc
    order = np.lexsort((pairs[:, 1], -conf_sum, -votes, pairs[:, 0]))
    first = order[np.r_[True, pairs[order[1:], 0] != pairs[order[:-1], 0]]]
    labels = np.full(n_clips, -1, dtype=np.int64)
    clip_conf = np.zeros(n_clips)
    labels[pairs[first, 0]] = pairs[first, 1]
    clip_conf[pairs[first, 0]] = conf_sum[first] / votes[first]
    return labels, clip_conf


def random_labeling(pred: np.ndarray, seed: int = 0) -> np.ndarray:
    """A random relabeling with exactly the cluster sizes of `pred` (a permutation of it). (N,) -> (N,)."""
    return np.random.default_rng(seed).permutation(np.asarray(pred))
