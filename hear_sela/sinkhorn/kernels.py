"""Kernel stores (dense, sparse CSR, recomputed per chunk: what one scaling iteration reads) and the exact
log-domain passes (column logsumexp, kernel build, labels).

Legend: H heads, N_r samples on this rank, K clusters.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from hear_sela import distributed
from hear_sela.sinkhorn.sources import (
    _SPARSE_MAX_DENSITY,
    KernelKind,
    _FeatureSource,
    _log_kernel,
    _log_pmax,
    _LogitSource,
    _row_chunks,
    _safe_exp_,
)

# ----------------------------------------------------------------------------------------------------------------
# Kernel stores: what one scaling iteration reads. sweep(r~) returns c~ = 1/(G r~) and this rank's Gᵀc~, the
# latter accumulated in float64 whatever the kernel's dtype (its error sets the floor of SeLa's stopping error).


_SUM_BLOCK = 256  # rows per float32 partial column sum; the partials are added in float64


def _add_colsum_(acc: Tensor, c: Tensor, g: Tensor) -> Tensor:
    """acc += c G over a chunk's rows: float32 GEMMs over blocks of _SUM_BLOCK rows, their partials summed in float64.

    acc: (H_a, K) float64; c: (H_a, 1, C); g: (H_a, C, K). One float32 GEMM over all N rows errs by up to ~N ulps
    (Σ|c/c' − 1| then floors at ~N²·1e-10: 1.5 at N = 100k, above SeLa's tol 0.1); blocks keep it at ~√256 ulps
    of each partial, at the speed of the single GEMM (measured on CPU).
    """
    heads, rows, k = g.shape
    full = rows - rows % _SUM_BLOCK
    for h in range(heads):  # per head: a head's rows are contiguous, so the blocks are views
        if full:
            part = torch.bmm(c[h, :, :full].view(-1, 1, _SUM_BLOCK), g[h, :full].view(-1, _SUM_BLOCK, k))
            acc[h] += part.sum((0, 1), dtype=torch.float64)
        if full < rows:
            acc[h] += torch.mm(c[h, :, full:], g[h, full:]).squeeze(0).double()
    return acc


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
        """c~ = 1/(G r~) (relaxed) and Gᵀc~ (float64).

        # (H_a, K), (H_a, N_r) | None, (H_a, 1) | None -> (H_a, N_r), (H_a, K)
        """
        heads, rows, k = self.g.shape
        c = torch.empty(heads, rows, dtype=r.dtype, device=r.device)
        colsum = torch.zeros(heads, k, dtype=torch.float64, device=r.device)
        r_row = r.unsqueeze(1)  # (H_a, 1, K)
        om = None if omega is None else omega.unsqueeze(1)
        # Both mat-vecs per chunk: the second reads the chunk while it is still in cache (one memory pass).
        for start, stop in _row_chunks(rows, self.chunk):
            g = self.g[:, start:stop]
            y = torch.bmm(r_row, g.transpose(1, 2))  # (H_a, 1, C); bmm(G, r) takes a slow GEMM path
            cc = _next_c(y, None if c_prev is None else c_prev[:, None, start:stop], om)
            _add_colsum_(colsum, cc, g)
            c[:, start:stop] = cc.squeeze(1)
        return c, colsum

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
        return torch.mv(self.st, ones).view(self.heads, self.clusters).double()

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
        colsum = torch.mv(self.st, c.view(-1)).view(self.heads, self.clusters).double()  # (H_a, K)
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
        colsum = torch.zeros(heads, k, dtype=torch.float64, device=r.device)
        r_row = r.unsqueeze(1)
        om = None if omega is None else omega.unsqueeze(1)
        for start, stop in _row_chunks(self.source.rows, self.chunk):
            x = _log_kernel(self.source.chunk(self.heads, start, stop), self.lamb, self.alpha.unsqueeze(1))
            x += self.beta[:, start:stop, None]
            g = _safe_exp_(x)
            y = torch.bmm(r_row, g.transpose(1, 2))  # (H_a, 1, C)
            cc = _next_c(y, None if c_prev is None else c_prev[:, None, start:stop], om)
            _add_colsum_(colsum, cc, g)
            c[:, start:stop] = cc.squeeze(1)
        return c, colsum

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
    run_sum = torch.zeros(h, k, dtype=torch.float64, device=dev)  # float64 across chunks, as the sweeps
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
        run_sum.mul_(torch.exp(run_max - new_max)).add_(_safe_exp_(x.sub_(new_max.unsqueeze(1))).sum(
            1, dtype=torch.float64))
        run_max = new_max
    # Logsumexp across ranks: agree on the max, then sum the rescaled partial sums.
    global_max = distributed.all_reduce(run_max.clone(), "max")
    run_sum = distributed.all_reduce(run_sum * torch.exp(run_max - global_max).nan_to_num_(nan=0.0).double(), "sum")
    return global_max.double() + torch.log(run_sum), (v0 if v is None else None)


@dataclass
class _Built:
    store: _DenseStore | _SparseStore | _RecomputeStore
    beta: Tensor  # (H_a, N_r) float64 absorbed sample duals: log c of the build's exact c-update
    colsum: Tensor  # (H_a, K) float64 Σ_i G_ik over all ranks (the next r-update's denominator at c~ = 1)
    row_dropped: Tensor  # (H_a,) max over all ranks' rows of the kernel mass dropped from a row (rows sum to 1)
    col_dropped: Tensor  # (H_a, K) float64 kernel mass dropped from each column, summed over all ranks
    density: float  # kept fraction on this rank


def _build_kernel(source: _LogitSource | _FeatureSource, heads: tuple[int, ...], alpha: Tensor, lamb: float,
                  chunk: int, kind: KernelKind, log_eps: float, log_floor: float, n_total: int) -> _Built:
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
    colsum = torch.zeros(h, k, dtype=torch.float64, device=dev)
    row_dropped = torch.zeros(h, dtype=torch.float64, device=dev)
    col_dropped = torch.zeros(h, 1, k, dtype=torch.float64, device=dev)
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
            colsum += g.sum(1, dtype=torch.float64)
            if dense_g is not None:
                dense_g[:, start:stop] = g
            continue
        keep = g >= z * math.exp(log_eps)  # against ε·z rather than dividing the whole block by z
        dropped = torch.where(keep, 0.0, g)
        inv_z = z.reciprocal_()  # (H_a, C, 1)
        row_dropped = torch.maximum(row_dropped, (dropped.sum(-1, keepdim=True) * inv_z).amax((1, 2)).double())
        col_dropped += torch.bmm(inv_z.transpose(1, 2), dropped).double()
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
            return _build_kernel(source, heads, alpha, lamb, chunk, "dense", log_eps, log_floor, n_total)
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
