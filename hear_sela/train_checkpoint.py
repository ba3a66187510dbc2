"""Training checkpoints: atomic save of everything a bitwise-exact resume needs, and the resume itself.

The main file (rank 0) holds weights, optimiser, scheduler, objective state (heads + label store, or BYOL-A's
projector, predictor and EMA target), the position (epoch, step within it, global step) and rank 0's RNG states and
mixup memory. Ranks > 0 keep their own RNG states and mixup memory in side files named by step, written before the
main file, so the main file always finds the side files of its own step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from hear_sela import distributed as dist
from hear_sela.augment import Augment
from hear_sela.checkpoint import capture_rng, encoder_checkpoint_state, load_checkpoint, save_checkpoint
from hear_sela.config import Config

log = logging.getLogger("hear_sela.train")


def sync_buffers(objective) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics; DDP itself only does so at each forward): before a
    label update, so every shard is embedded by the same network, and before a checkpoint, so the saved state is
    every rank's state and a multi-rank resume is exact."""
    if dist.world_size() > 1:
        for module in objective.modules():
            for buf in module.buffers():
                dist.broadcast(buf, 0)


def _local_path(path: Path, rank: int, step: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank}.step{step}.pt")


def save_state(path: Path, cfg: Config, objective, augment: Augment, opt, sched, pos: dict[str, int],
               extra: dict[str, Any]) -> None:
    """Write a checkpoint atomically. Rank-local state (RNG, mixup memory) of ranks > 0 goes to side files named by
    step, written before the main file, so the main file always finds its matching side files."""
    sync_buffers(objective)
    local = {"rng": capture_rng(), "augment": augment.state_dict(), "step": pos["step"]}
    if not dist.is_main():
        save_checkpoint(_local_path(path, dist.rank(), pos["step"]), local)
    dist.barrier()
    if dist.is_main():
        state = {**encoder_checkpoint_state(cfg, objective.encoder), **objective.state_dict(),
                 "objective": objective.name, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "local": local, "world_size": dist.world_size(), **pos, **extra}
        save_checkpoint(path, state)
    dist.barrier()
    if not dist.is_main():  # older side files are no longer referenced
        for old in path.parent.glob(f"{path.stem}.rank{dist.rank()}.step*.pt"):
            if old != _local_path(path, dist.rank(), pos["step"]):
                old.unlink(missing_ok=True)


def load_state(path: Path, objective, augment: Augment, opt, sched, device: torch.device) -> dict[str, Any]:
    """Restore everything `save_state` wrote except the RNG states, which come back in the returned checkpoint as
    "rng_to_restore" (other setup code, e.g. TensorBoard's writer, may still draw random numbers)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("objective") != objective.name:
        raise ValueError(f"{path}: checkpoint of objective {ckpt.get('objective')!r}, this run trains "
                         f"{objective.name!r}")
    objective.encoder.load_state_dict(ckpt["encoder"])
    objective.load_state_dict(ckpt)
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    local = ckpt["local"]
    if dist.rank() > 0:
        side = _local_path(path, dist.rank(), int(ckpt["step"]))
        if ckpt["world_size"] == dist.world_size() and side.is_file():
            local = load_checkpoint(side)
        else:
            log.warning("rank %d: no side file %s (checkpoint from %d ranks, now %d): using rank 0's RNG and mixup "
                        "memory; the run continues but is not bit-identical", dist.rank(), side,
                        ckpt["world_size"], dist.world_size())
    augment.load_state_dict(local["augment"])
    ckpt["rng_to_restore"] = local["rng"]  # restored by the caller as the very last setup step
    return ckpt


def find_resume(cfg: Config, resume: str | None) -> Path | None:
    """Which checkpoint to resume from: never / auto (<out_dir>/last.pt if it exists) / an explicit path."""
    mode = resume or cfg.train.resume
    last = Path(cfg.train.out_dir) / "last.pt"
    if mode in ("never", "", None):
        if last.exists():
            raise FileExistsError(f"{last} exists: resume it with --resume (train.resume=auto) or choose another "
                                  "train.out_dir")
        return None
    if mode == "auto":
        return last if last.exists() else None
    path = Path(mode)
    if not path.is_file():
        raise FileNotFoundError(f"train.resume={mode!r}: no such checkpoint")
    return path
