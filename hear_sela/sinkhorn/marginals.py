"""Target cluster marginals of the solver: uniform, SeLaVi's Gaussian-perturbed sizes, the soft cluster mass.

Legend: H heads, N samples (N_r on this rank), K clusters.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from hear_sela import distributed


def uniform_marginals(heads: int, clusters: int, device: torch.device | str | None = None) -> Tensor:
    """Equal cluster sizes.  # (H, K) float64"""
    return torch.full((heads, clusters), 1.0 / clusters, dtype=torch.float64, device=device)


def gaussian_sizes(heads: int, clusters: int, n_total: int, sd: float = 0.1,
                   generator: torch.Generator | None = None) -> Tensor:
    """SeLaVi's Gaussian-perturbed cluster sizes, one draw per head, unsorted: (1 + sd·N(0, 1))·n_total/K clamped at
    1 sample.  # (H, K) float64 on the CPU
    Ranks must pass the same generator state so that they draw the same sizes."""
    noise = torch.randn((heads, clusters), generator=generator, dtype=torch.float64, device="cpu")
    return ((1.0 + sd * noise) * (n_total / clusters)).clamp_min(1.0)


def sort_to_mass(sizes: Tensor, cluster_mass: Tensor) -> Tensor:
    """SeLaVi's re-sort: per head the largest size goes to the heaviest cluster, normalised to sum 1.
    sizes (H, K), cluster_mass (H, K) -> (H, K) float64 on cluster_mass's device.

    Deviation from facebookresearch/selavi src/sk_utils.py: that code sets r ∝ 1/sizes, which gives the largest
    target to the lightest cluster and contradicts the sorting step; here r ∝ sizes, the evident intent."""
    order = torch.argsort(cluster_mass.detach().to("cpu", torch.float64), dim=1)  # lightest first
    targets = torch.empty_like(sizes).scatter_(1, order, torch.sort(sizes, dim=1).values)
    return (targets / targets.sum(1, keepdim=True)).to(cluster_mass.device)


def gaussian_marginals(cluster_mass: Tensor, n_total: int, sd: float = 0.1,
                       generator: torch.Generator | None = None) -> Tensor:
    """A fresh Gaussian draw of sizes (`gaussian_sizes`) sorted to the current cluster mass (`sort_to_mass`).
    # (H, K) float64

    cluster_mass: (H, K) current mass per cluster (e.g. summed softmax over all ranks' samples). Ranks must pass the
    same generator state so that they draw the same sizes.
    """
    heads, k = cluster_mass.shape
    return sort_to_mass(gaussian_sizes(heads, k, n_total, sd, generator), cluster_mass)


@torch.no_grad()
def soft_cluster_mass(logits: Tensor | Iterable[Tensor], chunk_size: int = 65536) -> Tensor:
    """Σ over all ranks' samples of softmax_K(logits), SeLaVi's "current cluster mass": logits (H, N_r, K), or an
    iterable of row blocks (H, n, K) of them (computed lazily, e.g. `MultiHead.logit_chunks`) -> (H, K) float64."""
    blocks = logits
    if isinstance(logits, Tensor):  # an empty shard still gives one empty block, whose mass is zeros
        blocks = [logits[:, start:start + chunk_size] for start in range(0, max(logits.shape[1], 1), chunk_size)]
    mass = None
    for block in blocks:
        part = torch.softmax(block.float(), dim=-1).sum(1, dtype=torch.float64)  # (H, K)
        mass = part if mass is None else mass + part
    return distributed.all_reduce(mass, "sum")


def _target_marginals(marginals: Tensor | None, heads: int, clusters: int, device: torch.device) -> Tensor:
    """Cluster targets as probabilities.  # None | (K,) | (H, K) -> (H, K) float64"""
    if marginals is None:
        return uniform_marginals(heads, clusters, device)
    m = torch.as_tensor(marginals, dtype=torch.float64).to(device)
    if m.dim() == 1:
        m = m.expand(heads, -1)
    if m.shape != (heads, clusters):
        raise ValueError(f"marginals must be (K,) or (H, K) = ({heads}, {clusters}), got {tuple(m.shape)}")
    if not (torch.isfinite(m).all() and (m > 0).all()):
        raise ValueError("marginals must be finite and > 0 (a zero target makes the cluster's dual infinite)")
    return m / m.sum(1, keepdim=True)
