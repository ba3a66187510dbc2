"""The stereo mixture generator: deterministic by seed, sources sum to the mixture, far-field delays as drawn."""

import numpy as np
import pytest

from hear_sela.separation.config import MixtureConfig
from hear_sela.separation.mixtures import fractional_delay, generate_split, make_mixture, read_split, write_split


@pytest.fixture(scope="module")
def source_files(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("sep_sources")
    rng = np.random.default_rng(1)
    files = []
    for i in range(4):  # 16 kHz mono "sources" of different lengths (resampled to 8 kHz by the project's reader)
        p = root / f"s{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(16000 + 3000 * i)).astype(np.float32), 16000)
        files.append(p)
    return files


def test_deterministic_and_seed_matters(source_files):
    cfg = MixtureConfig(seconds=1.0)
    a = generate_split(source_files, 3, cfg, "train", seed=0)
    b = generate_split(source_files, 3, cfg, "train", seed=0)
    c = generate_split(source_files, 3, cfg, "train", seed=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.mix, y.mix)
        assert (x.spacing_m, x.angles_deg) == (y.spacing_m, y.angles_deg)
    assert not np.array_equal(a[0].mix, c[0].mix)
    assert a[0].mix.shape == (2, 8000)


def test_sources_sum_to_mixture_and_roundtrip(source_files, tmp_path):
    cfg = MixtureConfig(seconds=1.0)
    mixes = generate_split(source_files, 2, cfg, "test", seed=0)
    for m in mixes:
        np.testing.assert_array_equal(m.sources.sum(0), m.mix)
        assert np.abs(m.mix).max() == pytest.approx(cfg.peak, rel=1e-5)
        assert cfg.spacing_m[0] <= m.spacing_m <= cfg.spacing_m[1]
    write_split(mixes, tmp_path, cfg.sample_rate)
    back = read_split(tmp_path)
    for m, r in zip(mixes, back):
        np.testing.assert_array_equal(m.mix, r.mix)
        np.testing.assert_array_equal(r.sources.sum(0), r.mix)


def test_far_field_delay_between_mics():
    cfg = MixtureConfig(seconds=0.5, spacing_m=(0.2, 0.2), level_db=0.0)
    rng = np.random.default_rng(3)
    s = np.random.default_rng(4).standard_normal(8000)
    m = make_mixture(s, np.zeros(8000), cfg, rng, "x")
    tau = 0.2 * np.sin(np.deg2rad(m.angles_deg[0])) / cfg.speed_of_sound * cfg.sample_rate
    img = m.sources[0]  # mic 1 is mic 0 delayed by tau samples
    np.testing.assert_allclose(fractional_delay(img[0], tau)[50:-50], img[1][50:-50], atol=1e-4)


def test_integer_fractional_delay_is_a_shift():
    x = np.random.default_rng(0).standard_normal(200)
    np.testing.assert_allclose(fractional_delay(x, 3.0)[3:], x[:-3], atol=1e-9)
