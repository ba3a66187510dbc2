"""Where the solver's logits come from (stored, or recomputed per chunk from features and head weights) and the
log-kernel helpers shared by the kernels.

Legend: H heads, N_r samples on this rank, K clusters, D feature dimension.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

KernelKind = Literal["auto", "dense", "sparse"]

_A_FLOOR = -1.0e30  # finite stand-in for λ(L − max) = −inf (−inf logits, or a range that overflows after × λ)
_SPARSE_MAX_DENSITY = 0.1  # above this a CSR pair costs more bytes and time per iteration than the dense kernel


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
