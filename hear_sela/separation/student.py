"""The student: single-channel deep clustering (paper Sec. 2.3, 3.1).

A BLSTM stack over log-magnitude frames, a dense layer with tanh giving a D-dimensional embedding per T-F bin
(unit-normalised, as standard deep clustering), trained with the weighted DC loss (Eqs. 8-9) in its low-rank
form: with V' = W^1/2 V and Y' = W^1/2 Y,
  ||W^1/2 (V V^T - Y Y^T) W^1/2||_F^2 = ||V'^T V'||^2 - 2 ||V'^T Y'||^2 + ||Y'^T Y'||^2,
in O(TF D^2) with no TF x TF matrix, normalised by the squared total weight as the authors' nussl does
(StudentConfig.loss_norm). Training: trainer.py. Inference: K-means (K = 2) on the embeddings of the loud bins,
applied to every bin -> binary masks, or soft masks from the same clusters.
Legend: B batch, T frames, F bins, D embedding dim, K sources.
"""

from __future__ import annotations

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


LOSS_NORMS = ("example", "batch", "none")


def weighted_dc_loss(v: torch.Tensor, y: torch.Tensor, w: torch.Tensor, norm: str = "example") -> torch.Tensor:
    """v (B, N, D) embeddings, y (B, N, K) one-hot labels, w (B, N) weights -> the weighted DC loss
    L_b = sum_ij w_i w_j (<v_i, v_j> - <y_i, y_j>)^2 in low-rank form, reduced by `norm`:
    example: mean_b L_b / (sum_i w_bi)^2, as nussl's DeepClusteringLoss (which takes sqrt(w) as its weights);
    batch: sum_b L_b / sum_b (sum_i w_bi)^2; none: mean_b L_b.
    Normalised, the loss and its gradient do not depend on the weights' scale, only on how they are spread: the
    sweep over alpha then compares weightings, not effective learning rates (C^2 shrinks w by orders of magnitude).
    The normaliser is a constant of the data (no gradient through w, which has none anyway)."""
    s = w.clamp_min(0).sqrt().unsqueeze(-1)
    vw, yw = v * s, y * s
    vv = torch.einsum("bnd,bne->bde", vw, vw)
    vy = torch.einsum("bnd,bnk->bdk", vw, yw)
    yy = torch.einsum("bnk,bnl->bkl", yw, yw)
    per = vv.pow(2).sum((1, 2)) - 2 * vy.pow(2).sum((1, 2)) + yy.pow(2).sum((1, 2))  # (B,)
    total = w.clamp_min(0).sum(1).pow(2)  # (B,)
    if norm == "example":
        return (per / (total + 1e-8)).mean()  # the same 1e-8 as nussl
    if norm == "batch":
        return per.sum() / (total.sum() + 1e-8)
    if norm == "none":
        return per.mean()
    raise ValueError(f"student.loss_norm: unknown {norm!r} ({' | '.join(LOSS_NORMS)})")


def log_magnitude(x: np.ndarray, tcfg: TeacherConfig) -> np.ndarray:
    """(S,) -> (T, F) log10 magnitude of the STFT (the student's input before normalisation)."""
    return spec_log_magnitude(stft(x, tcfg.n_fft, tcfg.hop))


def spec_log_magnitude(spec: np.ndarray) -> np.ndarray:
    """(F, T) complex STFT -> (T, F) `log_magnitude`, for callers that need the STFT itself too."""
    return (log_db(spec) / 20.0).T.astype(np.float32)


def device_for(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def save_student(path: str | Path, model: DeepClustering, cfg: StudentConfig, norm: tuple[float, float],
                 meta: dict[str, Any]) -> None:
    """An atomic, weights_only-loadable student checkpoint."""
    save_checkpoint(path, {"kind": STUDENT_KIND, "student": _plain(cfg), "n_bins": model.n_bins, "norm": list(norm),
                           "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta})


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
def student_masks(student: Student, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(S,) mono mixture -> (binary, soft) masks, each (2, F, T). Binary: K-means (K = 2) on the embeddings of the
    loud bins, applied to every bin. Soft (ours, so the student can be scored as the teacher's soft masks are): the
    posterior of a two-component isotropic Gaussian mixture at the K-means centres with their shared within-cluster
    variance, p_k ∝ exp(-|v - mu_k|^2 / (2 s^2)), equal priors."""
    tc = student.teacher
    scale = 0.9 / max(float(np.abs(x).max()), 1e-9)  # the gate's absolute scale, as the mixtures were made
    feats = log_magnitude(x * scale, tc)  # (T, F)
    dev = next(student.model.parameters()).device
    v = student.model(torch.from_numpy((feats - student.norm[0]) / student.norm[1])[None].to(dev))[0]  # (T, F, D)
    v = v.cpu().numpy().reshape(-1, v.shape[-1])  # (T*F, D)
    loud = (feats.reshape(-1) * 20.0) > tc.gate_db
    if loud.sum() < 10:
        loud[:] = True
    km = KMeans(2, n_init=student.kmeans_init, random_state=seed).fit(v[loud])
    d2 = ((v[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)  # (T*F, 2)
    lab = d2.argmin(1)
    var = max(float(d2[loud].min(1).mean()) / v.shape[1], 1e-6)  # per-dimension within-cluster variance
    logit = -d2 / (2 * var)
    soft = np.exp(logit - logit.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    shape = feats.shape  # (T, F)
    binary = np.stack([(lab == k).reshape(shape).T for k in range(2)]).astype(np.float32)  # (2, F, T)
    return binary, np.stack([soft[:, k].reshape(shape).T for k in range(2)]).astype(np.float32)


def separate_mono(student: Student, x: np.ndarray, seed: int = 0, soft: bool = False) -> np.ndarray:
    """(S,) mono mixture -> (2, S) separated sources (binary K-means masks on its STFT, or the soft ones)."""
    tc = student.teacher
    masks = student_masks(student, x, seed)[1 if soft else 0]  # (2, F, T)
    return istft(masks * stft(x, tc.n_fft, tc.hop)[None], tc.n_fft, tc.hop, len(x))
