"""The whole table at a toy scale (seconds): every row and both test splits, intervals over seeds for the claims'
students, the confidence study; a rerun trains nothing."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def toy_sources(tmp_path_factory):
    """Per split 3 "voices" (noise through a voice-specific band-pass), 3 utterances each, <voice>_<i>.wav."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    root = tmp_path_factory.mktemp("toy_sources")
    rng = np.random.default_rng(0)
    for split, lo in (("train", 200), ("val", 300), ("test", 400)):
        for v in range(3):
            sos = butter(4, [lo + 500 * v, lo + 500 * v + 900], "bandpass", fs=8000, output="sos")
            for i in range(3):
                on = np.repeat(rng.random(12) < 0.6, 1000)  # syllable-like on/off
                x = sosfilt(sos, rng.standard_normal(12000)) * on
                p = root / split / f"toy{v}_{i:03d}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                sf.write(p, (0.3 * x / np.abs(x).max()).astype(np.float32), 8000)
    return root


def test_toy_table_end_to_end_and_rerun_reuses(toy_sources, tmp_path, monkeypatch):
    from hear_sela.separation import experiment, pool
    from hear_sela.separation.config import load_separation_config

    over = ["sources.kind=folder", f"sources.root={toy_sources}", f"mixtures.root={tmp_path / 'mix'}",
            f"out_dir={tmp_path / 'out'}", "mixtures.seconds=1.0", "mixtures.counts.train=6", "mixtures.counts.val=3",
            "mixtures.counts.test=4", "mixtures.counts.test_same=2", "teacher.jsd_samples=2000",
            "student.hidden=8", "student.layers=1", "student.updates=4", "student.batch_size=2",
            "student.crop_seconds=0.5", "student.eval_every=2", "student.curve_mixtures=2", "student.kmeans_init=1",
            "student.plateau_window=2", "student.device=cpu", "alphas=[0.0,1.0]", "seeds=[0,1]"]
    cfg = load_separation_config(None, over)
    res = experiment.run_experiment(cfg)
    for split, m in (("test", 4), ("test_same", 2)):
        rows = res["scores"][split]
        assert {"gt_all", "gt_subset", "est_0.0", "est_1.0", "teacher", "ibm", "ens_oracle", "ens_random",
                "ens_conf"} <= set(rows)
        assert len(rows["gt_all"]["binary"]["sdr"]) == 2 and len(rows["gt_subset"]["soft"]["sdr"]) == 1  # seeds
        assert all(len(s) == m for s in rows["est_1.0"]["soft"]["sdr"])
        # the random ensemble is the mean of its parts, mixture by mixture, not one coin draw
        np.testing.assert_allclose(rows["ens_random"]["binary"]["sdr"],
                                   (np.array(rows["teacher"]["binary"]["sdr"]) + rows["est_1.0"]["binary"]["sdr"]) / 2)
    assert res["best_alpha"] == 1.0 and set(res["confidence_vs_accuracy_train"]["r"]) == {"c_cl", "c_jsd", "c_post",
                                                                                           "product"}
    table = (tmp_path / "out" / "table.md").read_text()
    assert "different voices" in table and "same voice" in table and "est_1.0 − est_0.0" in table
    assert json.loads((tmp_path / "out" / "results.json").read_text())["train"]["gt_all"]["1"]["curve"]

    def no_training(*a, **k):
        raise AssertionError("a rerun with the same settings must reuse the students")

    monkeypatch.setattr(experiment, "train_student", no_training)
    monkeypatch.setattr(pool, "cluster", no_training)  # the teacher's outputs come from the cache
    again = experiment.run_experiment(cfg)
    assert again["scores"] == res["scores"]
