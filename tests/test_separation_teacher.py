"""The spatial teacher and the student end to end on tiny hand-made mixtures (seconds, not minutes)."""

import numpy as np
import pytest

from hear_sela.separation.config import MixtureConfig, StudentConfig, TeacherConfig
from hear_sela.separation.metrics import partition_similarity, separation_scores
from hear_sela.separation.mixtures import make_mixture
from hear_sela.separation.stft import istft, stft
from hear_sela.separation.teacher import cluster


@pytest.fixture(scope="module")
def mixture():
    """Two noise sources alternating every 0.125 s (time-disjoint), 60+ degrees apart, 15 cm spacing."""
    rng = np.random.default_rng(0)
    n = 8000
    on = (np.arange(n) // 1000) % 2 == 0
    s1, s2 = rng.standard_normal(n) * on, rng.standard_normal(n) * ~on
    cfg = MixtureConfig(seconds=1.0, spacing_m=(0.15, 0.15), min_angle_deg=60.0, level_db=0.0)
    return make_mixture(s1, s2, cfg, np.random.default_rng(1), "t")


@pytest.mark.parametrize("features", ["freqnorm", "paper"])
def test_teacher_outputs_are_consistent(mixture, features):
    out = cluster(mixture.mix, TeacherConfig(features=features), 8000)
    np.testing.assert_allclose(out.gamma.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.labels, out.gamma.argmax(0))
    assert 0.0 <= out.c_cl <= 1.0 and 0.0 <= out.c_jsd <= 1.0
    np.testing.assert_allclose(out.confidence, out.c_cl * out.c_jsd * out.c_post, rtol=1e-5)


def test_freqnorm_teacher_separates_spatially_distinct_sources(mixture):
    tc = TeacherConfig(features="freqnorm")
    out = cluster(mixture.mix, tc, 8000)
    src = np.abs(stft(mixture.sources[:, 0], tc.n_fft, tc.hop))  # (2, F, T)
    gt = src.argmax(0)
    assert partition_similarity(gt[out.gate], out.labels[out.gate], np.ones(out.gate.sum())) > 0.5
    est = istft(out.gamma * stft(mixture.mix[0], tc.n_fft, tc.hop)[None], tc.n_fft, tc.hop, 8000)
    assert separation_scores(mixture.sources[:, 0], est, mixture.mix[0])["sdri"] > 5.0


def test_student_trains_saves_and_separates(mixture, tmp_path):
    from hear_sela.separation.student import TrainSet, load_student, log_magnitude, separate_mono, train_student

    tc = TeacherConfig()
    feats = log_magnitude(mixture.mix[0], tc)[None]  # (1, T, F)
    labels = np.abs(stft(mixture.sources[:, 0], tc.n_fft, tc.hop)).argmax(0).T[None]
    w = np.full(feats.shape, 1.0 / feats[0].size, np.float32)
    data = TrainSet(feats, labels, w)
    cfg = StudentConfig(hidden=8, layers=1, epochs=3, batch_size=1, lr=1e-2)
    info = train_student(data, data, cfg, 3, tmp_path / "s.pt", {"teacher": {"n_fft": 256, "hop": 64},
                                                                 "sample_rate": 8000})
    losses = [h["train_loss"] for h in info["history"]]
    assert losses[-1] < losses[0]
    student = load_student(tmp_path / "s.pt")  # weights_only load
    est = separate_mono(student, mixture.mix[0])
    assert est.shape == (2, 8000) and np.isfinite(est).all()
    # binary masks partition the mixture's STFT, so the two estimates sum back to the mixture
    np.testing.assert_allclose(est.sum(0), mixture.mix[0], atol=1e-4)


def test_separate_cli_bad_input_one_line(tmp_path, capsys):
    from hear_sela.cli import main

    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["separate", str(tmp_path / "missing.wav"), "--checkpoint", str(bogus), "--out", str(tmp_path)]) == 1
