"""The learning-rate schedule, indexed by the global optimiser step (SeLa's label-update schedule belongs to its
objective: `objectives.sela.label_update_steps`)."""

from __future__ import annotations

import math

from hear_sela.config import OptimConfig


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
    total = max(epochs * steps_per_epoch - warmup, 1)  # "cosine", the Literal's last choice
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total) / total))
