"""Confidence terms of the spatial teacher (paper Eqs. 4-7) on hand-made cases."""

import numpy as np
import pytest

from hear_sela.separation.confidence import (
    cluster_size_confidence,
    combined_confidence,
    jsd_confidence,
    posterior_confidence,
    weights,
)


def test_cluster_size_equal_one_and_skewed():
    assert cluster_size_confidence(np.array([0, 1] * 50), 2) == pytest.approx(1.0)
    assert cluster_size_confidence(np.zeros(100, int), 2) == pytest.approx(0.0)
    # Eq. 4 at N = 2 is 2 min(f1, f2)
    assert cluster_size_confidence(np.array([0] * 30 + [1] * 70), 2) == pytest.approx(0.6)


def test_posterior_half_is_zero_certain_is_one():
    gamma = np.array([[0.5, 1.0, 0.0, 0.75], [0.5, 0.0, 1.0, 0.25]])
    np.testing.assert_allclose(posterior_confidence(gamma), [0.0, 1.0, 1.0, 0.5])


def test_jsd_zero_for_same_model_near_one_for_separated():
    rng = np.random.default_rng(0)
    one = (np.array([1.0]), np.array([0.0]), np.array([1.0]))
    assert jsd_confidence(one, one, 20000, rng) == pytest.approx(0.0, abs=1e-9)
    # a wide single Gaussian vs two narrow far-apart components: nearly disjoint supports -> close to 1 bit
    wide = (np.array([1.0]), np.array([0.0]), np.array([100.0]))
    two = (np.array([0.5, 0.5]), np.array([-50.0, 50.0]), np.array([0.01, 0.01]))
    assert jsd_confidence(wide, two, 20000, rng) > 0.95
    mid = (np.array([0.5, 0.5]), np.array([-1.0, 1.0]), np.array([0.5, 0.5]))
    assert 0.0 < jsd_confidence(one, mid, 20000, rng) < 0.5


def test_weights_alpha_applied_once_and_normalised():
    c = combined_confidence(0.5, 0.4, np.array([[1.0, 0.5], [0.0, 0.25]]))
    np.testing.assert_allclose(c, 0.2 * np.array([[1.0, 0.5], [0.0, 0.25]]))
    mag = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(weights(c, mag, 0.0).sum(), 1.0)  # alpha = 0: magnitude weighting only
    np.testing.assert_allclose(weights(c, mag, 1.0), c * mag / 10.0)
    np.testing.assert_allclose(weights(c, mag, 2.0), c**2 * mag / 10.0)
