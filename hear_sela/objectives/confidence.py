"""Confidence weights of the self-labels, after Seetharaman et al. (ICASSP 2019, "seed 003") adapted to SeLa.

The paper weights each bootstrapped label by C = (C_post · C_cl · C_JSD)^α (its Eq. 7). Here, per head h and
segment i (`sela.confidence` names the terms that are on, `sela.confidence_alpha` is α):
- posterior (C_a): the solver's posterior of the chosen cluster, max_k Q[k, i] / Σ_k Q[k, i] (SeLa's, today's
  weight; the store's `confidences`).
- size (C_b, the paper's cluster-size equality C_cl, Eq. 4, per cluster): with f_k the share of the N segments that
  head h labels k and t_k the cluster's target marginal in that solve, c_k = max(0, 1 − |f_k − t_k| / t_k); the
  segment gets c of its cluster. Eq. 4's summand for cluster j is 1/N − |1/N − f_j| (its N being the cluster
  count); divided by its maximum 1/N, with the target t_k in the place of 1/N, it is c_k. So 1 when the cluster
  has exactly its target size, 0 when it is empty or twice its target or more.
- agreement (C_c, the paper's fit term in spirit: how well the labeling is supported): how much the other heads
  agree with head h on segment i. Heads' cluster ids are unrelated, so agreement is co-membership: with a = the
  cluster of i under head h, b = under head h', n_ab the segments in both, n_a and n_b their sizes,
  agree_{h,h'}(i) = n_ab / sqrt(n_a n_b) (1 when the two clusters are the same set of segments), averaged over the
  other heads; 1 for a single head. With views (`view_agreement`), the share of views whose own argmax is the label.
The weight of a segment in the loss is C^α over the terms that are on, normalised per batch (`sela.sela_loss`).
The paper's "quantity" (its Table 1) is Σ w(α) / Σ w(0) = the mean of C^α over all (head, segment) pairs, logged at
every label update as `confidence_quantity`.

Legend: H heads, N segments, K clusters, V views, B batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

TERMS = ("posterior", "size", "agreement")


def check_terms(names: Sequence[str]) -> None:
    """A one-line error for an unknown or repeated `sela.confidence` term."""
    unknown = [n for n in names if n not in TERMS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"sela.confidence={list(names)}: terms must be distinct names among {', '.join(TERMS)}")


def confidence_weights(confidence: torch.Tensor, alpha: float) -> torch.Tensor:
    """Unnormalised weights C^α, (...) -> (...) float32 (C clamped at 1e-12, so a zero term gives a tiny weight, not
    0^α = NaN gradients' worth of trouble at α < 0)."""
    return confidence.float().clamp_min(1e-12) ** alpha


def size_term(labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """C_b of every segment: labels (H, N) int64, targets (K,) or (H, K) marginals summing to 1 -> (H, N) float32."""
    heads, n = labels.shape
    targets = targets.to(labels.device, torch.float64).expand(heads, -1)  # (H, K)
    counts = torch.zeros_like(targets).scatter_add_(1, labels, torch.ones_like(labels, dtype=torch.float64))
    share = counts / max(n, 1)  # (H, K)
    per_cluster = (1.0 - (share - targets).abs() / targets).clamp_min(0.0)  # (H, K)
    return per_cluster.gather(1, labels).float()


def agreement_term(labels: torch.Tensor) -> torch.Tensor:
    """C_c from the heads: labels (H, N) int64 -> (H, N) float32, mean over the other heads of n_ab/sqrt(n_a n_b)."""
    heads, n = labels.shape
    if heads == 1:
        return torch.ones(1, n, device=labels.device)
    k = int(labels.max()) + 1 if n else 1
    sizes = torch.stack([torch.bincount(h, minlength=k) for h in labels]).double()  # (H, K)
    total = torch.zeros(heads, n, dtype=torch.float64, device=labels.device)
    for h in range(heads):
        for g in range(heads):
            if g == h:
                continue
            joint = torch.bincount(labels[h] * k + labels[g], minlength=k * k).double()  # (K*K,)
            n_ab = joint[labels[h] * k + labels[g]]  # (N,)
            total[h] += n_ab / (sizes[h, labels[h]] * sizes[g, labels[g]]).sqrt()
    return (total / (heads - 1)).float()


def view_agreement(view_labels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """C_c from the views (sela.views > 1): view_labels (V, H, N) each view's own argmax, labels (H, N) the shared
    label -> (H, N) float32, the share of views that chose the shared label."""
    return (view_labels == labels.unsqueeze(0)).float().mean(0)


def combined_confidence(names: Sequence[str], posterior: torch.Tensor, terms: Mapping[str, torch.Tensor],
                        index: torch.Tensor | slice = slice(None)) -> torch.Tensor:
    """C_a·C_b·C_c over the terms that are on, for the segments `index`: posterior (H, B) (the store's
    confidences of those segments), terms name -> (H, N) -> (H, B). Only the posterior: that very tensor (today's
    weight, bitwise); a term not computed yet (before the first update) counts as 1, as the initial posterior does."""
    out = posterior if "posterior" in names else torch.ones_like(posterior)
    for name in names:
        if name != "posterior" and name in terms:
            out = out * terms[name][:, index]
    return out


def update_terms(names: Sequence[str], labels: torch.Tensor, posterior: torch.Tensor, targets: torch.Tensor,
                 alpha: float, view_labels: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor],
                                                                                  dict[str, float]]:
    """After a label update: the terms that are on besides the posterior (name -> (H, N)), and the logged metrics
    (the quantity and each such term's mean). labels (H, N), posterior (H, N), targets (K,) or (H, K) the solve's
    marginals, view_labels (V, H, N) or None (then agreement is between heads)."""
    terms: dict[str, torch.Tensor] = {}
    if "size" in names:
        terms["size"] = size_term(labels, targets)
    if "agreement" in names:
        terms["agreement"] = agreement_term(labels) if view_labels is None else view_agreement(view_labels, labels)
    weights = confidence_weights(combined_confidence(names, posterior, terms), alpha)  # (H, N)
    stats = {"confidence_quantity": float(weights.double().mean())}
    stats.update({f"confidence_{name}_mean": float(t.double().mean()) for name, t in terms.items()})
    return terms, stats
