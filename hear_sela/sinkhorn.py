"""SeLa's Sinkhorn-Knopp label solver: float32-safe, all heads batched, sharded over ranks, matrix-free at scale.

Problem, per head h: P = softmax_K(L)^λ seen as K × N; find Q = diag(r) P diag(c) whose cluster sums are the target
marginals a (uniform 1/K or a prior) and whose sample sums are 1/N; label_i = argmax_k Q[k, i] and
confidence_i = max_k Q[k, i] / Σ_k Q[k, i]. The iteration, its start (r = 1/K, c = 1/N) and its stopping rule
(err = Σ_i |c_i / c'_i − 1| every `check_every` iterations) are SeLa's (yukimasano/self-label, sinkhornknopp.py).

Formulation (why it is exact in float32):
- P^λ = exp(λ(L − rowmax)) × a per-sample factor, and per-sample factors are absorbed by c, so the solver works on the
  log kernel A = λ(L − rowmax) ≤ 0 (H, N, K) and never forms p^λ, which underflows in float32 for p < ~0.03.
  The problem is rescaled to sample sums 1 and cluster sums N·a (same Q up to a factor N, same ratios c/c').
- Stabilised scaling (Schmitzer 2016): the duals u = log r, v = log c are split into absorbed parts α (H, K) and
  β (H, N), kept in float64, and scaling factors r~, c~. The kernel G = exp(A + α + β) is built row-normalised, so
  an iteration is two mat-vecs whose factors start at 1. When a factor would pass e^±40, or when the entries G
  dropped (below) could move a row or column sum by more than 8 float32 ulps, the iteration is done exactly in the
  log domain instead: column logsumexp over samples streamed in chunks where needed (dead clusters, whose column of
  G underflows), duals absorbed, G rebuilt. That happens 1-3 times per solve on realistic logits. The iterate
  sequence is SeLa's in exact arithmetic whichever way each iteration is computed.
- Kernel entries below e^-50 of their row are dropped; every build measures the mass it dropped per row and per
  column, which bounds the error of the linear updates that follow. At λ = 25 ~1 % of the entries survive, so the
  default kernel is a block-diagonal CSR matrix over all heads (two sparse mat-vecs per iteration), falling back to
  the dense G (stored logits) or to recomputing G chunk by chunk (features) when the kernel is not sparse.
- Labels are read from the exact log kernel with the final duals: argmax_k (A_ik + u_k), independent of truncation.
- Over-relaxation (optional, on by default): u ← u + ω(u_SK − u), v likewise, with ω estimated per head from the
  plain iteration's contraction. Same fixed point, 3-5x fewer iterations; overrelax=1.0 gives SeLa's iterates.

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
# Sparse kernel: entries below e^-50 of their row's mass are dropped. Lower ε keeps more entries (1.0 % instead of
# 0.7 % at e^-40 on realistic logits) but lets the duals drift further before a rebuild (each costs ~500 sweeps).
_LOG_EPS = -50.0
_A_FLOOR = -1.0e30  # finite stand-in for λ(L − max) = −inf (−inf logits, or a range that overflows after × λ)
_CHUNK_BYTES = {"cuda": 256 << 20, "cpu": 16 << 20}  # one (H, chunk, K) block; CPU: stay in the last-level cache
_OMEGA_MAX = 1.8  # ω = 1.9 diverges on realistic logits; the estimate gives ~1.7 there
_SPARSE_MAX_DENSITY = 0.1  # above this a CSR pair costs more bytes and time per iteration than the dense kernel


@dataclass
class Duals:
    """Cluster log-duals u = log r of a solve in the solver's gauge; the next solve's warm start.

    The sample duals follow from them (one exact c-update), so (H, K) numbers are the whole state.
    """

    log_r: Tensor  # (H, K) float64, defined up to a constant per head
    lamb: float
    omega: Tensor | None = None  # (H,) over-relaxation each head ended with; reused by an adaptive warm start


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
    passes: int  # full passes over the logits (for features: GEMMs over all rows), labels pass included


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
        self.passes = 0  # full passes over the logits, a diagnostic

    def chunk(self, heads: tuple[int, ...] | None, start: int, stop: int) -> Tensor:
        """Logits of rows [start, stop) for `heads` (None: all).  # (H_a, C, K)"""
        self.passes += start == 0
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
        self.passes = 0  # full passes over the logits (one GEMM over all features each), a diagnostic

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
        self.passes += start == 0
        w, b = self._select(heads)
        f = self.features[start:stop].to(self.device, self.dtype, non_blocking=True)  # (C, D)
        f = f.unsqueeze(0).expand(w.shape[0], -1, -1)  # (H_a, C, D), a view
        out = torch.bmm(f, w) if b is None else torch.baddbmm(b, f, w)
        # Finite inputs can still overflow float32 in the product; keep the kernel free of NaN regardless.
        return out.nan_to_num_(nan=0.0)


