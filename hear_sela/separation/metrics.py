"""SI-SDR / SI-SIR / SI-SAR (Le Roux et al. 2019) with the best permutation, via fast_bss_eval.

fast_bss_eval.si_bss_eval_sources decomposes each estimate onto the span of all references (filter length 1), the
definition of SI-SIR and SI-SAR; its own permutation maximises SIR, so we evaluate both orders of the two
estimates and keep the one with the higher mean SI-SDR ("best permutation"). Improvements subtract the metric of
the unprocessed mixture used as the estimate of every source (its SI-SAR is infinite, so only SI-SDR and SI-SIR
improvements exist). Legend: K sources, S samples.
"""

from __future__ import annotations

import itertools

import fast_bss_eval
import numpy as np


def _si_bss_eval(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fast_bss_eval's (si_sdr, si_sir, si_sar), each (K,), of est against ref, both (K, S) float64, in this order.
    An estimate inside the references' span (the mixture, a reference itself) has no artifacts: its SI-SAR is an
    infinite dB value from log10(0), which is the answer, so numpy's divide-by-zero warning is not shown."""
    with np.errstate(divide="ignore"):
        return fast_bss_eval.si_bss_eval_sources(ref, est, compute_permutation=False, load_diag=1e-10)


def si_metrics(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ref, est (K, S) -> (si_sdr, si_sir, si_sar) each (K,) in dB, estimates in their best order."""
    ref = np.asarray(ref, np.float64)
    est = np.asarray(est, np.float64)
    best = None
    for perm in itertools.permutations(range(est.shape[0])):
        sdr, sir, sar = _si_bss_eval(ref, est[list(perm)])
        if best is None or sdr.mean() > best[0].mean():
            best = (sdr, sir, sar)
    return best


def separation_scores(ref: np.ndarray, est: np.ndarray, mix: np.ndarray) -> dict[str, float]:
    """ref, est (K, S), mix (S,) -> mean over sources of SI-SDR, SI-SIR, SI-SAR and the SI-SDR, SI-SIR
    improvements over the mixture."""
    sdr, sir, sar = si_metrics(ref, est)
    sdr0, sir0, _ = _si_bss_eval(np.asarray(ref, np.float64), np.tile(np.asarray(mix, np.float64), (ref.shape[0], 1)))
    return {"sdr": float(sdr.mean()), "sir": float(sir.mean()), "sar": float(sar.mean()),
            "sdri": float((sdr - sdr0).mean()), "siri": float((sir - sir0).mean())}


def partition_similarity(y: np.ndarray, yhat: np.ndarray, w: np.ndarray, k: int = 2) -> float:
    """1 - chi^2 distance between two weighted partitions of the same bins (the paper's "quality"; our
    reconstruction after Bach & Jordan 2006, notes/seed003_selavi.md 1.7): with n_rs = sum_i w_i [y_i=r][yhat_i=s],
    (sum_rs n_rs^2 / (n_r n_s) - 1) / (k - 1). 1 for identical partitions (up to relabelling), 0 for independent.
    y, yhat ints and w >= 0, all of one shape."""
    n = np.zeros((k, k))
    np.add.at(n, (y.ravel(), yhat.ravel()), w.ravel())
    nr, ns = n.sum(1), n.sum(0)
    ok = (nr[:, None] > 0) & (ns[None, :] > 0)
    ratio = np.where(ok, n**2 / np.where(ok, nr[:, None] * ns[None, :], 1.0), 0.0)
    return float((ratio.sum() - 1.0) / (k - 1))
