"""hear-sela corpus on a tiny fake Debian package tree: dedup, cutting, bad files, caps, labels, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_sela.cli import main as cli_main
from hear_sela.data.corpus import (
    CorpusConfig,
    SourceSpec,
    collect,
    cut_clips,
    fingerprint,
    load_sources,
    trim_silence,
    write_corpus,
)
from hear_sela.data.folder import scan_folder
from hear_sela.data.records import DataError, read_labels_csv

SR = 16000


def _noise_burst(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """Coloured noise with a rhythmic envelope: a (S,) signal that no other fixture resembles."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.convolve(rng.standard_normal(n), np.ones(1 + seed % 7) / (1 + seed % 7), mode="same")
    return (0.3 * x * (0.55 + 0.45 * np.sin(2 * np.pi * (0.7 + seed) * t))).astype(np.float32)


def _chirp(seconds: float, f0: float, f1: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))).astype(np.float32)


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    """A package-like tree: usr/share/games/fake/{sounds,voice,music}/ plus the Debian copyright file."""
    pkg = tmp_path / "fake-data"
    snd = pkg / "usr/share/games/fake/sounds"
    voice = pkg / "usr/share/games/fake/voice"
    music = pkg / "usr/share/games/fake/music"
    for d in (snd, voice, music):
        d.mkdir(parents=True)
    (pkg / "usr/share/doc/fake-data").mkdir(parents=True)
    (pkg / "usr/share/doc/fake-data/copyright").write_text("Files: *\nLicense: GPL-2+\n")
    a = _noise_burst(3.0, seed=1)
    sf.write(snd / "crash.wav", a, SR, subtype="FLOAT")
    sf.write(voice / "crash_copy.wav", a, SR, subtype="FLOAT")  # exact duplicate, other folder
    b = _chirp(2.0, 300, 2000)
    sf.write(snd / "whoosh.wav", b, SR, subtype="FLOAT")
    pad = np.zeros(SR // 2, np.float32)
    sf.write(voice / "whoosh_quiet.wav", np.concatenate([pad, 0.25 * b, pad]), SR, subtype="FLOAT")  # near dup
    sf.write(snd / "bird.wav", _chirp(2.0, 2000, 300), SR, subtype="FLOAT")  # same length as b, other sound
    t = np.arange(int(2.5 * SR)) / SR
    for name, f in (("hum_a", 1200), ("hum_b", 1260)):  # one fingerprint band, same envelope; uncorrelated waves
        sf.write(snd / f"{name}.wav", 0.3 * np.hanning(len(t)) * np.sin(2 * np.pi * f * t), SR, subtype="FLOAT")
    sr = 22050
    long = np.concatenate([_noise_burst(9.0, 2, sr), _chirp(8.0, 100, 400, sr), _noise_burst(8.0, 3, sr)])
    sf.write(music / "theme.wav", np.stack([long, long[::-1]], axis=1), sr)  # 25 s stereo at 22.05 kHz
    sf.write(snd / "click.wav", _noise_burst(0.5, seed=4), SR)  # too short
    (snd / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage, not audio")
    return pkg


def _collect(package: Path, **kw):
    return collect([SourceSpec("fake", str(package), category="sfx", package="fake-data")], CorpusConfig(**kw))


def test_dedup_cut_and_bad_files(package: Path):
    clips, (rep,) = _collect(package)
    names = sorted(c.fname for c in clips)
    assert rep.exact_duplicates == 1 and rep.near_duplicates == 1
    kinds = {d["kind"]: {d["file"], d["duplicate_of"]} for d in rep.duplicates}
    assert {Path(f).stem for f in kinds["exact"]} == {"crash", "crash_copy"}
    assert {Path(f).stem for f in kinds["near"]} == {"whoosh", "whoosh_quiet"}
    assert [Path(b["path"]).name for b in rep.bad_files] == ["broken.wav"]
    assert rep.too_short == 1  # click.wav
    theme = [n for n in names if "/music/theme_" in n]
    assert len(theme) == 3  # 25 s -> 3 clips of 8.33 s
    assert all(len(c.audio) <= 10 * SR and len(c.audio) >= SR for c in clips)
    assert sum(len(c.audio) for c in clips if "/music/theme_" in c.fname) == pytest.approx(25 * SR, abs=SR * 0.05)
    assert any("bird" in n for n in names)  # same length as the chirp, different sound: kept
    assert sum("hum_" in n for n in names) == 2  # same fingerprint, uncorrelated waveforms: both kept
    assert rep.clips == len(clips) == 5 + 3  # crash, whoosh, bird, rain_a, rain_b + 3 theme clips


def test_dry_run_lists_and_writes_nothing(package: Path, tmp_path: Path, capsys):
    out = tmp_path / "corpus"
    assert cli_main(["corpus", str(out), "--source", f"fake={package}", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert "broken.wav" in text and "would write 8 clips" in text
    row = next(line for line in text.splitlines() if line.startswith("fake "))
    assert row.split()[1:6] == ["6", "8", f"{(3 + 2 + 2 + 5 + 25) / 3600:.2f}", "1", "1"]


def test_written_corpus_reads_back(package: Path, tmp_path: Path):
    out = tmp_path / "corpus"
    clips, reports = _collect(package)
    summary = write_corpus(out, clips, reports, CorpusConfig())
    labels = read_labels_csv(out / "labels.csv")
    assert set(labels) == {c.fname for c in clips}
    records = scan_folder(out, out / "labels.csv")
    assert len(records) == len(clips) and all(r.labels for r in records)
    theme = next(r for r in records if "theme" in r.clip_id)
    assert theme.labels == ("fake-data", "fake/usr/share/games/fake/music", "sfx")
    for r in records:
        info = sf.info(r.path)
        assert info.samplerate == SR and info.channels == 1 and 1.0 <= info.duration <= 10.0
    assert summary["sources"]["fake"]["clips"] == 8 and summary["totals"]["exact_duplicates"] == 1
    assert (out / "manifest.json").is_file()


def test_output_is_deterministic(package: Path, tmp_path: Path):
    trees = []
    for name in ("one", "two"):
        clips, reports = _collect(package)
        out = tmp_path / name
        write_corpus(out, clips, reports, CorpusConfig())
        trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1] and len(trees[0]) == 8 + 2


def test_hours_cap_stops_a_source(package: Path):
    clips, (rep,) = _collect(package, max_hours_per_source=4 / 3600)
    assert rep.seconds >= 4 and rep.seconds < 4 + 10 and rep.files_not_reached > 0
    clips, (rep,) = _collect(package, category_hours={"sfx": 4 / 3600})
    assert rep.seconds < 4 + 10 and rep.files_not_reached > 0
    clips, (rep,) = _collect(package, category_source_hours={"sfx": 4 / 3600})
    assert rep.seconds >= 4 and rep.seconds < 4 + 10 and rep.files_not_reached > 0
    clips, (rep,) = _collect(package, category_source_hours={"music": 4 / 3600})  # another category: no cap
    assert rep.files_not_reached == 0 and rep.seconds == _collect(package)[1][0].seconds
    clips, (rep,) = _collect(package, max_seconds_per_file=9.0)
    assert sum("/music/theme_" in c.fname for c in clips) == 2  # 8.33 s + 8.33 s crosses 9 s: the third is left


def test_trim_and_fingerprint_ignore_gain_and_padding():
    x = _noise_burst(2.0, seed=5)
    padded = np.concatenate([np.zeros(999, np.float32), 0.1 * x, np.zeros(3000, np.float32)])
    assert len(trim_silence(padded, -50)) <= len(x)
    assert np.abs(fingerprint(trim_silence(x, -50)) - fingerprint(trim_silence(padded, -50))).mean() < 0.1
    assert len(trim_silence(np.zeros(100, np.float32), -50)) == 0


def test_cut_clips_bounds():
    x = np.arange(25 * SR, dtype=np.float32)
    pieces = cut_clips(x, SR, 10.0)
    assert [len(p) for _, p in pieces] == [round(25 * SR / 3)] * 3 or sum(len(p) for _, p in pieces) == len(x)
    assert np.array_equal(np.concatenate([p for _, p in pieces]), x) and max(len(p) for _, p in pieces) <= 10 * SR
    assert len(cut_clips(x[: 10 * SR], SR, 10.0)) == 1


def test_sources_file(tmp_path: Path, package: Path):
    (package / ".version").write_text("1.2-3\n")
    good = tmp_path / "sources.yaml"
    good.write_text("max_hours_per_source: 0.5\ncategory_hours: {music: 0.1}\ncategory_source_hours: {music: 0.05}\n"
                    "sources:\n"
                    "  - {name: fake, package: fake-data, root: fake-data/usr, category: sfx, licence: GPL-2+}\n")
    (spec,), settings = load_sources(good, tmp_path)
    assert spec.version == "1.2-3" and spec.root == str(tmp_path / "fake-data/usr")
    assert settings == {"max_hours_per_source": 0.5, "category_hours": {"music": 0.1},
                        "category_source_hours": {"music": 0.05}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: fake, folder: x}\n")
    with pytest.raises(DataError, match="bad.yaml: source #1"):
        load_sources(bad, tmp_path)


def test_cli_bad_source_is_one_line(tmp_path: Path, caplog):
    assert cli_main(["corpus", str(tmp_path / "o"), "--source", f"x={tmp_path / 'nope'}"]) == 1
    assert "audio folder not found" in caplog.text
    assert cli_main(["corpus", str(tmp_path / "o"), "--source", f"x={tmp_path}", "--source-cap", "music=lots"]) == 1
    assert "--source-cap" in caplog.text
