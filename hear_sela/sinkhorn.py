"""SeLa's Sinkhorn-Knopp label solver: float32-safe, all heads batched, sharded over ranks, matrix-free at scale.

Problem, per head h: P = softmax_K(L)^λ seen as K × N; find Q = diag(r) P diag(c) whose cluster sums are the target
marginals a (uniform 1/K or a prior) and whose sample sums are 1/N; label_i = argmax_k Q[k, i] and
confidence_i = max_k Q[k, i] / Σ_k Q[k, i]. The iteration, its start (r = 1/K, c = 1/N) and its stopping rule
(err = Σ_i |c_i / c'_i − 1| every `check_every` iterations) are SeLa's (yukimasano/self-label, sinkhornknopp.py).

Formulation (why it is exact in float32):
- P^λ = exp(λ(L − rowmax)) × a per-sample factor, and per-sample factors are absorbed by c, so the solver works on the
  log kernel A = λ(L − rowmax) ≤ 0 (H, N, K) and never forms p^λ, which underflows in float32 for p < ~0.03.
- The problem is rescaled to sample sums 1 and cluster sums N·a (same Q up to a factor N, same ratios c/c').
- Stabilised scaling (Schmitzer 2016): the duals u = log r, v = log c are split into absorbed parts α (H, K),
  β (H, N), kept in float64, and scaling factors r~, c~ near 1. The stored kernel G = exp(A + α + β) is
  row-normalised when it is (re)built, so each iteration is two mat-vecs with factors in [1/τ, τ] and cannot
  overflow. When a factor leaves that range (early iterations; dead clusters, whose column of G underflows to 0)
  the iteration is done exactly in the log domain instead (column logsumexp over samples, streamed in chunks), the
  duals are absorbed and G is rebuilt. The iterate sequence is SeLa's in exact arithmetic, whichever way each
  iteration is computed; a rebuild only changes how.
- Entries of G below ε (e^-38 in float32, relative to a row that sums to 1) are dropped: they move no row or column
  sum by more than float32 rounding while the factors stay in [1/τ, τ]. At λ = 25 that leaves ~1-5 % of the
  entries, so the default kernel is a sparse CSR matrix (two sparse mat-vecs per iteration), falling back to the
  dense G (stored logits) or to recomputing G chunk by chunk (features) when the kernel is not sparse.
- Labels are read from the exact log kernel with the final duals: argmax_k (A_ik + u_k), independent of the
  truncation.

Sharding: each rank passes only its own rows (samples). Per iteration the ranks all-reduce the (H, K) column sums
and the (H,) error; an exact iteration all-reduces an (H, K) column max then sum (logsumexp across ranks). Decisions
(rebuild, convergence) depend only on all-reduced numbers, so every rank takes the same branch. No rank gathers N × K.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from hear_sela import distributed

KernelKind = Literal["auto", "dense", "sparse"]

_LOG_GUARD = 40.0  # scaling factors beyond e^±40 are absorbed before products of them can leave float32's range
_LOG_EPS = -40.0  # sparse kernel: entries below e^-40 of their row's mass are dropped
_A_FLOOR = -1.0e30  # finite stand-in for λ(L − max) = −inf (−inf logits, or a range that overflows after × λ)
_CHUNK_BYTES = {"cuda": 256 << 20, "cpu": 16 << 20}  # one (H, chunk, K) block; CPU: stay in the last-level cache
_SPARSE_MAX_DENSITY = 0.1  # above this a CSR pair costs more bytes and time per iteration than the dense kernel


@dataclass
class Duals:
    """Cluster log-duals u = log r of a solve in the solver's gauge; the next solve's warm start.

    The sample duals follow from them (one exact c-update), so (H, K) numbers are the whole state.
    """

    log_r: Tensor  # (H, K) float64, defined up to a constant per head
    lamb: float


@dataclass
class SinkhornResult:
    labels: Tensor  # (H, N_r) int64, this rank's samples
    confidences: Tensor  # (H, N_r) float32: Q's posterior of the chosen cluster
    duals: Duals
    iterations: Tensor  # (H,) int64, SeLa's count (r- and c-update pairs)
    error: Tensor  # (H,) float64, the last checked Σ|c/c' − 1| over all ranks' samples
    converged: Tensor  # (H,) bool
    seconds: float
    rebuilds: int  # kernel (re)builds, each one exact log-domain iteration
    kernel: str  # "sparse" | "dense" | "recompute", as used by the last build
    density: float  # kept fraction of the kernel in the last build (this rank)


def uniform_marginals(heads: int, clusters: int, device: torch.device | str | None = None) -> Tensor:
    """Equal cluster sizes.  # (H, K) float64"""
    return torch.full((heads, clusters), 1.0 / clusters, dtype=torch.float64, device=device)


