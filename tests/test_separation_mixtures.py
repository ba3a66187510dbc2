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


@pytest.fixture(scope="module")
def voiced_files(tmp_path_factory):
    """3 voices x 3 utterances per split, named as espeak files are (<voice>_<i>.wav)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("sep_voices")
    rng = np.random.default_rng(5)
    files = {}
    for split in ("train", "val", "test"):
        files[split] = []
        for v in range(3):
            for i in range(3):
                p = root / split / f"en-{split}{v}_m{v}_{i:03d}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                sf.write(p, (0.1 * rng.standard_normal(9000)).astype(np.float32), 8000)
                files[split].append(p)
    return files


def test_no_same_voice_pair_in_any_split(voiced_files):
    from hear_sela.separation.sources import voice_of

    cfg = MixtureConfig(seconds=0.5)
    for split, files in voiced_files.items():
        mixes = generate_split(files, 60, cfg, split, seed=0)
        assert all(m.voices[0] != m.voices[1] for m in mixes), split
        assert len({frozenset(m.voices) for m in mixes}) == 3  # every pair of the 3 voices occurs
        assert {v for m in mixes for v in m.voices} <= {voice_of(p) for p in files}
    same = generate_split(voiced_files["test"], 30, cfg, "test_same", seed=0, same_voice=True)
    assert all(m.voices[0] == m.voices[1] for m in same)


def test_dynamic_mixing_pairs_different_voices(voiced_files):
    from hear_sela.separation.config import TeacherConfig
    from hear_sela.separation.mixtures import SourcePool
    from hear_sela.separation.trainer import dynamic_batches

    pool = SourcePool(voiced_files["train"], 8000)
    seen = []
    original = pool.mixture

    def spy(*a, **k):
        m = original(*a, **k)
        seen.append(m.voices)
        return m

    pool.mixture = spy
    b = dynamic_batches(pool, MixtureConfig(), TeacherConfig(), 8, 0.5)(np.random.default_rng(0))
    assert b.feats.shape == b.labels.shape == b.weights.shape == (8, 63, 129)
    assert len(seen) == 8 and all(a != c for a, c in seen)
    np.testing.assert_allclose(b.weights.sum((1, 2)), 1.0, rtol=1e-5)  # w(0) sums to 1 per mixture


def test_voice_splits_are_disjoint_and_train_has_80_voices():
    from hear_sela.separation.config import SourcesConfig
    from hear_sela.separation.sources import voices

    cfg = SourcesConfig()
    sets = {s: set(voices(cfg, s)) for s in ("train", "val", "test")}
    assert len(sets["train"]) >= 80
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
