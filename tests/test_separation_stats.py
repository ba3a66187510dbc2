"""The table's statistics: the random ensemble's expectation, intervals over seeds or mixtures, paired differences."""

import itertools

import numpy as np
import pytest

from hear_sela.separation.stats import paired_difference, random_ensemble_expectation, row_interval, switch


def test_random_ensemble_is_the_expectation_over_every_coin_draw():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(5, 3, 8), rng.normal(-2, 4, 8)  # (M,) per-mixture SI-SDR
    draws = [switch(teacher, student, np.array(coins)).mean() for coins in itertools.product([False, True], repeat=8)]
    assert random_ensemble_expectation(teacher, student).mean() == pytest.approx(np.mean(draws), abs=1e-12)
    # per seed of the student (S, M) against the one teacher (1, M)
    students = rng.normal(0, 1, (3, 8))
    np.testing.assert_allclose(random_ensemble_expectation(teacher[None], students), (teacher + students) / 2)


def test_row_interval_over_seeds_when_several_else_over_mixtures():
    rng = np.random.default_rng(1)
    one = row_interval(rng.normal(1.0, 2.0, (1, 400)))
    assert one.over == "mixtures" and one.n == 400 and one.lo < one.mean < one.hi
    three = row_interval(np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]))
    assert three.over == "seeds" and three.mean == pytest.approx(2.5)
    # seed means 1.5, 2.5, 3.5: sd 1, t(0.975, 2) = 4.303 -> half width 4.303 / sqrt(3)
    assert three.hi - three.mean == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4)


def test_paired_difference_pairs_mixtures_and_seeds():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 5, (3, 300))  # large between-mixture spread, shared by both rows
    better = base + 0.5 + rng.normal(0, 0.1, (3, 300))
    d = paired_difference(better, base)
    assert d.mixtures.mean == pytest.approx(0.5, abs=0.05) and d.seeds is not None and d.excludes_zero()
    assert not paired_difference(base + rng.normal(0, 0.1, (3, 300)), base).excludes_zero()
    single = paired_difference(better[:1], base)  # one seed against three: mixtures only
    assert single.seeds is None and single.excludes_zero()