def _log_kernel(logits: Tensor, lamb: float, shift: Tensor | None = None) -> Tensor:
    """A = λ(L − rowmax) ≤ 0, finite, plus a broadcast dual.  # (H_a, C, K), (H_a, 1, K) | (H_a, C, 1) -> (H_a, C, K)"""
    rowmax = logits.amax(-1, keepdim=True)
    out = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)  # contiguous whatever the input
    torch.sub(logits, rowmax, out=out).clamp_min_(_A_FLOOR / lamb)
    return out.mul_(lamb) if shift is None else torch.add(shift, out, alpha=lamb, out=out)


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


def _next_c(y: Tensor, c_prev: Tensor | None, omega: Tensor | None) -> Tensor:
    """c~ from y = G r~: SK's 1/y, over-relaxed in the log domain to c_prev^(1−ω)·y^(−ω).

    y: (H_a, M) or (H_a, 1, M), overwritten; c_prev: like y or None (= 1, right after a build); omega: (H_a, 1) or
    (H_a, 1, 1) or None (plain SK).
    """
    if omega is None:
        return y.reciprocal_()
    c = y.pow_(-omega)
    return c if c_prev is None else c.mul_(c_prev.pow(1.0 - omega))


class _DenseStore:
    kind = "dense"

    def __init__(self, g: Tensor, chunk: int):
        self.g = g  # (H_a, N_r, K)
        self.chunk = chunk

    def sweep(self, r: Tensor, c_prev: Tensor | None, omega: Tensor | None) -> tuple[Tensor, Tensor]:
        """c~ = 1/(G r~) (relaxed) and Gᵀc~.  # (H_a, K), (H_a, N_r) | None, (H_a, 1) | None -> (H_a, N_r), (H_a, K)"""
        heads, rows, k = self.g.shape
        c = torch.empty(heads, rows, dtype=r.dtype, device=r.device)
        colsum = torch.zeros(heads, 1, k, dtype=r.dtype, device=r.device)
        r_row = r.unsqueeze(1)  # (H_a, 1, K)
        om = None if omega is None else omega.unsqueeze(1)
        # Both mat-vecs per chunk: the second reads the chunk while it is still in cache (one memory pass).
        for start, stop in _row_chunks(rows, self.chunk):
            g = self.g[:, start:stop]
            y = torch.bmm(r_row, g.transpose(1, 2))  # (H_a, 1, C); bmm(G, r) takes a slow GEMM path
            cc = _next_c(y, None if c_prev is None else c_prev[:, None, start:stop], om)
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
                                          size=(heads * clusters, heads * rows),
                                          check_invariants=False)  # (H_a·K, H_a·N_r) CSR = Sᵀ
        self.heads, self.rows, self.clusters = heads, rows, clusters
        self.live = torch.ones(heads, dtype=torch.bool, device=s.device)
        self.all_live = True  # host copy of live.all(): no device sync per sweep

    def column_sums(self) -> Tensor:
        """Σ_i G_ik, the r-update's denominator at c~ = 1.  # (H_a, K)"""
        ones = torch.ones(self.heads * self.rows, dtype=self.s.dtype, device=self.s.device)
        return torch.mv(self.st, ones).view(self.heads, self.clusters)

    def sweep(self, r: Tensor, c_prev: Tensor | None, omega: Tensor | None) -> tuple[Tensor, Tensor]:
        """# (H_live, K), (H_live, N_r) | None, (H_live, 1) | None -> (H_live, N_r), (H_live, K)"""
        live = None if self.all_live else self.live
        if live is not None:  # converged heads ride along at r~ = c~ = ω = 1 (cheap) until a rebuild drops them
            r = torch.ones(self.heads, self.clusters, dtype=r.dtype, device=r.device).index_put_((live,), r)
            if c_prev is not None:
                c_prev = torch.ones(self.heads, self.rows, dtype=r.dtype, device=r.device).index_put_((live,), c_prev)
            if omega is not None:
                omega = torch.ones(self.heads, 1, dtype=r.dtype, device=r.device).index_put_((live,), omega)
        y = torch.mv(self.s, r.reshape(-1)).view(self.heads, self.rows)  # (H_a, N_r)
        c = _next_c(y, c_prev, omega)
        colsum = torch.mv(self.st, c.view(-1)).view(self.heads, self.clusters)  # (H_a, K)
        return (c, colsum) if live is None else (c[live], colsum[live])

    def drop(self, keep: Tensor) -> None:
        self.live[self.live.clone()] = keep
        self.all_live = bool(self.live.all())

    def labels(self, which: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """argmax_k G_ik r~_k and its share of the row, for live heads `which` (H_w,) with their r~ (H_w, K).

        # -> (H_w, N_r) int64, (H_w, N_r) float32. Every row's largest entry is kept (dropped entries weigh less than
        8 ulps of it while the rebuild rule holds), so this equals the exact kernel's argmax, at sparse cost.
        """
        slots = self.live.nonzero().squeeze(1)[which].tolist()
        labels, conf = [], []
        for slot, rr in zip(slots, r):  # a one-off per retiring head; each slot is a contiguous block of rows
            lo, hi = slot * self.rows, (slot + 1) * self.rows
            crow = self.s.crow_indices()[lo:hi + 1].long()
            span = slice(int(crow[0]), int(crow[-1]))
            col = self.s.col_indices()[span].long() - slot * self.clusters
            w = self.s.values()[span] * rr[col]  # (nnz_h,) entries of Q's rows up to c~
            row = torch.repeat_interleave(torch.arange(self.rows, device=w.device), crow.diff())
            best = torch.zeros(self.rows, dtype=w.dtype, device=w.device).scatter_reduce_(0, row, w, "amax")
            total = torch.zeros(self.rows, dtype=w.dtype, device=w.device).index_add_(0, row, w)
            first = w == best[row]  # ties: the lowest cluster, as torch.argmax
            arg = torch.full((self.rows,), self.clusters, device=w.device).scatter_reduce_(0, row[first], col[first],
                                                                                          "amin")
            labels.append(arg)
            conf.append((best / total).float())
        return torch.stack(labels), torch.stack(conf)


class _RecomputeStore:
    """Matrix-free dense kernel: G = exp(A + α + β) recomputed per chunk from the source in every sweep."""

    kind = "recompute"

    def __init__(self, source: _FeatureSource | _LogitSource, heads: tuple[int, ...], alpha: Tensor, beta: Tensor,
                 lamb: float, chunk: int):
        self.source, self.heads, self.lamb, self.chunk = source, heads, lamb, chunk
        self.alpha = alpha.to(source.dtype)  # (H_a, K)
        self.beta = beta.to(source.dtype)  # (H_a, N_r)

    def sweep(self, r: Tensor, c_prev: Tensor | None, omega: Tensor | None) -> tuple[Tensor, Tensor]:
        """# (H_a, K), (H_a, N_r) | None, (H_a, 1) | None -> (H_a, N_r), (H_a, K)"""
        heads, k = r.shape
        c = torch.empty(heads, self.source.rows, dtype=r.dtype, device=r.device)
        colsum = torch.zeros(heads, 1, k, dtype=r.dtype, device=r.device)
        r_row = r.unsqueeze(1)
        om = None if omega is None else omega.unsqueeze(1)
        for start, stop in _row_chunks(self.source.rows, self.chunk):
            x = _log_kernel(self.source.chunk(self.heads, start, stop), self.lamb, self.alpha.unsqueeze(1))
            x += self.beta[:, start:stop, None]
            g = _safe_exp_(x)
            y = torch.bmm(r_row, g.transpose(1, 2))  # (H_a, 1, C)
            cc = _next_c(y, None if c_prev is None else c_prev[:, None, start:stop], om)
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
        x = _log_kernel(logits, lamb, vc.unsqueeze(-1))
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
        x = _log_kernel(source.chunk(heads, start, stop), lamb, alpha_t)
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
        cols = (ik % k).to(torch.int32)  # < H_a·K once offset: int32 whatever nnz is; halves the index memory
        for j, (ci, vi) in enumerate(zip(torch.split(cols, per_head), torch.split(vals, per_head))):
            row_counts[j].append(rows_hc[j].to(torch.int32))
            col_idx[j].append(ci + j * k)
            values[j].append(vi)
        nnz += len(flat)
        if budget is not None and nnz > budget:
            return _build(source, heads, alpha, lamb, chunk, "dense", log_eps, log_floor, n_total)
    if use_sparse:
        index_dtype = torch.int32 if max(nnz, h * max(rows, k)) < 2**31 - 1 else torch.int64  # CSR: one dtype
        crow = torch.zeros(h * rows + 1, dtype=index_dtype, device=dev)
        torch.cumsum(torch.cat([c for per in row_counts for c in per]), 0, out=crow[1:], dtype=index_dtype)
        cols = torch.cat([c for per in col_idx for c in per]).to(index_dtype)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            s = torch.sparse_csr_tensor(crow, cols, torch.cat([v for per in values for v in per]),
                                        size=(h * rows, h * k), check_invariants=False)
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


def _labels(source: _LogitSource | _FeatureSource, heads: tuple[int, ...], log_r: Tensor, lamb: float, chunk: int
            ) -> tuple[Tensor, Tensor]:
    """argmax_k Q[k, i] and its posterior from the exact log kernel.  # (H_a, K) -> (H_a, N_r) int64, float32"""
    h, rows = len(heads), source.rows
    labels = torch.empty(h, rows, dtype=torch.int64, device=source.device)
    conf = torch.empty(h, rows, dtype=torch.float32, device=source.device)
    u = log_r.to(source.dtype).unsqueeze(1)
    for start, stop in _row_chunks(rows, chunk):
        x = _log_kernel(source.chunk(heads, start, stop), lamb, u)
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
        # Slices of a flat view, or per leading index when flattening would copy the whole tensor.
        parts = x.view(-1).split(chunk) if x.is_contiguous() else x.unbind(0)
        for part in parts:
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
                 overrelax: float | Literal["auto"] = "auto", matmul_precision: str = "highest") -> SinkhornResult:
    """Solve SeLa's label assignment for all heads at once; see the module docstring.

    logits: (H, N_r, K) this rank's rows (any float dtype, any device), or, matrix-free,
    features (N_r, D) + weights (H, K, D) + bias (H, K) | None, with logits = features · weightsᵀ + bias.
    marginals: cluster targets, None (uniform) | (K,) | (H, K), normalised here.
    tol / check_every / max_iters: SeLa's rule err = Σ_i |c_i/c'_i − 1| ≤ tol, tested when (t − 1) % check_every
    == 0 and at t = max_iters. Heads stop independently. In float32 err has a noise floor of about N·1.5e-8
    (N = all ranks' rows; measured): use dtype=torch.float64 for tolerances near it (e.g. the audio SeLa 1e-4).
    warm_start: duals of the previous solve (same H, K). kernel: "auto" (sparse unless dense is cheaper),
    "sparse", or "dense" (stored G for logits, G recomputed per chunk for features).
    chunk_size: rows per streamed block (default: ~16 MiB of (H, rows, K) on CPU, 256 MiB on CUDA).
    device: where to compute (default: the input's device).
    overrelax: ω of over-relaxed Sinkhorn (same fixed point, ~5x fewer iterations on realistic logits): "auto"
    estimates it per head from the first checks' contraction (and reuses a warm start's), 1.0 runs SeLa's exact
    iterate sequence (same iteration counts as the float64 loop).
    matmul_precision: torch float32 matmul precision for the features path ("highest" = true fp32).
    """
    t0 = time.perf_counter()
    if (logits is None) == (features is None):
        raise ValueError("pass either logits (H, N, K) or features (N, D) with weights (H, K, D)")
    if overrelax != "auto" and not 0.0 < float(overrelax) < 2.0:
        raise ValueError(f"overrelax must be 'auto' or in (0, 2), got {overrelax}")
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
    if dtype == torch.float32 and tol < n_total * eps / 4 and distributed.is_main():
        warnings.warn(f"tol={tol} is near float32's noise floor of the error (~{n_total * eps / 8:.2g} for "
                      f"N={n_total}); it may run to max_iters. Consider dtype=torch.float64.", stacklevel=2)
    target = _target_marginals(marginals, n_heads, k, dev) * n_total  # (H, K): cluster sums N·a

    with _matmul_precision(matmul_precision):
        out = _iterate(source, target, lamb, tol, check_every, max_iters, warm_start, kernel, chunk, log_eps,
                       log_floor, n_total, overrelax)
        log_r, omega, iterations, error, converged, rebuilds, store_kind, density, labels, conf = out
        missing = tuple(torch.nonzero(labels[:, 0] < 0).flatten().tolist()) if rows else ()
        if missing:  # heads that retired from a dense or recomputed kernel: one exact pass
            idx = torch.tensor(missing, device=dev)
            labels[idx], conf[idx] = _labels(source, missing, log_r[idx], lamb, chunk)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    log_r = log_r - log_r.mean(1, keepdim=True)  # fix the gauge: keeps magnitudes small for the next warm start
    return SinkhornResult(labels, conf, Duals(log_r, lamb, omega), iterations, error, converged,
                          time.perf_counter() - t0, rebuilds, store_kind, density, source.passes)


