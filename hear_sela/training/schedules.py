"""The learning-rate schedule, indexed by the global optimiser step (SeLa's label-update schedule belongs to its
objective: `objectives.sela.label_update_steps`)."""

from __future__ import annotations

import math

from hear_sela.config import ConfigError, OptimConfig


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of optim.lr at global `step`: linear warm-up over `warmup_epochs`, then
    step (x gamma every `step_epochs` epochs, as StepLR stepped per epoch) | cosine (to 0 at the end) | constant."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_epochs)
    if cfg.schedule == "cosine":
        total = max(epochs * steps_per_epoch - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total) / total))
    # a loaded config cannot get here (Literal checked at load); a dataclasses.replace'd one can
    raise ConfigError(f"optim.schedule must be 'step', 'cosine' or 'constant', got {cfg.schedule!r}")
