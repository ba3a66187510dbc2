"""Timestamp embeddings from the encoder's own frame features (HEAR `timestamp_mode` "frames" and
"frames+context"): the clip is encoded once (the chunked scene path), and each timestamp gets the frame features
linearly interpolated at its time, optionally followed by the encoder head's pooling of the frames around it.

Encoder frame j pools input frames [j * stride, (j + 1) * stride), so its centre is input frame
j * stride + (stride - 1) / 2. Legend: n sounds, T' encoder frames, K timestamps, D embedding, W context frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def frame_centres(num_frames: int, stride: int) -> torch.Tensor:  # -> (T',) in input frames
    return torch.arange(num_frames, dtype=torch.float64) * stride + (stride - 1) / 2


def interpolate_frames(feats: torch.Tensor, stride: int, centres: torch.Tensor) -> torch.Tensor:
    """(n, T', D) frame features, (K,) timestamp centres in input frames -> (n, K, D), linear between the two
    nearest encoder frames (the first / last frame before the first / after the last centre)."""
    pos = (centres.to(torch.float64) - (stride - 1) / 2) / stride  # (K,) in encoder frames
    pos = pos.clamp(0, feats.shape[1] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=feats.shape[1] - 1)
    w = (pos - lo).to(feats.dtype).to(feats.device)[None, :, None]  # (1, K, 1)
    lo, hi = lo.to(feats.device), hi.to(feats.device)
    return feats[:, lo] * (1 - w) + feats[:, hi] * w


def pooled_context(feats: torch.Tensor, stride: int, centres: torch.Tensor, context_frames: int,
                   head: Callable[[torch.Tensor], torch.Tensor], batch: int) -> torch.Tensor:
    """(n, T', D) -> (n, K, D): `head` (the encoder's clip pooling) over the encoder frames of a `context_frames`
    input-frame window centred on each timestamp; windows past the clip's ends repeat its end frames. At most
    `batch` pooled rows (n * k * W frames of D features) per pass."""
    n, frames, dim = feats.shape
    width = max(1, round(context_frames / stride))  # W encoder frames
    first = torch.floor(centres.to(torch.float64) / stride - (width - 1) / 2 - (stride - 1) / (2 * stride) + 0.5)
    idx = (first.long()[:, None] + torch.arange(width)).clamp(0, frames - 1).to(feats.device)  # (K, W)
    out = []
    step = max(1, batch // max(1, n * width))
    for k0 in range(0, len(idx), step):
        windows = feats[:, idx[k0:k0 + step]]  # (n, k, W, D)
        pooled = head(windows.reshape(-1, width, dim))  # (n*k, D)
        out.append(pooled.reshape(n, -1, dim))
    return torch.cat(out, dim=1) if out else feats.new_zeros(n, 0, dim)


def context_frames_of(context_ms: float, frame_ms: float, stride: int) -> int:
    """A context span in input frames, whole encoder strides, at least one stride."""
    return stride * max(1, math.floor(context_ms / frame_ms / stride + 0.5))
