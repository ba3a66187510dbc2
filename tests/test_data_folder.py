"""scan_folder: recursive, mixed formats and rates, stable order, clip ids, labels CSV, clear errors."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import soundfile as sf

from hear_sela.data.audio import SOUNDFILE_EXTENSIONS, load_audio
from hear_sela.data.folder import scan_folder
from hear_sela.data.records import DataError

HAS_MP3 = ".mp3" in SOUNDFILE_EXTENSIONS


def _noise(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, 0.1, (int(round(sr * seconds)), channels)).astype(np.float32)
    return x[:, 0] if channels == 1 else x


@pytest.fixture
def mixed(tmp_path):
    """A folder of mixed formats, rates and channel counts in nested subfolders, plus things to ignore."""
    root = tmp_path / "sounds"
    (root / "dogs" / "big").mkdir(parents=True)
    (root / "birds").mkdir()
    specs = {  # relative path: (sample rate, seconds, channels, subtype)
        "dogs/big/bark.flac": (44100, 1.0, 2, "PCM_16"),
        "birds/robin.wav": (8000, 0.75, 1, "PCM_16"),
        "birds/wren.ogg": (22050, 1.25, 1, "VORBIS"),
        "Zebra.WAV": (48000, 0.5, 2, "FLOAT"),
    }
    if HAS_MP3:
        specs["dogs/howl.mp3"] = (32000, 1.0, 1, None)
    for i, (rel, (sr, sec, ch, subtype)) in enumerate(specs.items()):
        sf.write(root / rel, _noise(sr, sec, ch, seed=i), sr, subtype=subtype, format=rel.rsplit(".", 1)[1].upper())
    (root / "notes.txt").write_text("not audio")
    (root / "._bark.wav").write_bytes(b"macOS resource fork")
    (root / ".hidden").mkdir()
    sf.write(root / ".hidden" / "x.wav", _noise(16000, 0.1), 16000)
    return root, specs


def test_scan_is_recursive_sorted_and_ids_are_relative_paths(mixed):
    root, specs = mixed
    records = scan_folder(root)
    ids = [r.clip_id for r in records]
    assert ids == sorted(rel.rsplit(".", 1)[0] for rel in specs)
    assert all(r.labels == () for r in records)
    assert scan_folder(root) == records  # stable


def test_every_file_loads_as_16k_mono_of_the_right_length(mixed):
    root, specs = mixed
    for rec in scan_folder(root):
        rel = next(k for k in specs if k.rsplit(".", 1)[0] == rec.clip_id)
        sr, sec, _, _ = specs[rel]
        x = load_audio(rec.path)
        assert x.ndim == 1 and x.dtype == np.float32
        expected = math.ceil(round(sr * sec) * 16000 / sr)
        if rel.endswith(".mp3"):
            assert abs(len(x) - expected) <= 0.03 * expected
        else:
            assert len(x) == expected, rel


def test_labels_csv_multi_labels_and_fname_forms(mixed, caplog):
    root, _ = mixed
    csv_path = root.parent / "labels.csv"
    csv_path.write_text('fname,labels,notes\n'
                        'dogs/big/bark.flac,"Dog,Bark,Animal",x\n'  # with extension
                        'birds/robin,Bird,y\n'  # without
                        'gone/missing.wav,Nothing,z\n')
    with caplog.at_level(logging.WARNING):
        records = {r.clip_id: r.labels for r in scan_folder(root, csv_path)}
    assert records["dogs/big/bark"] == ("Dog", "Bark", "Animal")
    assert records["birds/robin"] == ("Bird",)
    assert records["birds/wren"] == ()
    assert "1 row(s) name no clip" in caplog.text and "gone/missing.wav" in caplog.text


def test_labels_csv_errors(mixed):
    root, _ = mixed
    bad = root.parent / "bad.csv"
    bad.write_text("file,tags\na,b\n")
    with pytest.raises(DataError, match="fname"):
        scan_folder(root, bad)
    with pytest.raises(DataError, match="not found"):
        scan_folder(root, root.parent / "absent.csv")
    dup = root.parent / "dup.csv"
    dup.write_text("fname,labels\nbirds/robin,A\nbirds/robin,B\n")
    with pytest.raises(DataError, match="twice"):
        scan_folder(root, dup)


def test_extension_filter(mixed):
    root, _ = mixed
    assert [r.clip_id for r in scan_folder(root, extensions={"ogg"})] == ["birds/wren"]


def test_duplicate_clip_ids_are_refused(tmp_path):
    sf.write(tmp_path / "a.wav", _noise(16000, 0.1), 16000)
    sf.write(tmp_path / "a.flac", _noise(16000, 0.1), 16000)
    with pytest.raises(DataError, match="'a'"):
        scan_folder(tmp_path)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(DataError, match="no audio files"):
        scan_folder(tmp_path / "empty")


def test_synth_corpus_scans_to_the_same_records(tiny_corpus):
    assert scan_folder(tiny_corpus.root, tiny_corpus.root / "labels.csv") == tiny_corpus.records


def test_dangling_and_looping_symlinks_are_reported_with_the_bad_files(tmp_path):
    """The README promises missing files are reported: a broken link is listed, and its decode names the problem."""
    from hear_sela.config import FrontendConfig
    from hear_sela.data.audio import AudioError
    from hear_sela.data.cache_build import build_feature_cache

    root = tmp_path / "sounds"
    root.mkdir()
    sf.write(root / "good.wav", _noise(16000, 1.5), 16000)
    (root / "gone.wav").symlink_to(root / "deleted.wav")
    (root / "loop.wav").symlink_to(root / "loop.wav")
    records = scan_folder(root)
    assert [r.clip_id for r in records] == ["gone", "good", "loop"]
    with pytest.raises(AudioError, match="dangling symlink"):
        load_audio(root / "gone.wav")
    with pytest.raises(AudioError, match="symlink loop"):
        load_audio(root / "loop.wav")
    cache = build_feature_cache(records, FrontendConfig(), tmp_path / "cache", 1.0, 0.5, 0.5, num_workers=0)
    assert [c.clip_id for c in cache.clips] == ["good"]
    assert {b["clip_id"]: b["reason"].split(" (")[0] for b in cache.bad_files} == {
        "gone": "file not found", "loop": "symlink loop"}


def test_labels_csv_with_a_utf8_bom(mixed, tmp_path):
    root, _ = mixed
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(b"\xef\xbb\xbffname,labels\nbirds/robin.wav,Bird\n")
    labels = {r.clip_id: r.labels for r in scan_folder(root, csv_path)}
    assert labels["birds/robin"] == ("Bird",)
