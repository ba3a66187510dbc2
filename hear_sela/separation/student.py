"""The student: single-channel deep clustering (paper Sec. 2.3, 3.1).

A BLSTM stack over log-magnitude frames, a dense layer with tanh giving a D-dimensional embedding per T-F bin
(unit-normalised, as standard deep clustering), trained with the weighted DC loss (Eqs. 8-9) in its low-rank
form: with V' = W^1/2 V and Y' = W^1/2 Y,
  ||W^1/2 (V V^T - Y Y^T) W^1/2||_F^2 = ||V'^T V'||^2 - 2 ||V'^T Y'||^2 + ||Y'^T Y'||^2,
in O(TF D^2) with no TF x TF matrix. The loss is summed over bins and averaged over the batch, not normalised by the
weights' total: a low-confidence mixture must count less (the paper's "quantity").
Inference: K-means (K = 2) on the embeddings of the loud bins, applied to every bin -> binary masks.
Legend: B batch, T frames, F bins, D embedding dim, K sources.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from hear_sela.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hear_sela.separation.config import StudentConfig, TeacherConfig
from hear_sela.separation.stft import istft, log_db, stft

log = logging.getLogger("hear_sela.separation.student")
STUDENT_KIND = "separation_student"


class DeepClustering(nn.Module):
    def __init__(self, n_bins: int, hidden: int, layers: int, embedding_dim: int):
        super().__init__()
        self.n_bins, self.embedding_dim = n_bins, embedding_dim
        self.blstm = nn.LSTM(n_bins, hidden, layers, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * hidden, n_bins * embedding_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) normalised log magnitude -> (B, T, F, D) unit-norm embeddings."""
        h, _ = self.blstm(feats)
        v = torch.tanh(self.dense(h)).reshape(*feats.shape[:2], self.n_bins, self.embedding_dim)
        return nn.functional.normalize(v, dim=-1)


def weighted_dc_loss(v: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """v (B, N, D) embeddings, y (B, N, K) one-hot labels, w (B, N) weights -> mean over B of
    sum_ij w_i w_j (<v_i, v_j> - <y_i, y_j>)^2, computed in low-rank form."""
    s = w.clamp_min(0).sqrt().unsqueeze(-1)
    vw, yw = v * s, y * s
    vv = torch.einsum("bnd,bne->bde", vw, vw)
    vy = torch.einsum("bnd,bnk->bdk", vw, yw)
    yy = torch.einsum("bnk,bnl->bkl", yw, yw)
    return (vv.pow(2).sum((1, 2)) - 2 * vy.pow(2).sum((1, 2)) + yy.pow(2).sum((1, 2))).mean()


@dataclass
class TrainSet:
    """Everything the student trains on, one row per mixture (all mixtures have the same length)."""

    feats: np.ndarray  # (M, T, F) log magnitude of channel 0, un-normalised
    labels: np.ndarray  # (M, T, F) int hard labels (ground truth or teacher)
    weights: np.ndarray  # (M, T, F) w(alpha)


def log_magnitude(x: np.ndarray, tcfg: TeacherConfig) -> np.ndarray:
    """(S,) -> (T, F) log10 magnitude of the STFT (the student's input before normalisation)."""
    return (log_db(stft(x, tcfg.n_fft, tcfg.hop)) / 20.0).T.astype(np.float32)


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def _loss_on(model: DeepClustering, data: TrainSet, idx: np.ndarray, norm: tuple[float, float],
             dev: torch.device) -> torch.Tensor:
    x = torch.from_numpy((data.feats[idx] - norm[0]) / norm[1]).to(dev)
    v = model(x).flatten(1, 2)  # (B, T*F, D)
    y = nn.functional.one_hot(torch.from_numpy(data.labels[idx]).flatten(1), 2).float().to(dev)
    w = torch.from_numpy(data.weights[idx]).flatten(1).to(dev)
    return weighted_dc_loss(v, y, w)


def train_student(train: TrainSet, val: TrainSet, cfg: StudentConfig, epochs: int, path: str | Path,
                  meta: dict[str, Any]) -> dict[str, Any]:
    """Train from the shared initialisation (cfg.seed); save the final model atomically at `path`. Returns the
    training log (losses per epoch, seconds, CPU seconds)."""
    torch.set_num_threads(cfg.threads)
    dev = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    n_bins = train.feats.shape[2]
    model = DeepClustering(n_bins, cfg.hidden, cfg.layers, cfg.embedding_dim).to(dev)
    norm = (float(train.feats.mean()), float(train.feats.std() + 1e-6))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.plateau_patience)
    rng = np.random.default_rng(cfg.seed)
    history = []
    t0, c0 = time.time(), time.process_time()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train.feats))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss = _loss_on(model, train, idx, norm, dev)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            vloss = sum(float(_loss_on(model, val, np.arange(s, min(s + cfg.batch_size, len(val.feats))), norm, dev))
                        * (min(s + cfg.batch_size, len(val.feats)) - s) for s in range(0, len(val.feats),
                                                                                   cfg.batch_size)) / len(val.feats)
        sched.step(vloss)
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), "val_loss": vloss,
                        "lr": opt.param_groups[0]["lr"]})
        log.info("%s epoch %d/%d train %.4g val %.4g", meta.get("name", "student"), epoch + 1, epochs,
                 total / len(order), vloss)
    info = {"history": history, "seconds": time.time() - t0, "cpu_seconds": time.process_time() - c0,
            "parameters": sum(p.numel() for p in model.parameters())}
    save_checkpoint(path, {"kind": STUDENT_KIND, "student": _plain(cfg), "n_bins": n_bins, "norm": list(norm),
                           "model": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta,
                           "train": {"seconds": info["seconds"], "epochs": epochs}})
    return info