def _relaxation(err: Tensor, err_last: Tensor, omega_last: Tensor, gap: int, omega: Tensor, settled: Tensor,
                grew: Tensor, n_checks: int) -> tuple[Tensor, Tensor, Tensor]:
    """Adaptive over-relaxation per head, updated at a check.  # (H_a,) each -> ω, settled, grew (H_a,)

    Plain SK contracts the error by a steady ρ per iteration once past the first checks; over-relaxation with
    ω = 2/(1 + √(1 − ρ)) has the same fixed point and contracts by ~ω − 1 (Thibault et al. 2017; Lehmann et al.
    2021, "A note on overrelaxation in the Sinkhorn algorithm"). It is not globally monotone: a head whose error
    grows at two checks in a row has its over-relaxation halved (one rise is the usual transient after a start).
    The error measures a step, which is ω times SK's, so errors are compared per unit of ω (omega: in force since
    the last check; omega_last: before it).
    """
    ratio = ((err / omega) / (err_last / omega_last)).nan_to_num_(nan=1.0, posinf=1.0)
    if n_checks >= 3:  # the first check's error (from c = 1/N or the warm start) is a transient
        rho = ratio.clamp(0.0, 1.0) ** (1.0 / gap)
        fresh = ~settled
        omega = torch.where(fresh, (2.0 / (1.0 + torch.sqrt(1.0 - rho))).clamp(1.0, _OMEGA_MAX), omega)
        settled = settled | fresh
    rising = settled & (ratio > 1.0)
    omega = torch.where(rising & grew, 1.0 + (omega - 1.0) / 2, omega)
    return omega, settled, rising


