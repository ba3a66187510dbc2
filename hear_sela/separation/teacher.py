"""The teacher: unsupervised spatial clustering of one stereo mixture (paper Sec. 2.1) and its confidence.

Features (TeacherConfig.features):
- "paper": theta = angle(X0 conj X1) (Eq. 1), (cos theta, sin theta) -> PCA to one dimension, pooled over all
  frequencies; GMM posteriors on that feature are the masks (Eq. 3). This is the paper's feature; in a far-field
  spaced-mic array the IPD grows with frequency, so pooling frequencies mixes direction with frequency (the
  prototype in notes/seed003_selavi.md 1.9 found it makes mixtures worse).
- "freqnorm" (ours, the prototype's variant B): the delay theta / omega_f on loud bins below the spatial-aliasing
  frequency c / (2 d_max) (d_max = an upper bound on the array's spacing, TeacherConfig.max_spacing_m) -> 1-D GMM
  in delay; masks on every bin from a von-Mises phase model per component (phase residual theta - omega_f mu_j,
  concentration fitted on the GMM's bins).
Both: the GMM is sklearn's GaussianMixture (full covariance, EM), fitted only on the loud bins (loud_bins: above the
95th percentile of |X0| by default, as nussl's confidence functions; or 20 log10|X0| > tau, the paper); C_JSD
compares 1- and N-component fits of the same fitted feature; C_cl counts hard labels on the gated bins (or all).
Legend: F bins, T frames, N components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import i0e
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from hear_sela.separation.confidence import (
    cluster_size_confidence,
    combined_confidence,
    jsd_confidence,
    posterior_confidence,
)
from hear_sela.separation.config import TeacherConfig
from hear_sela.separation.stft import log_db, stft


@dataclass
class TeacherOutput:
    gamma: np.ndarray  # (N, F, T) soft masks (posteriors), sum to 1 over N
    labels: np.ndarray  # (F, T) hard pseudo-labels argmax_j gamma
    gate: np.ndarray  # (F, T) bool: the bins the GMMs were fitted on (loud_bins)
    c_cl: float
    c_jsd: float
    c_post: np.ndarray  # (F, T)
    confidence: np.ndarray  # (F, T) C_cl * C_JSD * C_post


def _gmm(x: np.ndarray, n: int, seed: int) -> GaussianMixture:
    return GaussianMixture(n, covariance_type="full", random_state=seed, reg_covar=1e-6).fit(x[:, None])


def _params(g: GaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return g.weights_.copy(), g.means_[:, 0].copy(), g.covariances_[:, 0, 0].copy()


def _kappa(r: np.ndarray) -> np.ndarray:
    """Von-Mises concentration from the mean resultant length r in [0, 1) (Best & Fisher's approximation)."""
    r = np.clip(r, 1e-6, 0.999)
    return np.where(r < 0.53, 2 * r + r**3 + 5 * r**5 / 6, np.where(r < 0.85, -0.4 + 1.39 * r + 0.43 / (1 - r),
                                                                       1 / (r**3 - 4 * r**2 + 3 * r)))


def loud_bins(spec0: np.ndarray, cfg: TeacherConfig, min_bins: int = 20) -> np.ndarray:
    """(F, T) complex channel 0 -> (F, T) bool: the bins the GMMs are fitted on. With cfg.gate_percentile the bins
    louder than that percentile of |X0| (nussl's _get_loud_bins_mask: a strict >); otherwise 20 log10|X0| > tau
    (Eq. 2). Fewer than `min_bins` (a near-silent mixture): the loudest 10 % instead."""
    level = log_db(spec0)
    if cfg.gate_percentile is not None:
        mag = np.abs(spec0)
        gate = mag > np.percentile(mag, cfg.gate_percentile)
    else:
        gate = level > cfg.gate_db
    if gate.sum() < min_bins:
        gate = level >= np.quantile(level, 0.9)
    return gate


def cluster(mix: np.ndarray, cfg: TeacherConfig, sample_rate: int, speed_of_sound: float = 343.0) -> TeacherOutput:
    """Spatial clustering of one stereo mixture (2, S)."""
    spec = stft(mix, cfg.n_fft, cfg.hop)  # (2, F, T)
    theta = np.angle(spec[0] * np.conj(spec[1]))  # (F, T)  Eq. 1
    gate = loud_bins(spec[0], cfg, 10 * cfg.components)
    n = cfg.components
    if cfg.features == "paper":
        feats = np.stack([np.cos(theta), np.sin(theta)], -1).reshape(-1, 2)  # (F*T, 2)
        phi = PCA(1, random_state=cfg.seed).fit(feats[gate.ravel()]).transform(feats)[:, 0]  # (F*T,)
        fit = phi[gate.ravel()]
        q = _gmm(fit, n, cfg.seed)
        gamma = q.predict_proba(phi[:, None]).T.reshape(n, *theta.shape)  # Eq. 3
    elif cfg.features == "freqnorm":
        f_alias = speed_of_sound / (2 * cfg.max_spacing_m)  # Hz
        omega = 2 * np.pi * np.arange(theta.shape[0]) / cfg.n_fft  # (F,) rad / sample
        freqs = np.arange(theta.shape[0]) * sample_rate / cfg.n_fft
        usable = (freqs > 0) & (freqs <= f_alias)
        fit_mask = gate & usable[:, None]
        if fit_mask.sum() < 10 * n:
            fit_mask = gate & (freqs > 0)[:, None]
        delay = theta / np.where(omega > 0, omega, 1.0)[:, None]  # (F, T) samples
        fit = delay[fit_mask]
        q = _gmm(fit, n, cfg.seed)
        mu = q.means_[:, 0]  # (N,) delays in samples
        resid = theta[None] - omega[None, :, None] * mu[:, None, None]  # (N, F, T)
        cos_r = np.cos(resid)
        resp = q.predict_proba(fit[:, None]).T  # (N, fitted bins)
        r = (resp * cos_r[:, fit_mask]).sum(1) / np.maximum(resp.sum(1), 1e-9)
        kappa = _kappa(r)  # (N,)
        # log pi_j + kappa_j cos(resid) - log I0(kappa_j); i0e(k) = exp(-k) I0(k)
        loglik = (np.log(q.weights_)[:, None, None] + kappa[:, None, None] * (cos_r - 1)
                  - np.log(i0e(kappa))[:, None, None])
        loglik -= loglik.max(0, keepdims=True)
        gamma = np.exp(loglik)
        gamma /= gamma.sum(0, keepdims=True)
    else:
        raise ValueError(f"teacher.features: unknown {cfg.features!r} (paper | freqnorm)")
    labels = gamma.argmax(0)
    counted = labels[gate] if cfg.cluster_bins == "gated" else labels.ravel()
    c_cl = cluster_size_confidence(counted, n)
    p1 = _params(_gmm(fit, 1, cfg.seed))
    c_jsd = jsd_confidence(p1, _params(q), cfg.jsd_samples, np.random.default_rng(cfg.seed))
    c_post = posterior_confidence(gamma)
    return TeacherOutput(gamma.astype(np.float32), labels.astype(np.int64), gate, c_cl, c_jsd,
                         c_post.astype(np.float32), combined_confidence(c_cl, c_jsd, c_post).astype(np.float32))