def gaussian_marginals(cluster_mass: Tensor, n_total: int, sd: float = 0.1,
                       generator: torch.Generator | None = None) -> Tensor:
    """SeLaVi's Gaussian-perturbed cluster sizes, sorted to the current cluster mass.  # (H, K) float64

    cluster_mass: (H, K) current mass per cluster (e.g. summed softmax over all ranks' samples); the largest drawn
    size goes to the heaviest cluster. Sizes (1 + sd·N(0, 1))·n_total/K, clamped at 1 sample, normalised to sum 1.
    Deviation from facebookresearch/selavi src/sk_utils.py: that code sets r ∝ 1/sizes, which gives the largest
    target to the lightest cluster and contradicts the sorting step; here r ∝ sizes, the evident intent.
    Ranks must pass the same generator state so that they draw the same sizes.
    """
    heads, k = cluster_mass.shape
    noise = torch.randn((heads, k), generator=generator, dtype=torch.float64, device="cpu")
    sizes = ((1.0 + sd * noise) * (n_total / k)).clamp_min(1.0)  # (H, K)
    order = torch.argsort(cluster_mass.detach().to("cpu", torch.float64), dim=1)  # lightest first
    targets = torch.empty_like(sizes).scatter_(1, order, torch.sort(sizes, dim=1).values)
    return (targets / targets.sum(1, keepdim=True)).to(cluster_mass.device)


@torch.no_grad()
def soft_cluster_mass(logits: Tensor, chunk_size: int = 65536) -> Tensor:
    """Σ over all ranks' samples of softmax_K(logits), SeLaVi's "current cluster mass".  # (H, N_r, K) -> (H, K)"""
    mass = torch.zeros(logits.shape[0], logits.shape[2], dtype=torch.float64, device=logits.device)
    for start in range(0, logits.shape[1], chunk_size):
        mass += torch.softmax(logits[:, start:start + chunk_size].float(), dim=-1).sum(1, dtype=torch.float64)
    return distributed.all_reduce(mass, "sum")


# ----------------------------------------------------------------------------------------------------------------
# Where the logits come from: stored, or recomputed per chunk from features and head weights.


class _LogitSource:
    def __init__(self, logits: Tensor, device: torch.device, dtype: torch.dtype):
        self.logits = logits  # (H, N_r, K), any device
        self.device, self.dtype = device, dtype
        self.heads, self.rows, self.clusters = logits.shape
        self._index: dict[tuple[int, ...], Tensor] = {}

    def chunk(self, heads: tuple[int, ...] | None, start: int, stop: int) -> Tensor:
        """Logits of rows [start, stop) for `heads` (None: all).  # (H_a, C, K)"""
        block = self.logits[:, start:stop]
        if heads is not None and len(heads) < self.heads:
            if heads not in self._index:
                self._index = {heads: torch.tensor(heads, device=block.device)}
            block = block.index_select(0, self._index[heads])
        return block.to(self.device, self.dtype, non_blocking=True)


class _FeatureSource:
    """Logits = features · Wᵀ + b recomputed per chunk: memory O(N·D) instead of O(H·N·K)."""

    def __init__(self, features: Tensor, weights: Tensor, bias: Tensor | None, device: torch.device,
                 dtype: torch.dtype):
        self.features = features  # (N_r, D), any device
        self.weights_t = weights.to(device, dtype).transpose(1, 2)  # (H, D, K)
        self.bias = None if bias is None else bias.to(device, dtype).unsqueeze(1)  # (H, 1, K)
        self.device, self.dtype = device, dtype
        self.heads, self.clusters, _ = weights.shape
        self.rows = features.shape[0]
        self._key: tuple[int, ...] | None = None

    def _select(self, heads: tuple[int, ...] | None) -> tuple[Tensor, Tensor | None]:
        if heads is None or len(heads) == self.heads:
            return self.weights_t, self.bias
        if heads != self._key:
            idx = torch.tensor(heads, device=self.device)
            self._w = self.weights_t.index_select(0, idx)  # (H_a, D, K)
            self._b = None if self.bias is None else self.bias.index_select(0, idx)  # (H_a, 1, K)
            self._key = heads
        return self._w, self._b

    def chunk(self, heads: tuple[int, ...] | None, start: int, stop: int) -> Tensor:
        """Logits of rows [start, stop) for `heads` (None: all).  # (H_a, C, K) contiguous"""
        w, b = self._select(heads)
        f = self.features[start:stop].to(self.device, self.dtype, non_blocking=True)  # (C, D)
        f = f.unsqueeze(0).expand(w.shape[0], -1, -1)  # (H_a, C, D), a view
        out = torch.bmm(f, w) if b is None else torch.baddbmm(b, f, w)
        # Finite inputs can still overflow float32 in the product; keep the kernel free of NaN regardless.
        return out.nan_to_num_(nan=0.0)


