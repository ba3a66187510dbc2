"""The table's statistics: means with 95 % intervals over seeds or over mixtures, paired differences, and the
random ensemble's expectation.

Interval rule (issue 27: "a claim is reproduced only when the interval excludes zero"): a row trained with several
seeds gets a Student-t interval over its per-seed means (the seed-to-seed spread is what a rerun would see); a
one-seed row gets a t interval over its test mixtures (which says nothing about another initialisation, and is
labelled so). A paired difference is taken mixture by mixture on the same test mixtures and seed by seed (seeds
paired by index); with at least two seeds on both sides it also gets an interval over the seeds' paired means, and
it "excludes zero" only when every interval it has does. Legend: S seeds, M mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Interval:
    mean: float
    lo: float
    hi: float
    n: int
    over: str  # "seeds" | "mixtures"

    def excludes_zero(self) -> bool:
        return bool(self.lo > 0 or self.hi < 0)

    def text(self, digits: int = 1) -> str:
        if not np.isfinite(self.lo):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def t_interval(x: np.ndarray, over: str, level: float = 0.95) -> Interval:
    """(n,) -> mean and its two-sided Student-t interval (no interval for n < 2)."""
    x = np.asarray(x, np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return Interval(m, float("nan"), float("nan"), len(x), over)
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return Interval(m, m - half, m + half, len(x), over)


def row_interval(per_seed: np.ndarray) -> Interval:
    """(S, M) scores of one row -> over seeds when S >= 2, else over the mixtures of the one seed."""
    per_seed = np.atleast_2d(per_seed)
    if len(per_seed) >= 2:
        return t_interval(per_seed.mean(1), "seeds")
    return t_interval(per_seed[0], "mixtures")


@dataclass
class PairedDifference:
    mixtures: Interval  # over mixtures of the seed-averaged per-mixture difference
    seeds: Interval | None  # over the per-seed mean differences, seeds paired by index (S >= 2 on both sides)

    def excludes_zero(self) -> bool:
        parts = [self.mixtures] + ([self.seeds] if self.seeds is not None else [])
        return all(p.excludes_zero() for p in parts) and len({p.mean > 0 for p in parts}) == 1


def paired_difference(a: np.ndarray, b: np.ndarray) -> PairedDifference:
    """a (Sa, M), b (Sb, M) scores on the same mixtures -> a - b over the first min(Sa, Sb) seeds of each, paired
    by index (seed s of each was trained from the same initialisation and data order): a one-seed row is compared
    with the other row's first seed only, not with its seed average."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    s = min(len(a), len(b))
    per_mix = t_interval(a[:s].mean(0) - b[:s].mean(0), "mixtures")
    seeds = t_interval(a[:s].mean(1) - b[:s].mean(1), "seeds") if s >= 2 else None
    return PairedDifference(per_mix, seeds)


def random_ensemble_expectation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., M) scores of the two parts -> (..., M) the expected score of a switch that picks either part with
    probability 1/2 per mixture: the average of all 2^M coin draws, not one of them."""
    return 0.5 * (np.asarray(a, np.float64) + np.asarray(b, np.float64))


def switch(a: np.ndarray, b: np.ndarray, to_b: np.ndarray) -> np.ndarray:
    """(..., M) scores, (M,) bool -> b where to_b else a."""
    return np.where(to_b, b, a)


def pearson(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    r, p = stats.pearsonr(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return {"r": float(r), "p": float(p)}
