"""Optimiser and per-step learning-rate scheduler from `OptimConfig`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from hear_sela.config import ConfigError, OptimConfig
from hear_sela.training.schedules import lr_factor


def build_optimizer(cfg: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay; the audio SeLa code) or Adam (BYOL-A; weight decay as L2, torch's Adam)."""
    params = [p for p in params if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.name must be 'sgd' or 'adam', got {cfg.name!r}")  # (a dataclasses.replace'd config)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepped once per optimiser step with `schedules.lr_factor` (warm-up, step / cosine / constant).
    The config's values were checked when it was loaded (`Config.validate`)."""

    def factor(step: int) -> float:
        return lr_factor(cfg, step, steps_per_epoch, epochs)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
