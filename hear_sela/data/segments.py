"""The feature cache's segments as a dataset, the in-order shard of this rank, and the loader both are read with
(by the training loop, `hear_sela.embed` and the analysis).

The dataset has no randomness of its own: augmentation happens on the device from a per-step seed.

Legend: B batch, F mel bins, T frames (of a cached segment), N segments.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hear_sela import distributed as dist


class SegmentDataset(Dataset):
    """Cached log-mel segments: item i -> (i, (F, T) float32). `__getitems__` reads a whole batch in one memmap
    gather and returns it as float16 (the cache's dtype; half the host-to-device bytes): ((B,) int64, (B, F, T))."""

    def __init__(self, features: np.ndarray):
        self.features = features  # (N, F, T) float16 memmap

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        return i, torch.from_numpy(np.asarray(self.features[i], dtype=np.float32))

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are sequential on disk
        rows = np.empty((len(idx), *self.features.shape[1:]), dtype=self.features.dtype)
        rows[order] = self.features[idx[order]]
        return torch.from_numpy(idx), torch.from_numpy(rows)


def _passthrough(batch: Any) -> Any:
    return batch


class ShardBatches(Sampler[list[int]]):
    """Consecutive batches over this rank's contiguous shard [start, stop) (`distributed.shard_range`): every
    segment exactly once across ranks, in order, with no padding."""

    def __init__(self, n: int, batch_size: int):
        self.start, self.stop = dist.shard_range(n)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(self.start, self.stop, self.batch_size):
            yield list(range(i, min(i + self.batch_size, self.stop)))


def make_loader(dataset: SegmentDataset, batches: Sampler[list[int]], num_workers: int, pin_memory: bool
                ) -> DataLoader:
    """A loader yielding ((B,) int64, (B, F, T) float16) batches. The loader gets its own generator so creating
    an iterator never draws from the global torch RNG (which the checkpoint restores)."""
    return DataLoader(dataset, batch_sampler=batches, collate_fn=_passthrough, num_workers=num_workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(0),
                      persistent_workers=False, prefetch_factor=4 if num_workers > 0 else None)
