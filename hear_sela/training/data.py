"""The per-epoch training batch order over the cached segments (`data.segments.SegmentDataset`).

Batch order is a pure function of (seed, epoch, rank, world size) through `DistributedSampler`; a resumed run skips
the batches already done without reading them, so data loading is exact under resume whatever `num_workers` is.

Legend: B batch, F mel bins, T frames (of a cached segment), N segments.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler, Sampler

from hear_sela import distributed as dist
from hear_sela.config import ConfigError


class EpochBatches(Sampler[list[int]]):
    """This rank's training batches of one epoch, from `start_batch` on: DistributedSampler's shuffled, evenly
    padded index list (seed, epoch) cut into full batches; at most `max_batches` batches."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                 max_batches: int | None = None):
        self.sampler = DistributedSampler(range(n), num_replicas=dist.world_size(), rank=dist.rank(), shuffle=True,
                                          seed=seed, drop_last=False)
        self.sampler.set_epoch(epoch)
        self.batch_size, self.start = batch_size, start_batch
        self.total = batches_per_epoch(n, batch_size, max_batches)

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(self.sampler)
        for b in range(self.start, self.total):
            yield indices[b * self.batch_size:(b + 1) * self.batch_size]


def batches_per_epoch(n: int, batch_size: int, max_batches: int | None = None) -> int:
    """Full batches per rank per epoch (the last partial batch is dropped), capped at `max_batches`."""
    per_rank = -(-n // dist.world_size())  # DistributedSampler pads to a multiple of the world size
    full = per_rank // batch_size
    if full == 0:
        raise ConfigError(f"train.batch_size={batch_size} exceeds the {per_rank} segments per rank "
                         f"({n} segments, {dist.world_size()} ranks): lower the batch size")
    return min(full, max_batches) if max_batches else full
