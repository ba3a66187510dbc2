"""The one segment-embedding path: the encoder's clip embedding of cached log-mel segments, as the SeLa label update
sees them (encoder in eval, no augmentation, full segments, normalised by the frontend with the config's
statistics). Used by the label update, the `labels` command and the analysis.

Legend: N segments (N_r in the rows embedded), F mel bins, T frames, B batch, D embedding dimension.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from hear_sela.config import FrontendConfig
from hear_sela.data.segments import SegmentDataset, ShardBatches, make_loader
from hear_sela.frontend import normalize


@torch.no_grad()
def embed_segments(encoder: nn.Module, features: np.ndarray, frontend: FrontendConfig, batch_size: int,
                   device: torch.device, *, amp: bool = False, channels_last: bool = False, num_workers: int = 0,
                   progress: bool = False,
                   transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Clip embeddings of this rank's contiguous shard (`distributed.shard_range`; all of them in one process) of
    the cached segments: features (N, F, T) un-normalised log-mel -> (N_r, D) float32 on `device`.

    transform: a view of each batch instead of the whole segment, (indices (B,) int64 global, raw segments
    (B, F, T) float16 on `device`) -> normalised input (B, F, T') float32 (the multi-view label update's crops or
    augmentation draws, `objectives.label_views`); None = the segment normalised by the frontend."""
    was_training = encoder.training
    encoder.eval()
    loader = make_loader(SegmentDataset(features), ShardBatches(len(features), batch_size), num_workers,
                         pin_memory=device.type == "cuda")
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="embed segments", leave=False, dynamic_ncols=True)
    out = []
    for idx, seg in loader:  # (B,), (B, F, T) float16
        if transform is None:
            x = normalize(seg.to(device, non_blocking=True).float(), frontend).unsqueeze(1)  # (B, 1, F, T)
        else:
            x = transform(idx, seg.to(device, non_blocking=True)).unsqueeze(1)  # (B, 1, F, T')
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out.append(encoder(x).float())  # (B, D)
    encoder.train(was_training)
    if not out:
        return torch.zeros(0, getattr(encoder, "embed_dim", 0), device=device)
    return torch.cat(out)


def alive_dims(emb: torch.Tensor) -> torch.Tensor:
    """Which embedding dimensions are non-zero for at least one row: (N, D) -> (D,) bool. The rest are dead units
    (a ReLU output that is 0 for every clip carries nothing), watched in training, the label update and analysis."""
    return (emb.detach() != 0).any(dim=0)


def dead_fraction(alive_counts: torch.Tensor) -> float:
    """Share of dimensions never alive, from (D,) alive flags or counts (summed over ranks)."""
    return float((alive_counts == 0).float().mean())
