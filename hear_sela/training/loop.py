"""One training loop for both objectives (SeLa, BYOL-A): torchrun DDP, bf16 autocast on CUDA, per-sample device
augmentation, the objective's own scheduled work (SeLa: label updates) through one hook, atomic checkpoints and exact
resume. The loop knows no objective's internals.

Exact resume: a step's randomness is (a) the augmentation, drawn from a generator seeded by (seed, step, rank),
(b) dropout, from the global torch RNG whose state is checkpointed per rank, and (c) the batch order, a pure
function of (seed, epoch) that a resumed run re-enters at the checkpoint's position. Together with weights,
optimiser, scheduler, label store, EMA target and mixup memory, a run killed at any point and resumed from its
last checkpoint ends bitwise identical to an uninterrupted one (same device, same world size).

Legend: B batch, V views, F mel bins, T frames, N segments.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from hear_sela import distributed as dist
from hear_sela.augment import Augment, build_augment
from hear_sela.config import Config, ConfigError, config_to_dict
from hear_sela.data.segments import SegmentDataset, make_loader
from hear_sela.fileio import exclusive_lock, remove_stale_temporaries
from hear_sela.objectives.base import Objective, RunContext
from hear_sela.training.data import EpochBatches, batches_per_epoch
from hear_sela.training.online_eval import OnlineEvaluator
from hear_sela.training.optim import build_optimizer, build_scheduler
from hear_sela.training.resume_config import check_resume_config
from hear_sela.training.state import (
    ResumeError,
    build_objective,
    check_resume_data,
    find_resume,
    load_state,
    read_stored_config,
    restore_rng,
    save_state,
)

log = logging.getLogger("hear_sela.train")
RUN_LOCK = ".train.lock"  # in train.out_dir, held by rank 0 while a training runs there


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the augmentation generator at a global step on a rank (independent of resume)."""
    return (seed * 1_000_003 + step * 4099 + rank * 7919 + 17) % (2**63 - 1)


def seed_all(seed: int) -> None:
    """Seed torch, numpy and Python's global RNGs (all three are checkpointed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def open_cache(cfg: Config, records: list | None = None):
    """The run's feature cache (rank 0 builds or opens it while the other ranks wait, then they open it)."""
    from hear_sela.data.prepare import prepare_cache

    return prepare_cache(cfg, progress=dist.is_main(), records=records)


# ---------------------------------------------------------------- logging


AFTER_CHECKPOINT = ("labels", "eval")  # kinds of records written at step s after the checkpoint at s


def _kept(record: dict[str, Any], resume_step: int, finished: bool) -> bool:
    # a finished run's checkpoint comes after the label update and the online evaluation at its last step; any
    # other checkpoint at step s before them (they run again on resume)
    return record["step"] < resume_step or (record["step"] == resume_step and (
        finished or record["kind"] not in AFTER_CHECKPOINT))


class Logger:
    """Rank-0 scalars to TensorBoard and to a JSONL file (one object per record, with the global step)."""

    def __init__(self, out_dir: Path, resume_step: int | None, finished: bool = False):
        self.enabled = dist.is_main()
        self.path = out_dir / "metrics.jsonl"
        self.tb = None
        if not self.enabled:
            return
        if resume_step is not None and self.path.exists():  # drop records past the checkpoint we resume from
            # train records at step s were written before the checkpoint at s, label updates at s after it
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln and _kept(json.loads(ln), resume_step, finished)]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif resume_step is None:
            self.path.write_text("")
        # tensorboard imports all of TensorFlow (~10 s) unless its own "no TF" marker module exists; writing
        # scalars needs none of it, so register the marker (tensorboard.compat falls back to its stub)
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=None if resume_step is None else resume_step + 1)
        except ImportError as e:  # tensorboard is a dependency, but keep training without it
            log.warning("TensorBoard disabled: %s", e)

    def write(self, kind: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float) and math.isfinite(v):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ---------------------------------------------------------------- the loop


