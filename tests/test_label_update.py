"""The label update's pure parts: NMI between labelings (numpy, checked against sklearn's definition)."""

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from hear_sela.label_update import nmi


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_equals_sklearn_on_random_labelings(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 7, 500)
    b = np.where(rng.random(500) < 0.6, a, rng.integers(0, 11, 500))  # related, with other label values
    assert nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


def test_nmi_limit_cases_match_sklearn():
    one = np.zeros(10, dtype=np.int64)
    split = np.arange(10) % 2
    for a, b in [(one, one), (one, split), (split, split), (split, 5 + split[::-1])]:
        assert nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)
