"""Confidence of a spatial clustering (paper Sec. 2.2, Eqs. 4-7) and the student's per-bin weights.

- C_cl (Eq. 4): sum_j (1/N - |1/N - f_j|), f_j the fraction of bins hard-assigned to cluster j; 1 for equal
  clusters, 0 when every bin falls in one cluster.
- C_JSD (Eq. 5): Jensen-Shannon divergence between the 1-component and the N-component GMM of the same features, by
  Monte Carlo, in bits so that it lies in [0, 1] as the paper says.
- C_post (Eq. 6): (N max_j gamma_j - 1) / (N - 1) per bin, = 2 |max_j gamma_j - 1/2| for N = 2.
- C = C_cl * C_JSD * C_post per bin (Eq. 7 before the exponent), and the weights
  w(alpha) = C^alpha * |X| / sum |X| (Eq. 7 with the magnitude weighting of Sec. 2.3); alpha is applied exactly once.
Legend: B bins, N components.
"""

from __future__ import annotations

import numpy as np


def cluster_size_confidence(labels: np.ndarray, n_components: int) -> float:
    """labels (B,) ints in [0, N) -> C_cl in [0, 1]."""
    if labels.size == 0:
        return 0.0
    frac = np.bincount(labels.ravel(), minlength=n_components)[:n_components] / labels.size
    return float(np.sum(1.0 / n_components - np.abs(1.0 / n_components - frac)))


def gmm_logpdf(x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Log density of a 1-D Gaussian mixture: x (B,), weights/means/variances (N,) -> (B,)."""
    z = (x[:, None] - means[None, :]) ** 2 / variances[None, :]
    comp = np.log(weights)[None, :] - 0.5 * (z + np.log(2 * np.pi * variances)[None, :])
    top = comp.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(comp - top).sum(axis=1, keepdims=True)))[:, 0]


def gmm_sample(n: int, weights: np.ndarray, means: np.ndarray, variances: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """(n,) draws from a 1-D Gaussian mixture."""
    comp = rng.choice(len(weights), size=n, p=weights / weights.sum())
    return means[comp] + np.sqrt(variances[comp]) * rng.standard_normal(n)


def jsd_confidence(p: tuple[np.ndarray, np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray, np.ndarray],
                   n_samples: int, rng: np.random.Generator) -> float:
    """JSD(P || Q) in bits by Monte Carlo; p, q = (weights, means, variances) of two 1-D GMMs. In [0, 1]."""
    x = gmm_sample(n_samples, *p, rng)  # x ~ P
    y = gmm_sample(n_samples, *q, rng)  # y ~ Q
    lp_x, lq_x = gmm_logpdf(x, *p), gmm_logpdf(x, *q)
    lp_y, lq_y = gmm_logpdf(y, *p), gmm_logpdf(y, *q)
    lm_x = np.logaddexp(lp_x, lq_x) - np.log(2)
    lm_y = np.logaddexp(lp_y, lq_y) - np.log(2)
    jsd = 0.5 * np.mean(lp_x - lm_x) + 0.5 * np.mean(lq_y - lm_y)  # nats
    return float(np.clip(jsd / np.log(2), 0.0, 1.0))


def posterior_confidence(gamma: np.ndarray) -> np.ndarray:
    """gamma (N, ...) posteriors summing to 1 over axis 0 -> C_post (...) in [0, 1]."""
    n = gamma.shape[0]
    return np.clip((n * gamma.max(axis=0) - 1.0) / (n - 1.0), 0.0, 1.0)


def combined_confidence(c_cl: float, c_jsd: float, c_post: np.ndarray) -> np.ndarray:
    """C = C_cl * C_JSD * C_post, same shape as c_post (Eq. 7 with alpha = 1)."""
    return c_cl * c_jsd * c_post


def weights(confidence: np.ndarray, magnitude: np.ndarray, alpha: float) -> np.ndarray:
    """w(alpha) = C^alpha * |X| / sum |X|, same shape as magnitude; sums to 1 per mixture at alpha = 0."""
    return np.power(confidence, alpha) * magnitude / max(float(magnitude.sum()), 1e-12)
