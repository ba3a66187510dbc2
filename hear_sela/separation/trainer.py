"""Training a student for a fixed number of updates on random crops (issue 27: the paper's regime is tens of
thousands of updates; 250 leaves a student at the early plateau where it splits by frequency band).

Batches come from one of two makers, both (rng) -> Batch:
- dynamic_batches: the ground-truth student; every example is a fresh mixture of two different training voices
  (random utterances, crops, levels and geometry), labelled by the ideal binary mask, weighted w(0);
- pool_batches: a random crop of a mixture of the teacher-labelled pool (pool.py), with its teacher (or ideal)
  labels and w(alpha).
The learning rate halves when the training loss, averaged over a window of updates, stops falling
(StudentConfig.plateau_*). Every `eval_every` updates the learning curve gets the SI-SDR of binary-mask separation
on a fixed set of validation mixtures. Legend: B batch, T frames, F bins.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hear_sela.checkpoint import load_checkpoint, save_checkpoint
from hear_sela.separation.confidence import weights
from hear_sela.separation.config import MixtureConfig, StudentConfig, TeacherConfig
from hear_sela.separation.metrics import separation_scores
from hear_sela.separation.mixtures import Mixture, SourcePool
from hear_sela.separation.stft import stft
from hear_sela.separation.student import (
    DeepClustering,
    Student,
    device_for,
    save_student,
    separate_mono,
    spec_log_magnitude,
    weighted_dc_loss,
)

log = logging.getLogger("hear_sela.separation.trainer")


@dataclass
class Batch:
    feats: np.ndarray  # (B, T, F) float32 log10 magnitude of channel 0, un-normalised
    labels: np.ndarray  # (B, T, F) int hard labels
    weights: np.ndarray  # (B, T, F) float32 w(alpha)


BatchMaker = Callable[[np.random.Generator], Batch]


def crop_frames(seconds: float, mcfg: MixtureConfig, tcfg: TeacherConfig) -> int:
    """STFT frames of a `seconds` signal (torch.stft, center=True)."""
    return int(round(seconds * mcfg.sample_rate)) // tcfg.hop + 1


def ideal_labels(m: Mixture, tcfg: TeacherConfig) -> np.ndarray:
    """(T, F) ideal-binary-mask labels argmax_k |S_k| of the mic-0 source images."""
    return np.abs(stft(m.sources[:, 0], tcfg.n_fft, tcfg.hop)).argmax(0).T


def dynamic_batches(pool: SourcePool, mcfg: MixtureConfig, tcfg: TeacherConfig, batch_size: int,
                    seconds: float) -> BatchMaker:
    """Fresh different-voice mixtures of `seconds` per example, ideal labels, w(0)."""
    crop = replace(mcfg, seconds=seconds)

    def make(rng: np.random.Generator) -> Batch:
        feats, labels, ws = [], [], []
        for _ in range(batch_size):
            m = pool.mixture(crop, rng, "dyn")
            x0 = stft(m.mix[0], tcfg.n_fft, tcfg.hop)  # (F, T)
            feats.append(spec_log_magnitude(x0))
            labels.append(ideal_labels(m, tcfg))
            ws.append(weights(np.ones(1), np.abs(x0).T, 0.0))
        return Batch(np.stack(feats), np.stack(labels), np.stack(ws).astype(np.float32))

    return make


def pool_batches(feats: np.ndarray, labels: np.ndarray, w: np.ndarray, batch_size: int, frames: int) -> BatchMaker:
    """Random crops of `frames` frames from random pool mixtures: feats, labels, w (M, T, F)."""
    m, t = feats.shape[:2]
    frames = min(frames, t)

    def make(rng: np.random.Generator) -> Batch:
        idx = rng.integers(0, m, batch_size)
        start = rng.integers(0, t - frames + 1, batch_size)
        sl = [slice(s, s + frames) for s in start]
        return Batch(np.stack([feats[i, s] for i, s in zip(idx, sl)]).astype(np.float32),
                     np.stack([labels[i, s] for i, s in zip(idx, sl)]),
                     np.stack([w[i, s] for i, s in zip(idx, sl)]).astype(np.float32))

    return make


def feature_norm(make: BatchMaker, batches: int = 8) -> tuple[float, float]:
    """Mean and std of the input log magnitude over a few batches of a fixed draw (the same for every seed)."""
    rng = np.random.default_rng(12345)
    x = np.concatenate([make(rng).feats.ravel() for _ in range(batches)])
    return float(x.mean()), float(x.std() + 1e-6)


def curve_point(model: DeepClustering, norm: tuple[float, float], tcfg: TeacherConfig, kmeans_init: int,
                mixtures: list[Mixture]) -> float:
    """Mean SI-SDR (dB) of binary-mask separation of the mic-0 channel of `mixtures`."""
    model.eval()
    student = Student(model, norm, tcfg, kmeans_init)
    sdr = [separation_scores(m.sources[:, 0], separate_mono(student, m.mix[0]), m.mix[0])["sdr"] for m in mixtures]
    model.train()
    return float(np.mean(sdr))


def progress_path(path: str | Path) -> Path:
    """Where a student in training keeps its resumable state, beside its final checkpoint `path`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.progress{path.suffix}")


