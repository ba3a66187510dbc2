"""The spatial teacher and the student end to end on tiny hand-made mixtures (seconds, not minutes)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

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


def test_loud_bins_percentile_gate():
    """Issue 27: the GMM and JSD are fitted on the loudest bins, as nussl (threshold=95: |X| > its 95th
    percentile), not on an absolute -10 dB that keeps a third of them."""
    from dataclasses import replace

    from hear_sela.separation.teacher import loud_bins

    rng = np.random.default_rng(0)
    spec = (rng.standard_normal((129, 200)) + 1j * rng.standard_normal((129, 200))) * 0.3  # (F, T)
    mag = np.abs(spec)
    for p in (95.0, 80.0):
        gate = loud_bins(spec, TeacherConfig(gate_percentile=p))
        assert gate.mean() == pytest.approx(1 - p / 100, abs=0.002)
        assert mag[gate].min() > mag[~gate].max()  # exactly the loudest bins
    absolute = loud_bins(spec, TeacherConfig(gate_percentile=None, gate_db=-10.0))
    np.testing.assert_array_equal(absolute, 20 * np.log10(mag) > -10.0)
    # the teacher fits on that gate
    tc = TeacherConfig(features="freqnorm")
    assert tc.gate_percentile == 95.0
    mix = np.random.default_rng(1).standard_normal((2, 8000)).astype(np.float32)
    assert cluster(mix, tc, 8000).gate.mean() == pytest.approx(0.05, abs=0.002)
    assert cluster(mix, replace(tc, gate_percentile=None), 8000).gate.mean() > 0.2


def test_student_trains_saves_and_separates(mixture, tmp_path):
    from hear_sela.separation.student import load_student, log_magnitude, separate_mono, student_masks
    from hear_sela.separation.trainer import pool_batches, train_student

    tc = TeacherConfig()
    feats = log_magnitude(mixture.mix[0], tc)[None]  # (1, T, F)
    labels = np.abs(stft(mixture.sources[:, 0], tc.n_fft, tc.hop)).argmax(0).T[None]
    w = np.full(feats.shape, 1.0 / feats[0].size, np.float32)
    cfg = StudentConfig(hidden=8, layers=1, updates=30, batch_size=2, lr=1e-2, plateau_window=5, eval_every=15,
                        curve_mixtures=1)
    make = pool_batches(feats, labels, w, 2, 60)
    assert make(np.random.default_rng(0)).feats.shape == (2, 60, 129)  # random crops of 60 frames
    info = train_student(make, cfg, tc, tmp_path / "s.pt", {"teacher": {"n_fft": 256, "hop": 64},
                                                           "sample_rate": 8000}, [mixture])
    curve = info["curve"]
    assert [p["update"] for p in curve] == [15, 30] and curve[-1]["train_loss"] < curve[0]["train_loss"]
    assert all(np.isfinite(p["val_sdr"]) for p in curve)
    student = load_student(tmp_path / "s.pt")  # weights_only load
    est = separate_mono(student, mixture.mix[0])
    assert est.shape == (2, 8000) and np.isfinite(est).all()
    # binary masks partition the mixture's STFT, so the two estimates sum back to the mixture; soft masks too
    np.testing.assert_allclose(est.sum(0), mixture.mix[0], atol=1e-4)
    binary, soft = student_masks(student, mixture.mix[0])
    np.testing.assert_allclose(soft.sum(0), 1.0, atol=1e-5)
    assert ((soft[0] > 0.5) == (binary[0] > 0.5)).mean() > 0.99  # the soft masks' argmax is the K-means split


def test_student_training_resumes_exactly_from_its_progress_file(mixture, tmp_path):
    """A student killed mid-way resumes from its last learning-curve point and ends bitwise as one that ran through;
    a progress file from other settings is not used."""
    from hear_sela.separation.student import load_student, log_magnitude
    from hear_sela.separation.trainer import feature_norm, pool_batches, progress_path, train_student

    tc = TeacherConfig()
    feats = log_magnitude(mixture.mix[0], tc)[None]  # (1, T, F)
    labels = np.abs(stft(mixture.sources[:, 0], tc.n_fft, tc.hop)).argmax(0).T[None]
    w = np.full(feats.shape, 1.0 / feats[0].size, np.float32)
    cfg = StudentConfig(hidden=8, layers=1, updates=12, batch_size=2, lr=1e-2, plateau_window=2, plateau_patience=0,
                        eval_every=4, curve_mixtures=1)
    meta = {"teacher": {"n_fft": 256, "hop": 64}, "sample_rate": 8000}
    make = pool_batches(feats, labels, w, 2, 60)
    norm = feature_norm(make)
    whole = train_student(make, cfg, tc, tmp_path / "whole.pt", meta, [mixture], norm)

    calls = {"n": 0}

    def dies_at_update_7(rng):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return make(rng)

    with pytest.raises(KeyboardInterrupt):
        train_student(dies_at_update_7, cfg, tc, tmp_path / "cut.pt", meta, [mixture], norm)
    assert progress_path(tmp_path / "cut.pt").is_file() and not (tmp_path / "cut.pt").exists()
    calls["n"] = 0
    cut = train_student(lambda rng: (calls.__setitem__("n", calls["n"] + 1), make(rng))[1], cfg, tc,
                        tmp_path / "cut.pt", meta, [mixture], norm)
    assert calls["n"] == 12 - 4  # updates 5..12: the four before the progress point are not redone
    assert not progress_path(tmp_path / "cut.pt").exists()
    def without_time(curve):
        return [{k: v for k, v in p.items() if k != "cpu_s"} for p in curve]

    assert [p["update"] for p in cut["curve"]] == [4, 8, 12]
    assert without_time(cut["curve"]) == without_time(whole["curve"])
    for a, b in zip(load_student(tmp_path / "whole.pt").model.state_dict().values(),
                    load_student(tmp_path / "cut.pt").model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    with pytest.raises(KeyboardInterrupt):
        calls["n"] = 0
        train_student(dies_at_update_7, cfg, tc, tmp_path / "other.pt", meta, [mixture], norm)
    calls["n"] = 0
    train_student(lambda rng: (calls.__setitem__("n", calls["n"] + 1), make(rng))[1], replace(cfg, lr=5e-3), tc,
                  tmp_path / "other.pt", meta, [mixture], norm)
    assert calls["n"] == 12  # another learning rate: the progress file is not this student's


def test_separate_cli_bad_input_one_line(tmp_path, capsys):
    from hear_sela.cli import main

    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["separate", str(tmp_path / "missing.wav"), "--checkpoint", str(bogus), "--out", str(tmp_path)]) == 1