def _log_kernel(logits: Tensor, lamb: float) -> Tensor:
    """A = λ(L − rowmax) ≤ 0, finite.  # (H_a, C, K) -> (H_a, C, K) contiguous"""
    rowmax = logits.amax(-1, keepdim=True)
    out = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)  # contiguous whatever the input
    return torch.sub(logits, rowmax, out=out).mul_(lamb).clamp_min_(_A_FLOOR)


def _safe_exp_(x: Tensor) -> Tensor:
    """In-place exp with arguments clamped into the normal range.  # any shape

    Results below it (< e^-86 in float32, far below any row's resolution) take a 12-40x slower path in the CPU's
    vectorised exp; clamping turns them into e^-86 instead, which no sum can see.
    """
    return x.clamp_min_(math.log(torch.finfo(x.dtype).tiny) + 1.0).exp_()


def _log_pmax(logits: Tensor, lamb: float) -> Tensor:
    """λ·log max_k softmax(L): SeLa's c = 1/N start, moved from P = softmax^λ onto A.  # (H_a, C, K) -> (H_a, C)"""
    return -lamb * torch.log(_safe_exp_(logits - logits.amax(-1, keepdim=True)).sum(-1))


def _row_chunks(rows: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, rows)) for s in range(0, rows, size)]


# ----------------------------------------------------------------------------------------------------------------
# Kernel stores: what one scaling iteration reads. sweep(r~) returns c~ = 1/(G r~) and this rank's Gᵀc~.