def _stamp(cfg: StudentConfig, tcfg: TeacherConfig, meta: dict[str, Any], norm: tuple[float, float]) -> str:
    """Everything a student's training depends on but its batches, as one string (a progress file must match)."""
    return json.dumps({"student": asdict(cfg), "teacher": asdict(tcfg), "meta": meta, "norm": list(norm)},
                      sort_keys=True, default=str)


def train_student(make: BatchMaker, cfg: StudentConfig, tcfg: TeacherConfig, path: str | Path,
                  meta: dict[str, Any], curve_mixtures: list[Mixture], norm: tuple[float, float] | None = None
                  ) -> dict[str, Any]:
    """cfg.updates Adam updates from the initialisation of cfg.seed; the final model is saved atomically at `path`.
    Returns the log: the learning curve (update, window loss, lr, validation SI-SDR), seconds, CPU seconds.

    At every learning-curve point the whole state (model, Adam, LR schedule, the batch RNG, losses, curve, time
    spent) goes atomically to `progress_path(path)`; a later call with the same settings resumes from it, exactly
    (the batches are a function of the RNG alone), so a student longer than a session is not lost. A progress
    file from other settings is ignored (and replaced)."""
    torch.set_num_threads(cfg.threads)
    dev = device_for(cfg.device)
    torch.manual_seed(cfg.seed)
    norm = norm or feature_norm(make)
    rng = np.random.default_rng([cfg.seed, 1])
    model = DeepClustering(tcfg.n_fft // 2 + 1, cfg.hidden, cfg.layers, cfg.embedding_dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.plateau_patience)
    name = meta.get("name", "student")
    curve: list[dict[str, float]] = []
    losses: list[float] = []
    spent = (0.0, 0.0)  # wall and CPU seconds of earlier processes
    progress, stamp, first = progress_path(path), _stamp(cfg, tcfg, meta, norm), 1
    if progress.is_file():
        state = load_checkpoint(progress)
        if state.get("stamp") == stamp:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            rng.bit_generator.state = json.loads(state["rng"])
            losses, curve, spent = list(state["losses"]), list(state["curve"]), tuple(state["spent"])
            first = int(state["update"]) + 1
            log.info("%s resumes at update %d of %d (%s)", name, first, cfg.updates, progress)
        else:
            log.warning("%s: %s is from other settings; training from the start", name, progress)
    t0, c0 = time.time() - spent[0], time.process_time() - spent[1]
    model.train()
    for step in range(first, cfg.updates + 1):
        b = make(rng)
        x = torch.from_numpy((b.feats - norm[0]) / norm[1]).to(dev)  # (B, T, F)
        v = model(x).flatten(1, 2)  # (B, T*F, D)
        y = nn.functional.one_hot(torch.from_numpy(b.labels).long().flatten(1), 2).float().to(dev)  # (B, T*F, 2)
        w = torch.from_numpy(b.weights).flatten(1).to(dev)  # (B, T*F)
        loss = weighted_dc_loss(v, y, w, cfg.loss_norm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % cfg.plateau_window == 0:
            sched.step(float(np.mean(losses[-cfg.plateau_window:])))
        if step % cfg.eval_every == 0 or step == cfg.updates:
            point = {"update": step, "train_loss": float(np.mean(losses[-cfg.eval_every:])),
                     "lr": opt.param_groups[0]["lr"], "cpu_s": time.process_time() - c0,
                     "val_sdr": curve_point(model, norm, tcfg, cfg.kmeans_init, curve_mixtures) if curve_mixtures
                     else float("nan")}
            curve.append(point)
            log.info("%s update %d/%d loss %.4g lr %.2g val SI-SDR %.2f dB", name, step, cfg.updates,
                     point["train_loss"], point["lr"], point["val_sdr"])
            if step < cfg.updates:
                save_checkpoint(progress, {
                    "stamp": stamp, "update": step, "model": {k: v.detach().cpu() for k, v in
                                                              model.state_dict().items()},
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "rng": json.dumps(rng.bit_generator.state), "losses": losses, "curve": curve,
                    "spent": [time.time() - t0, time.process_time() - c0]})
    info = {"curve": curve, "seconds": time.time() - t0, "cpu_seconds": time.process_time() - c0,
            "parameters": sum(p.numel() for p in model.parameters())}
    save_student(path, model, cfg, norm, meta)
    progress.unlink(missing_ok=True)
    return info