@dataclass
class _Heads:
    """State of the heads still iterating; every tensor follows the order of `ids`."""

    ids: tuple[int, ...]
    target: Tensor  # (H_a, K) float64 cluster sums N·a
    alpha: Tensor  # (H_a, K) float64 absorbed cluster duals
    log_r: Tensor  # (H_a, K) log r~ = u − α
    colsum: Tensor | None  # (H_a, K) Gᵀc~ over all ranks: the next r-update's denominator
    c: Tensor | None  # (H_a, N_r) c~ of the last sweep; None right after a build, where c~ = 1
    v_prev: Tensor | None  # (H_a, N_r) float64 log c of the previous iteration, for the error
    omega: Tensor  # (H_a,) float64 (CPU) over-relaxation
    settled: Tensor  # (H_a,) bool (CPU) ω estimated (from now on only damped)
    err_last: Tensor  # (H_a,) float64 (CPU) error at the last check
    omega_last: Tensor  # (H_a,) float64 (CPU) ω in force during the interval that ended at the last check
    grew: Tensor  # (H_a,) bool (CPU) the error rose at the last check

    def log_c(self, kb: _Built) -> Tensor:
        """# -> (H_a, N_r) float64"""
        return kb.beta if self.c is None else kb.beta + torch.log(self.c.double())

    def keep(self, keep: Tensor, kb: _Built) -> None:
        """Drop the heads where `keep` (H_a,) is False, here and in the kernel."""
        keep_dev = keep.to(self.target.device)
        self.ids = tuple(h for h, kept in zip(self.ids, keep.tolist()) if kept)
        for name in ("target", "alpha", "log_r", "colsum", "c", "v_prev"):
            x = getattr(self, name)
            setattr(self, name, None if x is None else x[keep_dev])
        for name in ("omega", "settled", "err_last", "omega_last", "grew"):
            setattr(self, name, getattr(self, name)[keep])
        kb.beta, kb.row_dropped, kb.col_dropped = kb.beta[keep_dev], kb.row_dropped[keep_dev], \
            kb.col_dropped[keep_dev]
        kb.store.drop(keep_dev)