def _plain(cfg: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


@dataclass
class Student:
    model: DeepClustering
    norm: tuple[float, float]
    teacher: TeacherConfig  # STFT and gate settings
    kmeans_init: int


def load_student(path: str | Path) -> Student:
    """Load a student checkpoint (weights_only); CheckpointError naming the file if it is not one."""
    ck = load_checkpoint(path)
    if ck.get("kind") != STUDENT_KIND:
        raise CheckpointError(f"{path}: not a separation student checkpoint (kind {ck.get('kind')!r})")
    s = ck["student"]
    model = DeepClustering(ck["n_bins"], s["hidden"], s["layers"], s["embedding_dim"])
    model.load_state_dict(ck["model"])
    model.eval()
    tc = TeacherConfig(**{k: v for k, v in ck["meta"]["teacher"].items()})
    return Student(model, tuple(ck["norm"]), tc, s["kmeans_init"])


@torch.no_grad()
def separate_mono(student: Student, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """(S,) mono mixture -> (2, S) separated sources (binary K-means masks on its STFT)."""
    tc = student.teacher
    scale = 0.9 / max(float(np.abs(x).max()), 1e-9)  # the gate's absolute scale, as the mixtures were made
    spec = stft(x, tc.n_fft, tc.hop)  # (F, T)
    feats = log_magnitude(x * scale, tc)  # (T, F)
    v = student.model(torch.from_numpy((feats - student.norm[0]) / student.norm[1])[None])[0]  # (T, F, D)
    v = v.numpy().reshape(-1, v.shape[-1])
    loud = (feats.reshape(-1) * 20.0) > tc.gate_db
    if loud.sum() < 10:
        loud[:] = True
    km = KMeans(2, n_init=student.kmeans_init, random_state=seed).fit(v[loud])
    lab = km.predict(v).reshape(feats.shape).T  # (F, T)
    masks = np.stack([lab == k for k in range(2)]).astype(np.float32)  # (2, F, T)
    return istft(masks * spec[None], tc.n_fft, tc.hop, len(x))