class _DenseStore:
    kind = "dense"

    def __init__(self, g: Tensor, chunk: int):
        self.g = g  # (H_a, N_r, K)
        self.chunk = chunk

    def sweep(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """# (H_a, K) -> (H_a, N_r), (H_a, K)"""
        heads, rows, k = self.g.shape
        c = torch.empty(heads, rows, dtype=r.dtype, device=r.device)
        colsum = torch.zeros(heads, 1, k, dtype=r.dtype, device=r.device)
        r_row = r.unsqueeze(1)  # (H_a, 1, K)
        # Both mat-vecs per chunk: the second reads the chunk while it is still in cache (one memory pass).
        for start, stop in _row_chunks(rows, self.chunk):
            g = self.g[:, start:stop]
            cc = torch.bmm(r_row, g.transpose(1, 2)).reciprocal_()  # (H_a, 1, C); bmm(G, r) is a slow GEMM path
            colsum.baddbmm_(cc, g)
            c[:, start:stop] = cc.squeeze(1)
        return c, colsum.squeeze(1)

    def drop(self, keep: Tensor) -> None:
        """Compact the kept heads to the front in place, so that later sweeps skip converged heads."""
        kept = keep.nonzero().flatten().tolist()
        for dst, src in enumerate(kept):  # src >= dst: a source is never overwritten before it is read
            if dst != src:
                self.g[dst].copy_(self.g[src])
        self.g = self.g[: len(kept)]


class _SparseStore:
    kind = "sparse"

    def __init__(self, s: Tensor, heads: int, rows: int, clusters: int):
        # One block-diagonal matrix for all heads: row h·N_r + i, column h·K + k, so each product is one call.
        self.s = s  # (H_a·N_r, H_a·K) CSR
        csc = s.to_sparse_csc()
        self.st = torch.sparse_csr_tensor(csc.ccol_indices(), csc.row_indices(), csc.values(),
                                          size=(heads * clusters, heads * rows))  # (H_a·K, H_a·N_r) CSR = Sᵀ
        self.heads, self.rows, self.clusters = heads, rows, clusters
        self.live = torch.ones(heads, dtype=torch.bool, device=s.device)

    def column_sums(self) -> Tensor:
        """Σ_i G_ik, the r-update's denominator at c~ = 1.  # (H_a, K)"""
        ones = torch.ones(self.heads * self.rows, dtype=self.s.dtype, device=self.s.device)
        return torch.mv(self.st, ones).view(self.heads, self.clusters)

    def sweep(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """# (H_live, K) -> (H_live, N_r), (H_live, K)"""
        full = torch.ones(self.heads, self.clusters, dtype=r.dtype, device=r.device)
        full[self.live] = r  # converged heads ride along with r~ = 1 (cheap) until the next rebuild drops them
        c = torch.mv(self.s, full.view(-1)).reciprocal_()  # (H_a·N_r,)
        colsum = torch.mv(self.st, c).view(self.heads, self.clusters)  # (H_a, K)
        return c.view(self.heads, self.rows)[self.live], colsum[self.live]

    def drop(self, keep: Tensor) -> None:
        self.live[self.live.clone()] = keep


class _RecomputeStore:
    """Matrix-free dense kernel: G = exp(A + α + β) recomputed per chunk from the source in every sweep."""

    kind = "recompute"

    def __init__(self, source: _FeatureSource | _LogitSource, heads: tuple[int, ...], alpha: Tensor, beta: Tensor,
                 lamb: float, chunk: int):
        self.source, self.heads, self.lamb, self.chunk = source, heads, lamb, chunk
        self.alpha = alpha.to(source.dtype)  # (H_a, K)
        self.beta = beta.to(source.dtype)  # (H_a, N_r)

    def sweep(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """# (H_a, K) -> (H_a, N_r), (H_a, K)"""
        heads, k = r.shape
        c = torch.empty(heads, self.source.rows, dtype=r.dtype, device=r.device)
        colsum = torch.zeros(heads, 1, k, dtype=r.dtype, device=r.device)
        r_row = r.unsqueeze(1)
        for start, stop in _row_chunks(self.source.rows, self.chunk):
            x = _log_kernel(self.source.chunk(self.heads, start, stop), self.lamb)
            x += self.alpha.unsqueeze(1)
            x += self.beta[:, start:stop, None]
            g = _safe_exp_(x)
            cc = torch.bmm(r_row, g.transpose(1, 2)).reciprocal_()  # (H_a, 1, C)
            colsum.baddbmm_(cc, g)
            c[:, start:stop] = cc.squeeze(1)
        return c, colsum.squeeze(1)

    def drop(self, keep: Tensor) -> None:
        self.heads = tuple(h for h, kept in zip(self.heads, keep.tolist()) if kept)
        self.alpha, self.beta = self.alpha[keep], self.beta[keep]


# ----------------------------------------------------------------------------------------------------------------
# Exact log-domain passes.


def _column_logsumexp(source: _LogitSource | _FeatureSource, heads: tuple[int, ...], v: Tensor | None, lamb: float,
                      chunk: int) -> tuple[Tensor, Tensor | None]:
    """LSE_i(A_ik + v_i) over all ranks' samples, streamed over row chunks.  # (H_a, N_r) -> (H_a, K)

    v None means SeLa's cold start c = 1/N, i.e. v = λ·log p_max on A, which is then also returned  # (H_a, N_r)
    """
    h, k, dev = len(heads), source.clusters, source.device
    run_max = torch.full((h, k), -math.inf, dtype=source.dtype, device=dev)
    run_sum = torch.zeros(h, k, dtype=source.dtype, device=dev)
    v0 = torch.empty(h, source.rows, dtype=torch.float64, device=dev) if v is None else None
    for start, stop in _row_chunks(source.rows, chunk):
        logits = source.chunk(heads, start, stop)
        if v is None:
            vc = _log_pmax(logits, lamb)
            v0[:, start:stop] = vc
        else:
            vc = v[:, start:stop].to(source.dtype)
        x = _log_kernel(logits, lamb)
        x += vc.unsqueeze(-1)
        new_max = torch.maximum(run_max, x.amax(1))
        run_sum.mul_(torch.exp(run_max - new_max)).add_(_safe_exp_(x.sub_(new_max.unsqueeze(1))).sum(1))
        run_max = new_max
    # Logsumexp across ranks: agree on the max, then sum the rescaled partial sums.
    global_max = distributed.all_reduce(run_max.clone(), "max")
    run_sum = distributed.all_reduce(run_sum * torch.exp(run_max - global_max).nan_to_num_(nan=0.0), "sum")
    return global_max.double() + torch.log(run_sum.double()), (v0 if v is None else None)


@dataclass
class _Built:
    store: _DenseStore | _SparseStore | _RecomputeStore
    beta: Tensor  # (H_a, N_r) float64 absorbed sample duals: log c of the build's exact c-update
    colsum: Tensor  # (H_a, K) Σ_i G_ik over all ranks (the next r-update's denominator at c~ = 1)
    row_dropped: Tensor  # (H_a,) max over all ranks' rows of the kernel mass dropped from a row (rows sum to 1)
    col_dropped: Tensor  # (H_a, K) kernel mass dropped from each column, summed over all ranks
    density: float  # kept fraction on this rank


def _build(source: _LogitSource | _FeatureSource, heads: tuple[int, ...], alpha: Tensor, lamb: float, chunk: int,
           kind: KernelKind, log_eps: float, log_floor: float, n_total: int) -> _Built:
    """One exact c-update from u = α and the new kernel G = exp(A + α + β), β = −LSE_k(A + α) (rows sum to 1).

    alpha: (H_a, K) float64. The sparse kernel keeps entries ≥ e^log_eps of their row and records how much mass it
    dropped per row and per column, which bounds the error of later linear updates. With kind "auto", a build
    that keeps more than _SPARSE_MAX_DENSITY restarts dense: one wasted pass, never the memory of a huge CSR pair.
    """
    h, rows, k, dev, dt = len(heads), source.rows, source.clusters, source.device, source.dtype
    alpha_t = alpha.to(dt).unsqueeze(1)  # (H_a, 1, K)
    beta = torch.empty(h, rows, dtype=torch.float64, device=dev)
    use_sparse = kind in ("auto", "sparse") and rows > 0
    budget = int(_SPARSE_MAX_DENSITY * h * rows * k) if kind == "auto" else None
    dense_g = torch.empty(h, rows, k, dtype=dt, device=dev) if not use_sparse and isinstance(
        source, _LogitSource) else None
    colsum = torch.zeros(h, k, dtype=dt, device=dev)
    row_dropped = torch.zeros(h, dtype=torch.float64, device=dev)
    col_dropped = torch.zeros(h, 1, k, dtype=dt, device=dev)
    # Sparse pieces per head, so that the CSR rows come out head-major without sorting.
    row_counts: list[list[Tensor]] = [[] for _ in range(h)]
    col_idx: list[list[Tensor]] = [[] for _ in range(h)]
    values: list[list[Tensor]] = [[] for _ in range(h)]
    nnz = 0
    for start, stop in _row_chunks(rows, chunk):
        n = stop - start
        x = _log_kernel(source.chunk(heads, start, stop), lamb)
        x += alpha_t
        rowmax = x.amax(-1, keepdim=True)
        g = _safe_exp_(x.sub_(rowmax))  # (H_a, C, K) unnormalised row: max entry 1
        z = g.sum(-1, keepdim=True)  # (H_a, C, 1) in [1, K]
        beta[:, start:stop] = -(rowmax + torch.log(z)).squeeze(-1).double()
        if not use_sparse:
            g.div_(z)
            g.masked_fill_(g < math.exp(log_floor), 0.0)
            colsum += g.sum(1)
            if dense_g is not None:
                dense_g[:, start:stop] = g
            continue
        keep = g >= z * math.exp(log_eps)  # against ε·z rather than dividing the whole block by z
        dropped = torch.where(keep, 0.0, g)
        inv_z = z.reciprocal_()  # (H_a, C, 1)
        row_dropped = torch.maximum(row_dropped, (dropped.sum(-1, keepdim=True) * inv_z).amax((1, 2)).double())
        col_dropped.baddbmm_(inv_z.transpose(1, 2), dropped)
        flat = keep.view(-1).nonzero().squeeze(1)  # (nnz_c,) into (H_a, C, K)
        vals = g.view(-1)[flat] * inv_z.view(-1)[flat // k]
        hc, ik = flat // (n * k), flat % (n * k)  # head; row·K + column within the head's block
        per_head = torch.bincount(hc, minlength=h).tolist()
        rows_hc = torch.bincount(hc * n + ik // k, minlength=h * n).view(h, n)  # (H_a, C) kept per row
        for j, (ci, vi) in enumerate(zip(torch.split(ik % k, per_head), torch.split(vals, per_head))):
            row_counts[j].append(rows_hc[j])
            col_idx[j].append(ci + j * k)
            values[j].append(vi)
        nnz += len(flat)
        if budget is not None and nnz > budget:
            return _build(source, heads, alpha, lamb, chunk, "dense", log_eps, log_floor, n_total)
    if use_sparse:
        index_dtype = torch.int32 if max(nnz, h * max(rows, k)) < 2**31 - 1 else torch.int64
        crow = torch.zeros(h * rows + 1, dtype=index_dtype, device=dev)
        torch.cumsum(torch.cat([c for per in row_counts for c in per]), 0, out=crow[1:])
        cols = torch.cat([c for per in col_idx for c in per]).to(index_dtype)
        s = torch.sparse_csr_tensor(crow, cols, torch.cat([v for per in values for v in per]),
                                    size=(h * rows, h * k))
        store = _SparseStore(s, h, rows, k)
        colsum = store.column_sums()
        density = nnz / max(h * rows * k, 1)
    else:
        # Entries below e^log_floor were zeroed (or clamped there, recomputed): bound what they could hold.
        row_dropped.fill_(k * math.exp(log_floor))
        col_dropped.fill_(n_total * math.exp(log_floor) / max(distributed.world_size(), 1))
        store = (_DenseStore(dense_g, chunk) if dense_g is not None
                 else _RecomputeStore(source, heads, alpha, beta, lamb, chunk))
        density = 1.0
    distributed.all_reduce(colsum, "sum")
    distributed.all_reduce(row_dropped, "max")
    distributed.all_reduce(col_dropped, "sum")
    return _Built(store, beta, colsum, row_dropped, col_dropped.squeeze(1), density)


def _labels(source: _LogitSource | _FeatureSource, log_r: Tensor, lamb: float, chunk: int) -> tuple[Tensor, Tensor]:
    """argmax_k Q[k, i] and its posterior from the exact log kernel.  # (H, K) -> (H, N_r) int64, (H, N_r) float32"""
    h, rows = source.heads, source.rows
    labels = torch.empty(h, rows, dtype=torch.int64, device=source.device)
    conf = torch.empty(h, rows, dtype=torch.float32, device=source.device)
    u = log_r.to(source.dtype).unsqueeze(1)
    for start, stop in _row_chunks(rows, chunk):
        x = _log_kernel(source.chunk(None, start, stop), lamb)
        x += u
        best, idx = x.max(-1)
        labels[:, start:stop] = idx
        conf[:, start:stop] = _safe_exp_(x.sub_(best.unsqueeze(-1))).sum(-1).reciprocal_()
    return labels, conf


# ----------------------------------------------------------------------------------------------------------------


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


def _check_finite(*tensors: Tensor | None, device: torch.device, chunk: int = 1 << 24) -> None:
    """Reject NaN and +inf (−inf logits are allowed: a cluster a sample can never take). Agreed across ranks so
    that no rank raises while the others wait in a collective."""
    bad = False
    for x in tensors:
        if x is None:
            continue
        flat = x.reshape(-1)
        for start in range(0, flat.numel(), chunk):
            part = flat[start:start + chunk]
            bad = bad or bool((torch.isnan(part) | (part == math.inf)).any())
    flag = distributed.all_reduce(torch.tensor([float(bad)], device=device), "max")
    if flag.item() > 0:
        raise ValueError("solve_labels: inputs contain NaN or +inf")


@contextlib.contextmanager
def _matmul_precision(precision: str):
    """Full-fp32 GEMMs by default: TF32 logits err by ~1e-3, i.e. by e^(λ·1e-3·|L|) in the kernel."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


@torch.no_grad()
def solve_labels(logits: Tensor | None = None, *, features: Tensor | None = None, weights: Tensor | None = None,
                 bias: Tensor | None = None, lamb: float = 25.0, marginals: Tensor | None = None, tol: float = 0.1,
                 check_every: int = 10, max_iters: int = 2000, warm_start: Duals | None = None,
                 kernel: KernelKind = "auto", chunk_size: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 matmul_precision: str = "highest") -> SinkhornResult:
    """Solve SeLa's label assignment for all heads at once; see the module docstring.

    logits: (H, N_r, K) this rank's rows (any float dtype, any device), or, matrix-free,
    features (N_r, D) + weights (H, K, D) + bias (H, K) | None, with logits = features · weightsᵀ + bias.
    marginals: cluster targets, None (uniform) | (K,) | (H, K), normalised here.
    tol / check_every / max_iters: SeLa's rule err = Σ_i |c_i/c'_i − 1| ≤ tol, tested when (t − 1) % check_every
    == 0 and at t = max_iters. Heads stop independently. In float32 err has a noise floor of about N·1e-7
    (N = all ranks' rows): use dtype=torch.float64 for tolerances near or below it (e.g. the audio SeLa 1e-4).
    warm_start: duals of the previous solve (same H, K). kernel: "auto" (sparse unless dense is cheaper),
    "sparse", or "dense" (stored G for logits, G recomputed per chunk for features).
    chunk_size: rows per streamed block (default: ~16 MiB of (H, rows, K) on CPU, 256 MiB on CUDA).
    device: where to compute (default: the input's device). matmul_precision: for the features path.
    """
    t0 = time.perf_counter()
    if (logits is None) == (features is None):
        raise ValueError("pass either logits (H, N, K) or features (N, D) with weights (H, K, D)")
    if lamb <= 0 or tol < 0 or check_every < 1 or max_iters < 1:
        raise ValueError(f"need lamb > 0, tol >= 0, check_every >= 1, max_iters >= 1; got {lamb}, {tol}, "
                         f"{check_every}, {max_iters}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if logits is not None:
        if logits.dim() != 3:
            raise ValueError(f"logits must be (H, N, K), got {tuple(logits.shape)}")
        dev = torch.device(device) if device is not None else logits.device
        source: _LogitSource | _FeatureSource = _LogitSource(logits, dev, dtype)
    else:
        if weights is None or features.dim() != 2 or weights.dim() != 3 or weights.shape[2] != features.shape[1]:
            raise ValueError("features must be (N, D) and weights (H, K, D)")
        if bias is not None and bias.shape != weights.shape[:2]:
            raise ValueError(f"bias must be (H, K) = {tuple(weights.shape[:2])}, got {tuple(bias.shape)}")
        dev = torch.device(device) if device is not None else features.device
        source = _FeatureSource(features, weights, bias, dev, dtype)
    _check_finite(logits if logits is not None else features, weights, bias, device=dev)
    n_heads, rows, k = source.heads, source.rows, source.clusters
    chunk = chunk_size or max(1, _CHUNK_BYTES["cuda" if dev.type == "cuda" else "cpu"] // (4 * n_heads * k))

    eps = torch.finfo(dtype).eps
    log_floor = math.log(torch.finfo(dtype).tiny) + 2.0  # dense kernel entries below e^log_floor are set to 0
    # float64 needs a smaller ε for the same relative effect of the dropped entries
    log_eps = _LOG_EPS if dtype == torch.float32 else 2 * _LOG_EPS
    n_total = int(distributed.all_reduce(torch.tensor([float(rows)], dtype=torch.float64, device=dev)).item())
    if dtype == torch.float32 and tol < 4 * n_total * eps and distributed.is_main():
        warnings.warn(f"tol={tol} is below float32's noise floor of the error (~{n_total * eps:.2g} for "
                      f"N={n_total}); it may run to max_iters. Consider dtype=torch.float64.", stacklevel=2)
    target = _target_marginals(marginals, n_heads, k, dev) * n_total  # (H, K): cluster sums N·a

    with _matmul_precision(matmul_precision):
        out = _iterate(source, target, lamb, tol, check_every, max_iters, warm_start, kernel, chunk, log_eps,
                       log_floor, n_total)
        log_r, iterations, error, converged, rebuilds, store_kind, density = out
        labels, conf = _labels(source, log_r, lamb, chunk)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    log_r = log_r - log_r.mean(1, keepdim=True)  # fix the gauge: keeps magnitudes small for the next warm start
    return SinkhornResult(labels, conf, Duals(log_r, lamb), iterations, error, converged,
                          time.perf_counter() - t0, rebuilds, store_kind, density)


def _iterate(source: _LogitSource | _FeatureSource, target: Tensor, lamb: float, tol: float, check_every: int,
             max_iters: int, warm_start: Duals | None, kernel: KernelKind, chunk: int, log_eps: float,
             log_floor: float, n_total: int):
    """SeLa's loop on the stabilised kernel. target: (H, K) cluster sums N·a.

    Returns the final cluster log-duals (H, K) float64, iterations (H,), error (H,), converged (H,), the number of
    rebuilds, the last store's kind and kept density.
    """
    n_heads, k, dev, dt = source.heads, source.clusters, source.device, source.dtype
    delta = 8 * torch.finfo(dt).eps  # relative error a dropped kernel entry may cause in any row or column sum
    final_log_r = torch.zeros(n_heads, k, dtype=torch.float64, device=dev)
    iterations = torch.zeros(n_heads, dtype=torch.int64)
    error = torch.full((n_heads,), math.inf, dtype=torch.float64)
    converged = torch.zeros(n_heads, dtype=torch.bool)
    active = tuple(range(n_heads))  # heads still iterating; every per-head state tensor below follows this order
    stats = {"rebuilds": 0, "density": 1.0, "kind": "none"}

    def rebuild(u: Tensor) -> _Built:
        """# (H_a, K) float64 cluster log-duals -> new kernel and absorbed sample duals"""
        built = _build(source, active, u, lamb, chunk, kernel, log_eps, log_floor, n_total)
        stats["rebuilds"] += 1
        stats["kind"], stats["density"] = built.store.kind, built.density
        return built

    kb = None  # the current kernel; None before the cold start's first iteration
    if warm_start is not None:
        if warm_start.log_r.shape != (n_heads, k):
            raise ValueError(f"warm_start duals are {tuple(warm_start.log_r.shape)}, expected ({n_heads}, {k})")
        # u is in units of λ·logit; rescaling keeps a warm start useful when λ changes.
        alpha = warm_start.log_r.to(dev, torch.float64) * (lamb / warm_start.lamb)  # (H_a, K)
        kb = rebuild(alpha)  # "iteration 0": c from the previous r
        v_prev = kb.beta.clone()  # (H_a, N_r) log c of the previous iteration, for the error
    r = torch.ones(n_heads, k, dtype=dt, device=dev)  # (H_a, K) r~ = exp(u − α)
    c = None  # (H_a, N_r) c~ of the last sweep; None right after a (re)build, where c~ = 1
    colsum = None if kb is None else kb.colsum

    t = 0
    while active:
        t += 1
        check = (t - 1) % check_every == 0 or t == max_iters
        if kb is None:  # cold start: iteration 1 from SeLa's c = 1/N, exactly
            lse, v_prev = _column_logsumexp(source, active, None, lamb, chunk)
            alpha = torch.log(target) - lse
            kb = rebuild(alpha)
            r.fill_(1.0)
            c, colsum = None, kb.colsum
        else:
            r = (target / colsum.double()).to(dt)
            log_r = r.log()
            lo, hi = log_r.amin(1, keepdim=True), log_r.amax(1, keepdim=True)  # (H_a, 1)
            # Linear r-update of column k is off by at most its dropped mass × max c~ (≤ 1/min r~) / its sum.
            col_ok = kb.col_dropped.double() <= delta * colsum.double() * torch.exp(lo.double())
            # A row's sum is off by at most its dropped mass × max r~ / (min r~ · kept mass ~ 1).
            row_ok = torch.log(kb.row_dropped) + (hi - lo).double().squeeze(1) <= math.log(delta)
            fine = col_ok.all() & row_ok.all() & (log_r.abs() <= _LOG_GUARD).all() & torch.isfinite(log_r).all()
            if bool(fine):
                c, colsum = kb.store.sweep(r)
                distributed.all_reduce(colsum, "sum")
            else:  # exact iteration: absorb the duals, log-domain r-update where the linear one is not trusted
                import os
                if os.environ.get("SKDBG"):
                    print("exact at", t, "spread", (hi - lo).squeeze(1).tolist(), "lo/hi", lo.squeeze(1).tolist(), hi.squeeze(1).tolist(), "col_ok", col_ok.all().item(), "row_ok", row_ok.tolist())
                u = alpha + log_r.double()
                if not bool(col_ok.all()):
                    v = kb.beta if c is None else kb.beta + torch.log(c.double())
                    lse, _ = _column_logsumexp(source, active, v, lamb, chunk)
                    u = torch.where(col_ok, u, torch.log(target) - lse)
                alpha = u
                kb = None  # free the old kernel before building the new one
                kb = rebuild(alpha)
                r.fill_(1.0)
                c, colsum = None, kb.colsum
        if not (check or t % check_every == 0 or t + 1 == max_iters):
            continue  # neither this iteration's c nor the next one's is compared
        v_now = kb.beta if c is None else kb.beta + torch.log(c.double())  # (H_a, N_r) log c
        if check:
            err = torch.expm1(v_prev - v_now).abs_().sum(1)  # (H_a,) Σ|c/c' − 1|, float64
            err = distributed.all_reduce(err, "sum").cpu()
            done = (err <= tol) | (t >= max_iters)
            if bool(done.any()):
                ids = [h for h, d in zip(active, done.tolist()) if d]
                done_dev = done.to(dev)
                final_log_r[ids] = alpha[done_dev] + torch.log(r[done_dev].double())
                iterations[ids] = t
                error[ids] = err[done]
                converged[ids] = err[done] <= tol
                keep = ~done_dev
                active = tuple(h for h, d in zip(active, done.tolist()) if not d)
                target, alpha, r, colsum, v_now = (x[keep] for x in (target, alpha, r, colsum, v_now))
                kb.beta, kb.row_dropped, kb.col_dropped = kb.beta[keep], kb.row_dropped[keep], kb.col_dropped[keep]
                if c is not None:
                    c = c[keep]
                kb.store.drop(keep)
        v_prev = v_now
    return final_log_r, iterations, error, converged, stats["rebuilds"], stats["kind"], stats["density"]
