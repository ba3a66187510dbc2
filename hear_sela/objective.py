"""What the training loop needs from an objective (SeLa, BYOL-A), and the parts that follow from `net` and
`modules()` alone.

A subclass sets `name`, `views` (augmented views per sample), `net` (the optimised module, holding `net.encoder`)
and implements `modules`, `loss(indices, views)`, `after_step`, `state_dict`, `load_state_dict`.
"""

from __future__ import annotations

import torch
from torch import nn


class Objective:
    name: str
    views: int
    net: nn.Module

    def __init__(self, net: nn.Module):
        self.net = net
        self.runner: nn.Module = net  # what `loss` calls: train.py swaps in the DDP wrapper
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
