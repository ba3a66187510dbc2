"""Schedules indexed by the global optimiser step: when to update the self-labels, and the learning-rate factor.

A label update "at step s" runs before the optimiser step s, so an update at step 0 labels the untrained network.
"""

from __future__ import annotations

import math

import numpy as np

from hear_sela.config import OptimConfig, SelaConfig


def label_update_steps(cfg: SelaConfig, epochs: int, steps_per_epoch: int, n_segments: int,
                       global_batch: int) -> list[int]:
    """Global steps (sorted, unique, <= epochs * steps_per_epoch) before which the labels are re-solved.

    - "list": `cfg.update_epochs`, each epoch e mapped to the first step of epoch e (0 = before any training), as
      the audio SeLa code's 25 updates over 200 epochs; e = epochs re-solves once more after the last step, so the
      final checkpoint holds the trained network's labels.
    - "quadratic": SeLa's spacing: update times (in samples seen) (epochs + 1.01) * N * linspace(0, 1, n)**2,
      consumed one per iteration as SeLa's loop does (so several times that fall on one step spill onto the
      following steps). The first update is at step 0.
    """
    total = epochs * steps_per_epoch
    if cfg.schedule == "list":
        bad = [e for e in cfg.update_epochs if e < 0]
        if bad:
            raise ValueError(f"sela.update_epochs has negative epochs {bad}")
        steps = sorted({e * steps_per_epoch for e in cfg.update_epochs})
    elif cfg.schedule == "quadratic":
        if cfg.n_updates < 1:
            raise ValueError(f"sela.n_updates={cfg.n_updates} must be >= 1 for the quadratic schedule")
        times = (epochs + 1.01) * n_segments * np.linspace(0.0, 1.0, cfg.n_updates) ** 2  # samples seen
        steps, last = [], -1
        for t in times:
            step = max(math.ceil(t / global_batch), last + 1)
            steps.append(step)
            last = step
    else:
        raise ValueError(f"sela.schedule must be 'list' or 'quadratic', got {cfg.schedule!r}")
    return [s for s in steps if s < total or (s == total and cfg.schedule == "list")]


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
    raise ValueError(f"optim.schedule must be 'step', 'cosine' or 'constant', got {cfg.schedule!r}")
