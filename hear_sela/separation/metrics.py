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


def si_metrics(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ref, est (K, S) -> (si_sdr, si_sir, si_sar) each (K,) in dB, estimates in their best order."""
    ref = np.asarray(ref, np.float64)
    est = np.asarray(est, np.float64)
    best = None
    for perm in itertools.permutations(range(est.shape[0])):
        sdr, sir, sar = fast_bss_eval.si_bss_eval_sources(ref, est[list(perm)], compute_permutation=False,
                                                          load_diag=1e-10)
        if best is None or sdr.mean() > best[0].mean():
            best = (sdr, sir, sar)
    return best


def separation_scores(ref: np.ndarray, est: np.ndarray, mix: np.ndarray) -> dict[str, float]:
    """ref, est (K, S), mix (S,) -> mean over sources of SI-SDR, SI-SIR, SI-SAR and the SI-SDR, SI-SIR
    improvements over the mixture."""
    sdr, sir, sar = si_metrics(ref, est)
    sdr0, sir0, _ = fast_bss_eval.si_bss_eval_sources(np.asarray(ref, np.float64),
                                                      np.tile(np.asarray(mix, np.float64), (ref.shape[0], 1)),
                                                      compute_permutation=False, load_diag=1e-10)
    return {"sdr": float(sdr.mean()), "sir": float(sir.mean()), "sar": float(sar.mean()),
            "sdri": float((sdr - sdr0).mean()), "siri": float((sir - sir0).mean())}
