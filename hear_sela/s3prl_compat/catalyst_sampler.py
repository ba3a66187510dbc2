"""Installed as `catalyst.data.sampler` by hear_sela.s3prl_compat when catalyst is not installed.

s3prl 0.4.18's speech_commands loader imports catalyst for this one class, and uses it only under torch.distributed
(one process never constructs it). Rather than install catalyst (a training framework with its own pins), this
stand-in does what that class does: each epoch the wrapped sampler is drawn once and every rank takes its share of
the draw, split as `torch.utils.data.DistributedSampler` splits a dataset. As with catalyst, ranks draw the same
indices only when their RNGs are seeded alike (s3prl's run_downstream seeds every rank with --seed).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler, Sampler


class DistributedSamplerWrapper(DistributedSampler):
    """This rank's share of each draw of `sampler` (which must have a length)."""

    def __init__(self, sampler: Sampler, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True):
        super().__init__(sampler, num_replicas=num_replicas, rank=rank, shuffle=shuffle)  # only len(sampler) used
        self.sampler = sampler

    def __iter__(self) -> Iterator[int]:
        draw = list(self.sampler)
        return iter([draw[i] for i in super().__iter__()])
