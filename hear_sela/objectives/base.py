"""What the training loop needs from an objective (SeLa, BYOL-A), the parts that follow from `net` and `modules()`
alone, and the run context the loop hands to an objective's scheduled work.

A subclass sets `name`, `views` (augmented views per sample), `net` (the optimised module, holding `net.encoder`)
and implements `loss(indices, views)`, `after_step`, `state_dict`, `load_state_dict`; it may override `modules`
and `scheduled_work` (the one hook through which an objective does work on its own schedule: SeLa's label updates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hear_sela import distributed as dist
from hear_sela.config import Config
from hear_sela.embed import dead_fraction


def _no_log(kind: str, step: int, values: dict[str, float]) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    """What a run offers an objective's scheduled work: the resolved config (its frontend carries the feature
    statistics), the device, the cached segments and how the loop runs the networks."""

    cfg: Config
    device: torch.device
    features: np.ndarray  # (N, F, T) float16 memmap: the un-normalised cached log-mel segments
    steps_per_epoch: int = 1
    amp: bool = False  # bf16 autocast (CUDA only)
    channels_last: bool = False
    log: Callable[[str, int, dict[str, float]], None] = _no_log  # (kind, global step, scalars), the run's logger

    @property
    def progress(self) -> bool:
        return dist.is_main()


class Objective:
    name: str
    views: int
    net: nn.Module

    def __init__(self, net: nn.Module):
        self.net = net
        self.runner: nn.Module = net  # what `loss` calls: the training loop swaps in the DDP wrapper
        self.memory_format = torch.contiguous_format

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def modules(self) -> list[nn.Module]:
        """Every module with state (for buffer synchronisation across ranks)."""
        return [self.net]

    def train(self, mode: bool = True) -> None:
        for module in self.modules():
            module.train(mode)

    def to_channels_last(self) -> None:
        for module in self.modules():
            module.to(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last

    def sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics; DDP itself only does so at each forward): before
        work that embeds shards on every rank, so all use the same network, and before a checkpoint, so the saved
        state is every rank's state and a multi-rank resume is exact."""
        if dist.world_size() > 1:
            for module in self.modules():
                for buf in module.buffers():
                    dist.broadcast(buf, 0)

    def dead_units(self) -> float:
        """Share of embedding dimensions that were 0 for every clip of the last training batch (all ranks'
        batches); `net` records `alive` (D,) bool at each forward. NaN before the first step."""
        alive = getattr(self.net, "alive", None)
        if alive is None:
            return float("nan")
        return dead_fraction(dist.all_reduce(alive.float()))

    def scheduled_work(self, run: RunContext, step: int) -> None:
        """Called by the loop before every optimiser step `step` (and once after the last step, with step = the
        number of steps done): work the objective does on its own schedule. Default: none."""

    def loss(self, indices: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """indices (B,) int64 into the segments, views (V, B, 1, F, T) -> scalar loss."""
        raise NotImplementedError

    def after_step(self) -> None:
        """After each optimiser step (BYOL-A: move the EMA target)."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any], new_data: bool = False) -> None:
        """new_data: `state` was trained on other segments (a resume on changed data): keep the weights, drop what
        is per segment."""
        raise NotImplementedError