def optimiser_step(objective: Objective, opt: torch.optim.Optimizer, sched, idx: torch.Tensor, views: torch.Tensor,
                   device: torch.device, amp: bool, clip_grad: float) -> torch.Tensor:
    """Forward, backward, clipping, optimiser and scheduler step, then the objective's after-step on augmented
    views (V, B, 1, F, T) of the segments idx (B,) (both on `device`). Returns the loss, detached, not synchronised."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = objective.loss(idx, views)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(objective.net.parameters(), clip_grad)
    opt.step()
    sched.step()
    objective.after_step()
    return loss.detach()


def train_step(objective: Objective, augment: Augment, opt: torch.optim.Optimizer, sched, idx: torch.Tensor,
               seg: torch.Tensor, gen: torch.Generator, device: torch.device, amp: bool, clip_grad: float
               ) -> torch.Tensor:
    """One training step on a batch from the cache: idx (B,) int64, seg (B, F, T_seg) float16 (host or device)
    augmented on the device, then `optimiser_step`. Returns the loss, detached, not synchronised."""
    idx = idx.to(device, non_blocking=True)
    views = augment(seg.to(device, non_blocking=True), gen, objective.views).unsqueeze(2)  # (V, B, 1, F, T)
    return optimiser_step(objective, opt, sched, idx, views, device, amp, clip_grad)


def train(cfg: Config, resume: str | None = None, cache=None) -> Path:
    """Train `cfg` to the end (or continue a checkpoint); returns the final checkpoint's path. Rank 0 holds
    <out_dir>/.train.lock throughout: a second training into the same folder is refused, not interleaved."""
    dist.init_from_env()
    out_dir = Path(cfg.train.out_dir)
    if not dist.is_main():
        return _train(cfg, resume, cache)
    out_dir.mkdir(parents=True, exist_ok=True)

    def refuse() -> None:
        raise ResumeError(f"{out_dir} is in use by another training (it holds {out_dir / RUN_LOCK}); wait for it to "
                          "end, or train into another train.out_dir")

    with exclusive_lock(out_dir / RUN_LOCK, busy=refuse):
        remove_stale_temporaries(out_dir)  # a checkpoint write killed mid-way; no writer of ours is at work here
        return _train(cfg, resume, cache)


def _train(cfg: Config, resume: str | None, cache) -> Path:
    # ---- process group, device, output
    device = dist.resolve_device(cfg.train.device)
    tc = cfg.train
    out_dir = Path(tc.out_dir)
    ckpt_path = find_resume(cfg, resume)
    dist.barrier()
    if ckpt_path is not None:  # a changed recipe is applied or refused by name before any work
        check_resume_config(cfg, read_stored_config(ckpt_path), ckpt_path)

    # ---- data: the feature cache; its statistics normalise the input and travel inside every checkpoint
    records, new_data = None, False
    if ckpt_path is not None and cache is None:  # a changed data set is refused before the cache is touched
        records, new_data = check_resume_data(cfg, ckpt_path, device)
    cache = cache if cache is not None else open_cache(cfg, records)
    cfg = dataclasses.replace(cfg, frontend=cache.frontend)
    dataset = SegmentDataset(cache.features)
    n = len(dataset)
    if tc.batch_size % dist.world_size():
        raise ConfigError(f"train.batch_size={tc.batch_size} (the global batch) is not divisible by the "
                         f"{dist.world_size()} ranks")
    rank_batch = tc.batch_size // dist.world_size()
    steps_per_epoch = batches_per_epoch(n, rank_batch, tc.max_steps_per_epoch)
    if dist.is_main():
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

    # ---- networks, augmentation, optimiser, schedules
    objective = build_objective(cfg, n, device)
    augment = build_augment(cfg.augment, cfg.frontend).to(device)
    channels_last = tc.channels_last and device.type == "cuda"
    if channels_last:
        objective.to_channels_last()
    opt = build_optimizer(cfg.optim, objective.net.parameters())
    sched = build_scheduler(opt, cfg.optim, steps_per_epoch, tc.epochs)
    evaluator = OnlineEvaluator(cfg, objective.name)  # a bad online_eval setting fails before any step
    seed_all(tc.seed + 7919 * dist.rank())  # dropout differs across ranks

    # ---- resume
    pos = {"epoch": 0, "epoch_step": 0, "step": 0}
    cpu_before = 0.0  # CPU seconds (user + sys, this process) of the run before this process started
    if ckpt_path is not None:
        ckpt = load_state(ckpt_path, objective, augment, opt, sched, device, new_data=new_data)
        pos = {k: int(ckpt[k]) for k in pos}
        evaluator.load_state_dict(ckpt.get("online_eval"))
        cpu_before = float(ckpt.get("cpu_seconds", 0.0))
        if new_data and pos["epoch_step"]:  # the old batch order means nothing on new data: redo the epoch
            pos["epoch_step"] = 0
        log.info("resumed %s at epoch %d, step %d (%d in the epoch)", ckpt_path, pos["epoch"], pos["step"],
                 pos["epoch_step"])
        if ckpt.get("finished"):
            if pos["epoch"] >= tc.epochs:
                log.info("%s is a finished run of %d epochs; nothing to do (set train.epochs above %d to extend it)",
                         ckpt_path, pos["epoch"], pos["epoch"])
                return ckpt_path
            log.info("%s finished %d epochs; extending the run to train.epochs=%d: the learning-rate schedule%s "
                     "follow the new count", ckpt_path, pos["epoch"], tc.epochs,
                     " and SeLa's label-update schedule" if objective.name == "sela" else "")
    logger = Logger(out_dir, pos["step"] if ckpt_path is not None else None,
                    finished=ckpt_path is not None and bool(ckpt.get("finished")))
    runner = objective.net
    if dist.world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        runner = DDP(objective.net, device_ids=[device.index] if device.type == "cuda" else None)
    objective.runner = runner
    amp = tc.amp and device.type == "cuda"
    gen = torch.Generator(device=device)
    last = out_dir / "last.pt"
    fixed = {"cache_dir": str(getattr(cache, "root", "")), "n_segments": n,
             "cache_fingerprint": cache.manifest.get("fingerprint")}

    def cpu_seconds() -> float:  # the run's CPU time so far, over all its processes (resumes)
        return cpu_before + time.process_time()

    def extra() -> dict[str, Any]:
        return {**fixed, "online_eval": evaluator.state_dict(), "cpu_seconds": cpu_seconds()}

    def evaluate(final: bool = False) -> None:
        evaluator.maybe_run(objective.encoder, cfg, pos["step"], logger.write, cpu_seconds(), final=final)
    if dist.is_main():
        log.info("%s: %d segments, %d steps/epoch x %d epochs, global batch %d, device %s, %d rank(s)",
                 objective.name, n, steps_per_epoch, tc.epochs, tc.batch_size, device, dist.world_size())
        if objective.name == "sela" and cfg.sela.clusters > n:
            log.warning("sela.clusters=%d exceeds the %d training segments: at least %d clusters stay empty at every "
                        "label update; lower sela.clusters or add data", cfg.sela.clusters, n, cfg.sela.clusters - n)

    run = RunContext(cfg=cfg, device=device, features=cache.features, steps_per_epoch=steps_per_epoch, amp=amp,
                     channels_last=channels_last, log=logger.write)

    def check(loss: torch.Tensor | None) -> None:
        if loss is not None and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at epoch {pos['epoch']}, step {pos['step']} "
                f"({objective.name}, lr {sched.get_last_lr()[0]:.3g}); nothing was checkpointed after it. Lower "
                f"optim.lr, keep optim.clip_grad > 0, or check the feature cache for NaN/inf")

    if ckpt_path is not None:
        restore_rng(ckpt["rng_to_restore"])

    # ---- loop
    pending: torch.Tensor | None = None  # last step's loss, checked one step late to avoid a device sync per step
    t_log, clips_log = time.perf_counter(), 0
    objective.train(True)
    for epoch in range(pos["epoch"], tc.epochs):
        batches = EpochBatches(n, rank_batch, tc.seed, epoch, pos["epoch_step"], tc.max_steps_per_epoch)
        loader = make_loader(dataset, batches, cfg.data.num_workers, pin_memory=device.type == "cuda")
        if dist.is_main():
            from tqdm import tqdm

            loader = tqdm(loader, desc=f"epoch {epoch + 1}/{tc.epochs}", initial=pos["epoch_step"],
                          total=steps_per_epoch, dynamic_ncols=True, leave=False)
        for idx, seg in loader:
            check(pending)  # the previous step's forward is long done by now: a cheap sync
            evaluate()
            objective.scheduled_work(run, pos["step"])
            gen.manual_seed(step_seed(tc.seed, pos["step"], dist.rank()))
            pending = train_step(objective, augment, opt, sched, idx, seg, gen, device, amp, cfg.optim.clip_grad)
            pos["step"] += 1
            pos["epoch_step"] += 1
            clips_log += idx.shape[0] * dist.world_size()
            if pos["step"] % tc.log_every == 0 or pos["epoch_step"] == steps_per_epoch:
                check(pending)
                value = float(dist.all_reduce(pending.clone().float()) / dist.world_size())
                now = time.perf_counter()
                logger.write("train", pos["step"], {"loss": value, "lr": sched.get_last_lr()[0],
                                                    "clips_per_s": clips_log / max(now - t_log, 1e-9),
                                                    "epoch": epoch, "dead_units": objective.dead_units(),
                                                    "cpu_seconds": cpu_seconds()})
                t_log, clips_log = now, 0
                if dist.is_main():
                    loader.set_postfix(loss=f"{value:.4f}")
            if tc.ckpt_every_steps and pos["step"] % tc.ckpt_every_steps == 0 and pos["epoch_step"] < steps_per_epoch:
                check(pending)
                save_state(last, cfg, objective, augment, opt, sched, pos, extra())
        check(pending)
        pos.update(epoch=epoch + 1, epoch_step=0)
        save_state(last, cfg, objective, augment, opt, sched, pos, extra())
        if dist.is_main():
            log.info("epoch %d/%d done (step %d)", epoch + 1, tc.epochs, pos["step"])

    # ---- the end: work scheduled after the last step (SeLa: a label update), then a final checkpoint marked finished
    check(pending)
    evaluate(final=True)
    objective.scheduled_work(run, pos["step"])
    final = out_dir / "final.pt"
    save_state(final, cfg, objective, augment, opt, sched, pos, {**extra(), "finished": True}, resumable=False)
    save_state(last, cfg, objective, augment, opt, sched, pos, {**extra(), "finished": True})
    logger.close()
    return final
