"""SeLa objective: the heads on the clip embedding (`heads`) and the label store (`label_store`), the
confidence-weighted multi-head loss, and the schedule of label updates, run through the objective's scheduled-work
hook.

The label update itself (encoder in eval over every cached segment, then the Sinkhorn solver) is the pure
`objectives.label_update.solve_label_update`; its result is applied by `LabelStore.apply`.

Legend: B batch, H heads, K clusters, N training segments, D embedding dimension.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from hear_sela import distributed as dist
from hear_sela.config import SelaConfig
from hear_sela.embed import alive_dims
from hear_sela.objectives.base import Objective, RunContext
from hear_sela.objectives.confidence import check_terms, combined_confidence, confidence_weights
from hear_sela.objectives.heads import MultiHead
from hear_sela.objectives.label_store import LabelStore
from hear_sela.objectives.label_update import load_marginals, solve_label_update

log = logging.getLogger("hear_sela.train")


class SelaNet(nn.Module):
    """Encoder + heads: log-mel (B, 1, F, T) -> logits (B, H, K). The module optimised (and DDP-wrapped)."""

    def __init__(self, encoder: nn.Module, heads: MultiHead):
        super().__init__()
        self.encoder, self.heads = encoder, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, H, K)
        z = self.encoder(x).float()  # (B, D)
        self.alive = alive_dims(z)  # (D,): for the dead-unit log
        return self.heads(z)


def sela_loss(logits: torch.Tensor, labels: torch.Tensor, confidences: torch.Tensor | None = None,
              alpha: float = 0.0) -> torch.Tensor:
    """Mean over heads of the per-sample cross-entropy against the self-labels.

    logits (B, H, K), labels (H, B) int64, confidences (H, B) -> scalar. With alpha != 0 each sample's CE is
    weighted by confidence**alpha (`objectives.confidence`: the product of the sela.confidence terms), the weights
    divided by their batch mean per head: the loss stays a weighted average of CE, on the same scale as the
    unweighted loss, so the learning rate needs no retuning.
    """
    ce = F.cross_entropy(rearrange(logits.float(), "b h k -> b k h"), labels.T, reduction="none")  # (B, H)
    if alpha == 0.0 or confidences is None:
        return ce.mean()
    w = confidence_weights(confidences.T, alpha)  # (B, H)
    w = w / w.mean(dim=0, keepdim=True)
    return (ce * w).mean()


class SelaObjective(Objective):
    """SeLa for the training loop: `net` (encoder + heads) is optimised; `loss(batch)` reads the label store."""

    name = "sela"
    views = 1

    def __init__(self, cfg: SelaConfig, encoder: nn.Module, n_segments: int, seed: int,
                 device: torch.device | str = "cpu"):
        self.cfg = cfg
        load_marginals(cfg)  # a bad prior file fails here, not at the first label update after embedding everything
        check_terms(cfg.confidence)
        heads = MultiHead(encoder.embed_dim, cfg.heads, cfg.clusters, cfg.head_dropout,
                          projector=tuple(cfg.projector) if cfg.projector else None)
        super().__init__(SelaNet(encoder, heads).to(device))
        self.store = LabelStore.initial(cfg.heads, n_segments, cfg.clusters, seed, device)
        self.relabel_due = False  # a resume on changed data: label the new segments before the next step

    def loss(self, indices: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """indices (B,) int64 into the store, views (1, B, 1, F, T) -> scalar loss."""
        logits = self.runner(views[0].contiguous(memory_format=self.memory_format))  # (B, H, K)
        labels, conf = self.store.batch(indices)
        conf = combined_confidence(self.cfg.confidence, conf, self.store.terms, indices)  # (H, B)
        return sela_loss(logits, labels, conf, self.cfg.confidence_alpha)

    def scheduled_work(self, run: RunContext, step: int) -> None:
        """A label update when one is due before optimiser step `step` (updates due at one step spill onto the next
        ones, as SeLa's loop consumes one per iteration). After a resume on changed data, first an extra update that
        labels the new segments with the resumed network (outside the schedule: the count of updates done stays)."""
        if self.relabel_due:
            self.relabel_due = False
            self.sync_buffers()
            stats = {**self.update_labels(run, counted=False), "relabel": 1.0}
            run.log("labels", step, stats)
            if dist.is_main():
                log.info("labelled the %d segments of the changed data at step %d (train.resume_relabel)",
                         self.store.labels.shape[1], step)
        steps = label_update_steps(self.cfg, run.cfg.train.epochs, run.steps_per_epoch, self.store.labels.shape[1],
                                   run.cfg.train.batch_size)
        if self.store.updates < len(steps) and steps[self.store.updates] <= step:
            self.sync_buffers()
            stats = self.update_labels(run)
            run.log("labels", step, stats)
            if dist.is_main():
                log.info("label update %d/%d at step %d: %.1f%% changed, NMI to previous %.3f, cluster sizes "
                         "%d..%d, %d solver iterations in %.2f s (update %.1f s)", stats["update"], len(steps), step,
                         100 * stats["changed"], stats["nmi_prev"], stats["size_min"], stats["size_max"],
                         stats["solver_iterations"], stats["solver_seconds"], stats["seconds"])

    def update_labels(self, run: RunContext, counted: bool = True) -> dict[str, float]:
        """Re-solve the labels of every cached segment now (every rank ends with the whole store); returns the
        logged metrics. counted=False: outside the schedule (the count of updates done stays)."""
        update = solve_label_update(self.encoder, self.net.heads, self.store, run)
        self.store.apply(update, counted=counted, record=dist.is_main())
        if dist.is_main() and not bool(update.stats["solver_converged"]):
            log.warning("label update %d: some head(s) stopped at the cap of %d iterations (error up to %.3g > tol "
                        "%.3g)", int(update.stats["update"]), self.cfg.max_iters, update.stats["solver_error"],
                        self.cfg.tol)
        return update.stats

    def state_dict(self) -> dict[str, Any]:
        return {"heads": self.net.heads.state_dict(), "label_store": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any], new_data: bool = False) -> None:
        self.net.heads.load_state_dict(state["heads"])
        if not new_data:
            self.store.load_state_dict(state["label_store"])
            return
        # a fresh store for the new segments; the schedule goes on from the updates already done
        old = state["label_store"]
        self.store.updates, self.store.history = int(old["updates"]), list(old.get("history", []))
        self.relabel_due = True


def label_update_steps(cfg: SelaConfig, epochs: int, steps_per_epoch: int, n_segments: int,
                       global_batch: int) -> list[int]:
    """Global steps (sorted, unique, <= epochs * steps_per_epoch) before which the labels are re-solved.

    A label update "at step s" runs before the optimiser step s, so an update at step 0 labels the untrained network.
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
