"""Training checkpoints, the one owner of their layout: atomic save of everything a bitwise-exact resume needs, the
resume itself, and reading a checkpoint once to rebuild its objective (for `labels` and the analysis).

The main file (rank 0) holds weights, optimiser, scheduler, objective state (heads + label store, or BYOL-A's
projector, predictor and EMA target), the position (epoch, step within it, global step) and rank 0's RNG states and
mixup memory. Ranks > 0 keep their own RNG states and mixup memory in side files named by step, written before the
main file, so the main file always finds the side files of its own step.

`final.pt` is written without resumable extras: no mixup memory (BYOL-A's 2048 inputs are 50 MB of a 51 MB
checkpoint) and no side files. `last.pt`, written at the same step, keeps them, so the exact resume (and extending a
finished run) goes through `last.pt`; a resume from `final.pt` starts with an empty mixup memory and says so.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hear_sela import distributed as dist
from hear_sela.augment import Augment, augment_state
from hear_sela.checkpoint import (
    CheckpointError,
    encoder_checkpoint_state,
    initial_encoder,
    load_checkpoint,
    save_checkpoint,
)
from hear_sela.config import Config, ConfigError, config_from_dict
from hear_sela.objectives.base import Objective
from hear_sela.objectives.byol import ByolObjective
from hear_sela.objectives.label_store import LabelStore
from hear_sela.objectives.sela import SelaObjective

log = logging.getLogger("hear_sela.train")


class ResumeError(ValueError):
    """A run cannot start or resume as asked (an existing run, a missing or unfitting checkpoint, changed data)."""


def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors / plain values (weights_only-loadable)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_s = state["numpy"]
    np.random.set_state(("MT19937", np_s["keys"].numpy().astype(np.uint32), np_s["pos"], np_s["has_gauss"],
                         np_s["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _local_path(path: Path, rank: int, step: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank}.step{step}.pt")


def save_state(path: Path, cfg: Config, objective, augment: Augment, opt, sched, pos: dict[str, int],
               extra: dict[str, Any], resumable: bool = True) -> None:
    """Write a checkpoint atomically. Rank-local state (RNG, mixup memory) of ranks > 0 goes to side files named by
    step, written before the main file, so the main file always finds its matching side files. resumable=False
    leaves out the mixup memory and the side files (final.pt: for analysis and export; last.pt resumes)."""
    objective.sync_buffers()
    local = {"rng": capture_rng(), "augment": augment_state(augment, with_memory=resumable), "step": pos["step"]}
    if resumable and not dist.is_main():
        save_checkpoint(_local_path(path, dist.rank(), pos["step"]), local)
    dist.barrier()
    if dist.is_main():
        state = {**encoder_checkpoint_state(cfg, objective.encoder), **objective.state_dict(),
                 "objective": objective.name, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "local": local, "world_size": dist.world_size(), **pos, **extra}
        save_checkpoint(path, state)
    dist.barrier()
    if resumable and not dist.is_main():  # older side files are no longer referenced
        for old in path.parent.glob(f"{path.stem}.rank{dist.rank()}.step*.pt"):
            if old != _local_path(path, dist.rank(), pos["step"]):
                old.unlink(missing_ok=True)


def _load_for_resume(path: Path) -> dict[str, Any]:
    try:
        return load_checkpoint(path, map_location="cpu")
    except CheckpointError as e:
        raise CheckpointError(f"{e}; resume another checkpoint (--resume PATH) or start afresh in a new "
                              "train.out_dir") from None


def read_stored_config(path: Path) -> dict[str, Any]:
    """The config a checkpoint was trained with, as stored (plain data)."""
    return _load_for_resume(path)["config"]


def check_resume_data(cfg: Config, path: Path, device: torch.device) -> tuple[list | None, bool]:
    """Before the feature cache is touched: does the data `cfg` describes still give the cache the checkpoint
    trained on? Returns (the clip records when rank 0 built them, data changed). A change raises ResumeError naming
    it (files added and removed) and the two ways on, unless train.resume_relabel is set."""
    from hear_sela.data.prepare import cache_dir_of, data_change, planned_cache

    ckpt = _load_for_resume(path)  # on every rank: a bad checkpoint fails everywhere, before any collective
    fingerprint = ckpt.get("cache_fingerprint")
    if fingerprint is None:  # written before checkpoints recorded it: the manifest it trained on, if still there
        from hear_sela.data.cache import MANIFEST, read_cache_json

        old = read_cache_json(Path(ckpt.get("cache_dir") or cache_dir_of(cfg)) / MANIFEST) or {}
        if old.get("shape", [None])[0] == ckpt.get("n_segments"):
            fingerprint = old.get("fingerprint")
    records, change = None, None
    if fingerprint is not None and dist.is_main():
        records, ident = planned_cache(cfg)
        change = data_change(cfg, fingerprint, records, ident)
    changed = bool(dist.all_reduce(torch.tensor([float(change is not None)], device=device))[0])
    if changed and not cfg.train.resume_relabel:
        store = ckpt.get("label_store")
        fits = f"its label store ({tuple(store['labels'].shape)}: heads x segments) would not fit and " \
            if store is not None else ""
        raise ResumeError(f"{path}: the data changed since this checkpoint was written ({change or 'see rank 0'}); "
                          f"{fits}resuming would rebuild the feature cache. Train into a new train.out_dir, or "
                          "continue from its weights on the new data with train.resume_relabel=true")
    if changed:
        log.warning("%s: the data changed (%s); continuing from its weights on the new data "
                    "(train.resume_relabel=true)", path, change or "see rank 0")
    return records, changed


def load_state(path: Path, objective, augment: Augment, opt, sched, device: torch.device, new_data: bool = False
               ) -> dict[str, Any]:
    """Restore everything `save_state` wrote except the RNG states, which come back in the returned checkpoint as
    "rng_to_restore" (other setup code, e.g. TensorBoard's writer, may still draw random numbers). new_data: the
    checkpoint trained on other data (train.resume_relabel): the objective keeps only what does not depend on it."""
    ckpt = _load_for_resume(path)
    if ckpt.get("objective") != objective.name:
        raise ResumeError(f"{path}: checkpoint of objective {ckpt.get('objective')!r}, this run trains "
                          f"{objective.name!r}: set train.objective={ckpt.get('objective')}, or resume another "
                          "checkpoint")
    objective.encoder.load_state_dict(ckpt["encoder"])
    objective.load_state_dict(ckpt, new_data=new_data)
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
    if augment.mixup is not None and augment.mixup.size > 0 and augment.mixup.filled == 0 and ckpt["step"] > 0:
        log.warning("%s holds no mixup memory (final.pt leaves it out): the run continues with an empty one and is "
                    "not bit-identical; resume %s for an exact continuation", path, path.with_name("last.pt"))
    ckpt["rng_to_restore"] = local["rng"]  # restored by the caller as the very last setup step
    return ckpt


def find_resume(cfg: Config, resume: str | None) -> Path | None:
    """Which checkpoint to resume from: never / auto (<out_dir>/last.pt if it exists) / an explicit path."""
    mode = resume or cfg.train.resume
    last = Path(cfg.train.out_dir) / "last.pt"
    if mode in ("never", "", None):
        if last.exists():
            raise ResumeError(f"{last} exists: resume it with --resume (train.resume=auto) or choose another "
                              "train.out_dir")
        return None
    if mode == "auto":
        return last if last.exists() else None
    path = Path(mode)
    if not path.is_file():
        raise ResumeError(f"train.resume={mode!r}: no such checkpoint; give the path of a last.pt or final.pt")
    return path


def build_objective(cfg: Config, n_segments: int, device: torch.device) -> Objective:
    """SelaObjective or ByolObjective around a fresh encoder; identical weights on every rank (seeded)."""
    encoder = initial_encoder(cfg)
    if cfg.train.objective == "sela":
        return SelaObjective(cfg.sela, encoder, n_segments, cfg.train.seed, device)
    if cfg.train.objective == "byol":
        return ByolObjective(cfg.byol, encoder, device)
    raise ConfigError(f"train.objective must be 'sela' or 'byol', got {cfg.train.objective!r}")


@dataclass
class TrainingCheckpoint:
    """A training checkpoint read once: its file, resolved config and raw contents (tensors on the CPU)."""

    path: Path
    config: Config
    data: dict[str, Any]

    @property
    def objective(self) -> str:
        return str(self.data.get("objective"))

    @property
    def cache_dir(self) -> str:
        return str(self.data.get("cache_dir") or "")

    @property
    def n_segments(self) -> int | None:
        """Segments the run trained on (SeLa: the label store's width)."""
        if "label_store" in self.data:
            return int(self.data["label_store"]["labels"].shape[1])
        return int(self.data["n_segments"]) if "n_segments" in self.data else None

    @property
    def step(self) -> int:
        """The global step the checkpoint was written at."""
        return int(self.data["step"])

    @property
    def epoch(self) -> int:
        """Epochs finished when the checkpoint was written."""
        return int(self.data["epoch"])

    @property
    def finished(self) -> bool:
        """Whether the run had finished (final.pt, and the last.pt written with it)."""
        return bool(self.data.get("finished", False))

    @property
    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The encoder's state dict."""
        return self.data["encoder"]

    @property
    def label_store(self) -> LabelStore:
        """SeLa's label store as saved (labels and confidences (H, N), terms, duals, updates, history), on the CPU."""
        if "label_store" not in self.data:
            raise CheckpointError(f"{self.path}: a {self.objective!r} checkpoint holds no label store")
        state = self.data["label_store"]
        store = LabelStore(state["labels"], state["confidences"])
        store.load_state_dict(state)
        return store

    @property
    def rank_state(self) -> dict[str, Any]:
        """The writing rank's own state (rank 0's in the main file): RNG states, augmentation state, step."""
        return self.data["local"]

    @property
    def mixup_memory(self) -> dict[str, Any]:
        """Rank 0's mixup memory as saved: `memory` (M, F, T), None in final.pt, and `filled` (entries held)."""
        return self.rank_state["augment"]["mixup._extra_state"]

    def require(self, objective: str) -> TrainingCheckpoint:
        if self.objective != objective:
            raise CheckpointError(f"{self.path}: a {self.objective!r} checkpoint, not {objective!r}; give a "
                             f"{objective!r} checkpoint")
        return self

    def build_objective(self, device: torch.device | str = "cpu") -> Objective:
        """The checkpoint's objective with its weights and state (SeLa: heads and label store)."""
        objective = build_objective(self.config, self.n_segments or 1, torch.device(device))
        objective.encoder.load_state_dict(self.data["encoder"])
        objective.load_state_dict(self.data)
        return objective


def read_checkpoint(path: str | Path) -> TrainingCheckpoint:
    """Load a training checkpoint (weights_only) and resolve its stored config."""
    data = load_checkpoint(path, map_location="cpu")
    return TrainingCheckpoint(Path(path), config_from_dict(data["config"], source=str(path)), data)
