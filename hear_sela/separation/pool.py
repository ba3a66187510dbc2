"""The teacher's pass over a split: each mixture is regenerated from the seed (cheap) and clustered by the spatial
teacher once; the teacher's outputs are cached one file per mixture (atomic writes, so an interrupted pass resumes
where it stopped and never reads a half-written file), in a folder keyed by every setting that changes them.

An AnalysedSplit holds what the students, Quality/Quantity and the confidence study need, per mixture:
the student's input, |X0|, ideal and teacher labels, the per-bin confidence terms; for evaluation splits also the
mixtures themselves and the teacher's soft masks. Legend: M mixtures, T frames, F bins.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hear_sela.fileio import atomic_write
from hear_sela.separation.confidence import weights
from hear_sela.separation.config import SeparationConfig, TeacherConfig
from hear_sela.separation.mixtures import Mixture, SourcePool, iter_split
from hear_sela.separation.stft import stft
from hear_sela.separation.student import spec_log_magnitude
from hear_sela.separation.teacher import cluster
from hear_sela.separation.trainer import ideal_labels

log = logging.getLogger("hear_sela.separation.pool")


@dataclass
class AnalysedSplit:
    feats: np.ndarray  # (M, T, F) float16 log10 |X0| (student input before normalisation)
    magnitude: np.ndarray  # (M, T, F) float32 |X0|
    gt: np.ndarray  # (M, T, F) uint8 ideal-binary-mask labels
    est: np.ndarray  # (M, T, F) uint8 teacher hard labels
    c_post: np.ndarray  # (M, T, F) float16
    c_cl: np.ndarray  # (M,)
    c_jsd: np.ndarray  # (M,)
    gate: np.ndarray  # (M,) fraction of bins the GMMs were fitted on
    mixtures: list[Mixture] | None = None  # evaluation splits only
    gamma: np.ndarray | None = None  # (M, 2, F, T) float16 teacher soft masks, evaluation splits only

    def confidence(self, i: int) -> np.ndarray:
        """(T, F) C = C_cl C_JSD C_post of mixture i."""
        return self.c_cl[i] * self.c_jsd[i] * self.c_post[i].astype(np.float32)

    def weights(self, alpha: float, ideal: bool = False) -> np.ndarray:
        """(M, T, F) float32 w(alpha) = C^alpha |X| / sum |X| per mixture; ideal: w(0) (no confidence)."""
        return np.stack([weights(np.ones(1) if ideal else self.confidence(i), self.magnitude[i],
                                 0.0 if ideal else alpha) for i in range(len(self.gt))]).astype(np.float32)

    def mixture_confidence(self, alpha: float = 1.0) -> np.ndarray:
        """(M,) the magnitude-weighted mean of C^alpha (= sum of w(alpha))."""
        return np.array([weights(self.confidence(i), self.magnitude[i], alpha).sum() for i in range(len(self.gt))])

    def label_accuracy(self) -> np.ndarray:
        """(M,) the teacher's |X|-weighted share of bins labelled as the ideal mask labels them, up to swapping
        the two labels (the quiet bins, which nothing hears, count for little)."""
        agree = np.array([(m * (g == e)).sum() / max(float(m.sum()), 1e-12)
                          for m, g, e in zip(self.magnitude, self.gt, self.est)])
        return np.maximum(agree, 1.0 - agree)

    def post_mean(self) -> np.ndarray:
        """(M,) |X|-weighted mean of C_post per mixture."""
        return np.array([(m * c.astype(np.float32)).sum() / max(float(m.sum()), 1e-12)
                         for m, c in zip(self.magnitude, self.c_post)])


def cache_folder(cfg: SeparationConfig, teacher: TeacherConfig, split: str) -> Path:
    """<mixtures.root>/teacher-<hash of every setting the outputs depend on>/<split>."""
    stamp = json.dumps({"sources": asdict(cfg.sources), "mixtures": asdict(cfg.mixtures), "teacher": asdict(teacher)},
                       sort_keys=True)
    return Path(cfg.mixtures.root) / f"teacher-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}" / split


def _teacher(m: Mixture, tc: TeacherConfig, cfg: SeparationConfig, path: Path) -> dict[str, np.ndarray]:
    """The teacher's outputs for one mixture, from the cache or computed and cached."""
    if path.is_file():
        with np.load(path) as z:
            return dict(z)
    out = cluster(m.mix, tc, cfg.mixtures.sample_rate, cfg.mixtures.speed_of_sound)
    row = {"est": out.labels.T.astype(np.uint8), "c_post": out.c_post.T.astype(np.float16),
           "gamma0": out.gamma[0].astype(np.float16), "c_cl": np.float64(out.c_cl), "c_jsd": np.float64(out.c_jsd),
           "gate": np.float64(out.gate.mean())}

    def write(p: str) -> None:
        with open(p, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary's name
            np.savez(f, **row)

    atomic_write(path, write)
    return row


def analyse_split(cfg: SeparationConfig, pool: SourcePool, split: str, keep_audio: bool,
                  teacher: TeacherConfig | None = None) -> AnalysedSplit:
    """Run (or read back) the teacher on every mixture of `split` (test_same: same-voice pairs)."""
    tc = teacher or cfg.teacher
    folder = cache_folder(cfg, tc, split)
    count = cfg.mixtures.counts[split]
    cols: dict[str, list] = {k: [] for k in ("feats", "magnitude", "gt", "est", "c_post", "c_cl", "c_jsd", "gate",
                                             "gamma", "mixtures")}
    for k, m in enumerate(iter_split(pool, count, cfg.mixtures, split, cfg.mixtures.seed, split == "test_same")):
        row = _teacher(m, tc, cfg, folder / f"{m.id}.npz")
        x0 = stft(m.mix[0], tc.n_fft, tc.hop)  # (F, T)
        cols["feats"].append(spec_log_magnitude(x0).astype(np.float16))
        cols["magnitude"].append(np.abs(x0).T.astype(np.float32))
        cols["gt"].append(ideal_labels(m, tc).astype(np.uint8))
        for key in ("est", "c_post", "c_cl", "c_jsd", "gate"):
            cols[key].append(row[key])
        if keep_audio:
            g0 = row["gamma0"]
            cols["gamma"].append(np.stack([g0, (1.0 - g0.astype(np.float32)).astype(np.float16)]))
            cols["mixtures"].append(m)
        if (k + 1) % 200 == 0:
            log.info("teacher %s (%s): %d/%d mixtures", split, tc.features, k + 1, count)
    return AnalysedSplit(*(np.stack(cols[k]) for k in ("feats", "magnitude", "gt", "est", "c_post")),
                         *(np.array(cols[k], np.float64) for k in ("c_cl", "c_jsd", "gate")),
                         mixtures=cols["mixtures"] if keep_audio else None,
                         gamma=np.stack(cols["gamma"]) if keep_audio else None)