def _linear_update_ok(kb: _Built, colsum: Tensor, log_r: Tensor, delta: float) -> tuple[Tensor, bool]:
    """Can the next sweep use r~ = exp(log_r) on the current kernel? # (H_a, K), (H_a, K) -> col_ok (H_a, K), all ok

    Built only from all-reduced numbers, so every rank decides alike.
    """
    lo, hi = log_r.amin(1, keepdim=True).double(), log_r.amax(1, keepdim=True).double()  # (H_a, 1)
    # Column k's linear r-update is off by at most its dropped mass × max c~ (≤ 1/min r~) / its sum.
    col_ok = kb.col_dropped.double() <= delta * colsum.double() * torch.exp(lo)
    # A row's sum is off by at most its dropped mass × max r~ / (min r~ · its kept mass, ~1).
    row_ok = torch.log(kb.row_dropped) + (hi - lo).squeeze(1) <= math.log(delta)
    fine = col_ok.all() & row_ok.all() & (log_r.abs() <= _LOG_GUARD).all() & torch.isfinite(log_r).all()
    return col_ok, bool(fine)


def _iterate(source: _LogitSource | _FeatureSource, target: Tensor, lamb: float, tol: float, check_every: int,
             max_iters: int, warm_start: Duals | None, kernel: KernelKind, chunk: int, log_eps: float,
             log_floor: float, n_total: int, overrelax: float | str):
    """SeLa's loop on the stabilised kernel. target: (H, K) cluster sums N·a.

    Returns the final cluster log-duals (H, K) float64, ω (H,), iterations (H,), error (H,), converged (H,), the
    number of rebuilds, the last store's kind and kept density, and labels, confidences (H, N_r) for the heads that
    retired from a sparse kernel (label −1 elsewhere).
    """
    n_heads, k, dev, dt = source.heads, source.clusters, source.device, source.dtype
    delta = 8 * torch.finfo(dt).eps  # relative error a dropped kernel entry may cause in any row or column sum
    final_log_r = torch.zeros(n_heads, k, dtype=torch.float64, device=dev)
    final_omega = torch.ones(n_heads, dtype=torch.float64)
    iterations = torch.zeros(n_heads, dtype=torch.int64)
    error = torch.full((n_heads,), math.inf, dtype=torch.float64)
    converged = torch.zeros(n_heads, dtype=torch.bool)
    labels = torch.full((n_heads, source.rows), -1, dtype=torch.int64, device=dev)  # -1: left to the caller
    conf = torch.zeros(n_heads, source.rows, dtype=torch.float32, device=dev)
    stats = {"rebuilds": 0, "density": 1.0, "kind": "none"}
    adaptive = overrelax == "auto"
    ones = torch.ones(n_heads, dtype=torch.float64)
    hs = _Heads(ids=tuple(range(n_heads)), target=target, alpha=torch.zeros_like(target),
                log_r=torch.zeros(n_heads, k, dtype=dt, device=dev), colsum=None, c=None, v_prev=None,
                omega=ones if adaptive else ones * float(overrelax), settled=torch.full((n_heads,), not adaptive),
                err_last=torch.full((n_heads,), math.inf, dtype=torch.float64), omega_last=ones.clone(),
                grew=torch.zeros(n_heads, dtype=torch.bool))

    def rebuild() -> _Built:
        """Kernel for u = hs.alpha, one exact c-update; the scaling factors restart at 1."""
        built = _build(source, hs.ids, hs.alpha, lamb, chunk, kernel, log_eps, log_floor, n_total)
        stats["rebuilds"] += 1
        stats["kind"], stats["density"] = built.store.kind, built.density
        hs.log_r.zero_()
        hs.c, hs.colsum = None, built.colsum
        return built

    kb = None  # the current kernel; None before the cold start's first iteration
    if warm_start is not None:
        if warm_start.log_r.shape != (n_heads, k):
            raise ValueError(f"warm_start duals are {tuple(warm_start.log_r.shape)}, expected ({n_heads}, {k})")
        # u is in units of λ·logit; rescaling keeps a warm start useful when λ changes.
        hs.alpha = warm_start.log_r.to(dev, torch.float64) * (lamb / warm_start.lamb)
        if adaptive and warm_start.omega is not None:  # the conditioning changes little between label updates
            hs.omega, hs.settled = warm_start.omega.to(torch.float64).cpu().clone(), ~hs.settled
        kb = rebuild()  # "iteration 0": c from the previous r
        hs.v_prev = kb.beta.clone()
    om_key, om = None, None  # device copy of ω (None: plain SK) and the tensor it was made from

    t, t_last, n_checks = 0, 0, 0
    while hs.ids:
        t += 1
        check = (t - 1) % check_every == 0 or t == max_iters
        if kb is None:  # cold start: iteration 1 from SeLa's c = 1/N, exactly
            lse, hs.v_prev = _column_logsumexp(source, hs.ids, None, lamb, chunk)
            hs.alpha = torch.log(hs.target) - lse
            kb = rebuild()
        else:
            log_r_sk = torch.log(hs.target / hs.colsum.double()).to(dt)  # SK's r-update
            if om_key is not hs.omega:  # ω changes only at checks: copy it to the device then
                om = hs.omega.to(dev, dt).unsqueeze(1) if bool((hs.omega != 1.0).any()) else None  # (H_a, 1)
                om_key = hs.omega
            new_log_r = log_r_sk if om is None else torch.lerp(hs.log_r, log_r_sk, om)
            col_ok, fine = _linear_update_ok(kb, hs.colsum, new_log_r, delta)
            if fine:
                hs.log_r = new_log_r
                hs.c, hs.colsum = kb.store.sweep(new_log_r.exp(), hs.c, om)
                distributed.all_reduce(hs.colsum, "sum")
            else:  # exact, unrelaxed iteration: absorb the duals; log-domain r-update where the linear one is not
                u = hs.alpha + log_r_sk.double()  # trusted
                if not bool(col_ok.all()):
                    lse, _ = _column_logsumexp(source, hs.ids, hs.log_c(kb), lamb, chunk)
                    u = torch.where(col_ok, u, torch.log(hs.target) - lse)
                hs.alpha = u
                kb = None  # free the old kernel before building the new one
                kb = rebuild()
        if not (check or t % check_every == 0 or t + 1 == max_iters):
            continue  # neither this iteration's c nor the next one's is compared
        v_now = hs.log_c(kb)  # (H_a, N_r)
        if not check:
            hs.v_prev = v_now
            continue
        err = distributed.all_reduce(torch.expm1(hs.v_prev - v_now).abs_().sum(1), "sum").cpu()  # Σ|c/c' − 1|
        hs.v_prev = v_now
        n_checks += 1
        omega_now = hs.omega
        if adaptive:
            hs.omega, hs.settled, hs.grew = _relaxation(err, hs.err_last, hs.omega_last, t - t_last, hs.omega,
                                                        hs.settled, hs.grew, n_checks)
        hs.err_last, hs.omega_last, t_last = err, omega_now, t
        done = (err <= tol) | (t >= max_iters)
        if bool(done.any()):
            ids = [h for h, d in zip(hs.ids, done.tolist()) if d]
            done_dev = done.to(dev)
            final_log_r[ids] = hs.alpha[done_dev] + hs.log_r[done_dev].double()
            final_omega[ids] = hs.omega[done]
            iterations[ids], error[ids], converged[ids] = t, err[done], err[done] <= tol
            if isinstance(kb.store, _SparseStore) and source.rows:
                labels[ids], conf[ids] = kb.store.labels(done_dev.nonzero().squeeze(1), hs.log_r[done_dev].exp())
            hs.keep(~done, kb)
    return (final_log_r, final_omega, iterations, error, converged, stats["rebuilds"], stats["kind"],
            stats["density"], labels, conf)
