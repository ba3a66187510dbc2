"""nussl (the authors' library) as a test oracle for the weighted deep-clustering loss, the Jensen-Shannon
confidence and the loud-bin gate. nussl is never a dependency: these tests run only where it imports, e.g. a
throwaway venv with `pip install --no-deps nussl==1.1.9` (+ the few modules its import needs) over this project's
packages; nussl 1.1.9 predates scipy's removal of scipy.signal.hamming and imports musdb -> stempeg, which wants
ffmpeg, so both are shimmed here and nowhere else."""

import sys
import types

import numpy as np
import pytest
import torch


def _nussl():
    import scipy.signal
    import scipy.signal.windows

    for name in ("hamming", "hann", "blackman"):
        if not hasattr(scipy.signal, name):
            setattr(scipy.signal, name, getattr(scipy.signal.windows, name))
    sys.modules.setdefault("stempeg", types.ModuleType("stempeg"))
    try:
        import nussl.ml.confidence as confidence
        from nussl.ml.train.loss import DeepClusteringLoss
    except Exception as e:  # absent, or one of its many optional imports missing
        pytest.skip(f"nussl not importable: {type(e).__name__}: {e}")
    return confidence, DeepClusteringLoss


def test_weighted_dc_loss_equals_nussl_with_sqrt_weights():
    from hear_sela.separation.student import weighted_dc_loss

    _, DeepClusteringLoss = _nussl()
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(3, 7, 11, 15, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.one_hot(torch.randint(0, 2, (3, 7, 11), generator=g), 2).double()
    w = torch.rand(3, 7, 11, generator=g, dtype=torch.float64) ** 4 / 77  # uneven, small: like w(alpha)
    ours = weighted_dc_loss(v.flatten(1, 2), y.flatten(1, 2), w.flatten(1), "example")
    theirs = DeepClusteringLoss()(v, y, w.sqrt())  # nussl multiplies V and Y by its weights: pass sqrt(w)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


def test_jsd_confidence_matches_nussl_in_bits():
    from sklearn.mixture import GaussianMixture

    from hear_sela.separation.confidence import jsd_confidence
    from hear_sela.separation.teacher import _params

    confidence, _ = _nussl()
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-1.0, 0.4, 3000), rng.normal(1.5, 0.6, 2000)])[:, None]
    p = GaussianMixture(1, random_state=0).fit(x)
    q = GaussianMixture(2, random_state=0).fit(x)
    theirs = confidence.jensen_shannon_divergence(p, q, n_samples=200000) / np.log(2)  # nats -> bits
    ours = jsd_confidence(_params(p), _params(q), 200000, np.random.default_rng(2))
    assert ours == pytest.approx(theirs, abs=0.01)  # two Monte-Carlo estimates of the same number


def test_percentile_gate_equals_nussl_loud_bins_mask():
    from hear_sela.separation.config import TeacherConfig
    from hear_sela.separation.teacher import loud_bins

    confidence, _ = _nussl()
    rng = np.random.default_rng(3)
    spec = rng.standard_normal((129, 150)) + 1j * rng.standard_normal((129, 150))
    for p in (95, 90):
        theirs, _ = confidence._get_loud_bins_mask(p, representation=np.abs(spec))
        np.testing.assert_array_equal(loud_bins(spec, TeacherConfig(gate_percentile=float(p))), theirs)
