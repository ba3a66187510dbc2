"""Feature cache: segmenting and padding, stored values and stats, resume equality, staleness, bad-file policies."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from hear_sela.config import FRONTEND_PRESETS, FrontendConfig
from hear_sela.data import cache_build as cache_mod
from hear_sela.data.audio import AudioError, load_audio
from hear_sela.data.cache import CacheError, FeatureCache
from hear_sela.data.cache_build import SegmentSpec, build_feature_cache, cut_segments
from hear_sela.data.records import ClipRecord
from hear_sela.frontend import LogMel

SR = 16000
SMALL = {"segment_seconds": 1.0, "hop_seconds": 1.0, "min_segment_seconds": 0.5}


def _write(path, seconds: float, freq: float = 440.0, seed: int = 0) -> ClipRecord:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.02, len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), SR, subtype="FLOAT")
    return ClipRecord(path.stem, str(path), (f"f{int(freq)}",))


def _build_cache(records, cache_dir, **kw) -> FeatureCache:
    kw = {**SMALL, "progress": False, **kw}
    return build_feature_cache(records, kw.pop("frontend", FrontendConfig()), cache_dir, **kw)


def _assert_same(a: FeatureCache, b: FeatureCache) -> None:
    assert a.features.shape == b.features.shape
    assert np.array_equal(np.asarray(a.features), np.asarray(b.features))
    assert a.clips == b.clips
    for name in ("segment_clip", "segment_start", "segment_frames"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.mean, a.std) == (b.mean, b.std)
    strip = {"build_seconds"}
    assert {k: v for k, v in a.manifest.items() if k not in strip} == \
        {k: v for k, v in b.manifest.items() if k not in strip}


# ---------------------------------------------------------------- segmenting


@pytest.mark.parametrize("seconds,seg,hop,min_len,expected", [
    (4.0, 3.0, 1.5, 1.0, [0.0, 1.5]),  # default: the second segment reaches the end, so the walk stops
    (3.0, 3.0, 1.5, 1.0, [0.0]),
    (3.2, 3.0, 1.5, 1.0, [0.0, 1.5]),
    (0.9, 3.0, 1.5, 1.0, []),  # too short for any segment
    (1.0, 3.0, 1.5, 1.0, [0.0]),  # exactly the minimum: kept, zero-padded
    (10.0, 3.0, 1.5, 1.0, [0.0, 1.5, 3.0, 4.5, 6.0, 7.5]),
    (3.4, 3.0, 3.0, 1.0, [0.0]),  # non-overlapping: a 0.4 s tail is dropped
    (4.4, 3.0, 3.0, 1.0, [0.0, 3.0]),  # ... a 1.4 s tail is kept
])
def test_segment_starts(seconds, seg, hop, min_len, expected):
    spec = SegmentSpec.from_seconds(SR, seg, hop, min_len)
    assert [s / SR for s in spec.starts(round(seconds * SR))] == expected


def test_bad_segment_parameters():
    with pytest.raises(CacheError, match="segment"):
        SegmentSpec.from_seconds(SR, 1.0, 0.0, 0.5)
    with pytest.raises(CacheError, match="segment"):
        SegmentSpec.from_seconds(SR, 1.0, 1.0, 2.0)


def test_cut_segments_zero_pads_the_waveform():
    spec = SegmentSpec.from_seconds(SR, 1.0, 1.0, 0.5)
    audio = np.arange(1, 25601, dtype=np.float32)  # 1.6 s, no zeros
    segs = cut_segments(audio, spec, spec.starts(len(audio)))
    assert segs.shape == (2, SR)
    assert np.array_equal(segs[1, :9600], audio[16000:]) and not segs[1, 9600:].any()


# ---------------------------------------------------------------- contents


def test_tiny_cache_layout(tiny_cache, tiny_corpus):
    n_clips = len(tiny_corpus.records)
    assert tiny_cache.features.shape == (2 * n_clips, 64, 101) and tiny_cache.features.dtype == np.float16
    assert isinstance(tiny_cache.features, np.memmap) and not tiny_cache.features.flags.writeable
    assert tiny_cache.clips == tiny_corpus.records
    assert np.array_equal(tiny_cache.segment_clip, np.repeat(np.arange(n_clips), 2))
    assert np.array_equal(tiny_cache.segment_start, np.tile([0.0, 1.0], n_clips))
    assert (tiny_cache.segment_frames == 101).all()
    assert (tiny_cache.frontend.norm_mean, tiny_cache.frontend.norm_std) == (tiny_cache.mean, tiny_cache.std)
    assert tiny_cache.frontend.n_fft == 1024 and tiny_cache.std > 0
    assert sorted(os.listdir(tiny_cache.root)) == [".lock", "features.f16", "manifest.json"]
    assert len(tiny_cache) == 2 * n_clips and tiny_cache[3].shape == (64, 101)


@pytest.mark.parametrize("preset", sorted(FRONTEND_PRESETS))
def test_features_are_the_frontend_log_mel_of_each_zero_padded_segment(tmp_path, preset):
    records = [_write(tmp_path / "a.wav", 2.6, 300.0), _write(tmp_path / "b.wav", 1.2, 1200.0, seed=1)]
    fe = FrontendConfig(**FRONTEND_PRESETS[preset])
    cache = _build_cache(records, tmp_path / "cache", frontend=fe)
    lm = LogMel(fe)
    spec = SegmentSpec.from_seconds(SR, 1.0, 1.0, 0.5)
    expected, frames = [], []
    for r in records:
        audio = load_audio(r.path)
        starts = spec.starts(len(audio))
        expected.append(lm.log_mel(torch.from_numpy(cut_segments(audio, spec, starts))))
        frames += [lm.num_frames(min(spec.segment, len(audio) - s)) for s in starts]
    expected = torch.cat(expected).numpy()  # (N, F, T)
    assert cache.features.shape == expected.shape == (4, 64, lm.num_frames(SR))
    np.testing.assert_allclose(cache.features.astype(np.float32), expected, atol=0.02, rtol=2e-3)  # float16
    assert cache.segment_frames.tolist() == frames  # 2.6 s -> 1.0, 1.0, 0.6 s of real audio; 1.2 s -> 1.0 s
    assert np.array_equal(cache.segment_start, [0.0, 1.0, 2.0, 0.0])
    # the padded tail of the 0.6 s segment is exactly what silence gives: log(eps)
    tail = cache.features[2, :, frames[2] + lm.cfg.n_fft // lm.hop_length:].astype(np.float32)
    np.testing.assert_allclose(tail, math.log(fe.eps), atol=0.02)
    # the stats are over real frames only, un-normalised, in float64
    real = np.concatenate([expected[i, :, :f].ravel() for i, f in enumerate(frames)]).astype(np.float64)
    assert cache.mean == pytest.approx(real.mean(), abs=1e-4) and cache.std == pytest.approx(real.std(), rel=1e-4)
    assert cache.mean > math.log(fe.eps) + 1  # padding did not drag the mean down to silence


# ---------------------------------------------------------------- resume


class _Interrupt(RuntimeError):
    pass


def _interrupt_after(monkeypatch, k: int) -> None:
    """Make the k+1-th decode raise, as a crash (or Ctrl-C) in the middle of a build would."""
    calls = {"n": 0}

    def failing(path, sample_rate=16000):
        calls["n"] += 1
        if calls["n"] > k:
            raise _Interrupt(f"injected after {k} clips")
        return load_audio(path, sample_rate)

    monkeypatch.setattr(cache_mod, "load_audio", failing)


def test_resume_after_an_interrupted_build_equals_an_uninterrupted_build(tiny_corpus, tmp_path, monkeypatch):
    records = tiny_corpus.records[:18]
    reference = _build_cache(records, tmp_path / "ref", chunk_clips=4, batch_size=5)
    cache_dir = tmp_path / "resumed"
    _interrupt_after(monkeypatch, 11)  # chunks 0-3 and 4-7 complete; 8-10 decoded but never written
    with pytest.raises(_Interrupt):
        _build_cache(records, cache_dir, chunk_clips=4, batch_size=5)
    monkeypatch.undo()
    progress = json.loads((cache_dir / "progress.json").read_text())
    assert progress["clips_done"] == 8 and progress["segments_done"] == 16
    assert not (cache_dir / "manifest.json").exists()
    with pytest.raises(CacheError, match="interrupted build"):
        FeatureCache.open(cache_dir)
    # a process killed while writing its next chunk leaves bytes past the checkpoint: they must be discarded
    with open(cache_dir / "features.f16", "ab") as f:
        f.write(b"\x00\x3c" * 5000)
    with open(cache_dir / "clips.partial.jsonl", "a") as f:
        f.write('{"i": 8, "status": "ok", "samp')
    resumed = _build_cache(records, cache_dir, chunk_clips=16, batch_size=64)  # resume keeps the original chunking
    _assert_same(resumed, reference)
    assert sorted(os.listdir(cache_dir)) == [".lock", "features.f16", "manifest.json"]


def test_workers_give_the_same_cache(tiny_corpus, tmp_path):
    records = tiny_corpus.records[:10]
    _assert_same(_build_cache(records, tmp_path / "w2", num_workers=2, chunk_clips=3),
                 _build_cache(records, tmp_path / "w0", num_workers=0, chunk_clips=3))


def test_complete_cache_is_reused(tiny_corpus, tmp_path, monkeypatch, caplog):
    records = tiny_corpus.records[:4]
    with caplog.at_level(logging.INFO):
        first = _build_cache(records, tmp_path / "c")
    assert "feature cache built:" in caplog.text and "cache reused" not in caplog.text
    caplog.clear()
    monkeypatch.setattr(cache_mod, "load_audio", lambda *a, **k: pytest.fail("a complete cache was rebuilt"))
    with caplog.at_level(logging.INFO):
        _assert_same(_build_cache(records, tmp_path / "c"), first)
    # the log says it was reused (it once said "built in N s" at every load, which read as a rebuild)
    assert "feature cache reused (nothing rebuilt):" in caplog.text and "cache built:" not in caplog.text


_HOLD_LOCK = """
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_second_builder_waits_for_the_first(tiny_corpus, tmp_path):
    pytest.importorskip("fcntl")  # POSIX only, like the lock itself
    root = tmp_path / "c"
    root.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(root / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # "another process" is building
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = {}
        worker = threading.Thread(target=lambda: result.update(cache=_build_cache(tiny_corpus.records[:2], root)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not (root / "manifest.json").exists()
    finally:
        holder.communicate("go\n", timeout=30)
    worker.join(timeout=60)
    assert not worker.is_alive() and len(result["cache"]) == 4


_KILLED_BUILD = """
import sys, time
from hear_sela.config import FrontendConfig
from hear_sela.data import cache_build
from hear_sela.data.synth import write_synth_corpus

slow = cache_build.load_audio
def load_slowly(path, sample_rate=16000):
    time.sleep(0.1)
    return slow(path, sample_rate)
cache_build.load_audio = load_slowly
records = write_synth_corpus(sys.argv[1], 2, 2.0, seed=0, progress=False)[:12]
cache_build.build_feature_cache(records, FrontendConfig(), sys.argv[2], 1.0, 1.0, 0.5, num_workers=2,
                                chunk_clips=2, progress=False)
"""


def test_resume_after_the_builder_is_killed_with_workers_running(tiny_corpus, tmp_path):
    """SIGKILL mid-build with DataLoader workers alive: the workers must not outlive it (and hold the cache), and
    the resumed cache must equal an uninterrupted one."""
    cache_dir = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(tiny_corpus.root), str(cache_dir)])
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        progress = cache_dir / "progress.json"
        if progress.is_file() and json.loads(progress.read_text())["clips_done"] >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished (or failed) before it could be killed"
    proc.kill()
    proc.wait()
    time.sleep(1.0)
    orphans = [int(p) for p in os.listdir("/proc") if p.isdigit() and str(cache_dir) in _cmdline(p)]
    for pid in orphans:  # clean up before failing, so a regression does not leave processes behind
        os.kill(pid, signal.SIGKILL)
    assert orphans == [], "DataLoader workers outlived the killed build"
    records = tiny_corpus.records[:12]
    resumed = _build_cache(records, cache_dir, num_workers=2, chunk_clips=2)
    _assert_same(resumed, _build_cache(records, tmp_path / "ref", num_workers=0, chunk_clips=2))


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.gpu
def test_cuda_build_matches_cpu(tiny_corpus, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    records = tiny_corpus.records[:6]
    cpu = _build_cache(records, tmp_path / "cpu")
    gpu = _build_cache(records, tmp_path / "gpu", device="cuda")
    np.testing.assert_allclose(np.asarray(gpu.features, np.float32), np.asarray(cpu.features, np.float32),
                               atol=0.02, rtol=2e-3)
    assert gpu.mean == pytest.approx(cpu.mean, abs=1e-3) and gpu.std == pytest.approx(cpu.std, abs=1e-3)


# ---------------------------------------------------------------- staleness


def test_stale_frontend_is_refused_or_rebuilt(tiny_corpus, tmp_path):
    records = tiny_corpus.records[:4]
    _build_cache(records, tmp_path / "c")
    other = FrontendConfig(**FRONTEND_PRESETS["sela_audio"])
    with pytest.raises(CacheError) as e:
        _build_cache(records, tmp_path / "c", frontend=other, on_stale="error")
    assert "stale feature cache" in str(e.value) and "n_fft 1024 -> 512" in str(e.value)
    rebuilt = _build_cache(records, tmp_path / "c", frontend=other, on_stale="rebuild")
    assert rebuilt.features.shape == (8, 64, 51) and rebuilt.frontend.n_fft == 512
    # normalisation stats in the given frontend do not make a cache stale
    with_stats = FrontendConfig(**{**FRONTEND_PRESETS["sela_audio"], "norm_mean": 1.0, "norm_std": 2.0})
    assert _build_cache(records, tmp_path / "c", frontend=with_stats, on_stale="error").mean == rebuilt.mean


@pytest.mark.parametrize("change,phrase", [
    ("clips", "clip list: 4 -> 3"),
    ("segment", "hop_seconds 1.0 -> 0.5"),
    ("source", "source"),
])
def test_stale_clip_list_segments_or_source(tiny_corpus, tmp_path, change, phrase):
    records = tiny_corpus.records[:4]
    _build_cache(records, tmp_path / "c", source_id="a")
    kw = {"source_id": "a", "on_stale": "error"}
    if change == "clips":
        records = records[:3]
    elif change == "segment":
        kw["hop_seconds"] = 0.5
    else:
        kw["source_id"] = "b"
    with pytest.raises(CacheError, match=phrase):
        _build_cache(records, tmp_path / "c", **kw)


def test_stale_interrupted_build_is_also_detected(tiny_corpus, tmp_path, monkeypatch):
    records = tiny_corpus.records[:6]
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(_Interrupt):
        _build_cache(records, tmp_path / "c", chunk_clips=2)
    monkeypatch.undo()
    with pytest.raises(CacheError, match="stale interrupted cache build"):
        _build_cache(records[:5], tmp_path / "c", on_stale="error")
    assert len(_build_cache(records[:5], tmp_path / "c")) == 10


def test_changed_labels_update_the_manifest_without_rebuilding(tiny_corpus, tmp_path):
    records = tiny_corpus.records[:3]
    first = _build_cache(records, tmp_path / "c")
    stamp = os.stat(tmp_path / "c" / "features.f16").st_mtime_ns
    relabelled = [ClipRecord(r.clip_id, r.path, ("x", "y")) for r in records]
    again = _build_cache(relabelled, tmp_path / "c", on_stale="error")
    assert [c.labels for c in again.clips] == [("x", "y")] * 3
    assert os.stat(tmp_path / "c" / "features.f16").st_mtime_ns == stamp
    assert np.array_equal(np.asarray(again.features), np.asarray(first.features))


# ---------------------------------------------------------------- bad input


def _make_bad(tmp_path, case: str) -> tuple[ClipRecord, str]:
    path = tmp_path / f"bad_{case}.wav"
    if case == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), SR)
        phrase = "empty"
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(100))
        phrase = "corrupt"
    elif case == "nan":
        x = np.full(SR, 0.1, dtype=np.float32)
        x[5] = np.nan
        sf.write(path, x, SR, subtype="FLOAT")
        phrase = "non-finite"
    elif case == "unreadable_path":
        path = tmp_path / "no_such_dir" / "bad.wav"
        phrase = "not found"
    else:
        raise AssertionError(case)
    return ClipRecord(f"bad_{case}", str(path), ()), phrase


BAD = ["empty", "corrupt", "nan", "unreadable_path"]


@pytest.mark.parametrize("case", BAD)
def test_bad_file_skipped_with_path_reason_and_count(tmp_path, case, caplog):
    good = [_write(tmp_path / f"g{i}.wav", 1.2, 200.0 * (i + 1), seed=i) for i in range(3)]
    bad, phrase = _make_bad(tmp_path, case)
    with caplog.at_level(logging.WARNING):
        cache = _build_cache([good[0], bad, good[1], good[2]], tmp_path / "c", on_bad_file="skip", chunk_clips=2)
    assert [c.clip_id for c in cache.clips] == ["g0", "g1", "g2"] and len(cache) == 3
    assert np.array_equal(cache.segment_clip, [0, 1, 2])  # indices into the kept clips
    assert len(cache.bad_files) == 1
    entry = cache.bad_files[0]
    assert entry["path"] == bad.path and entry["clip_id"] == bad.clip_id and phrase in entry["reason"]
    assert bad.path in caplog.text and "skipped 1 bad audio file(s) of 4" in caplog.text
    assert np.isfinite(np.asarray(cache.features, dtype=np.float32)).all()
    with pytest.raises(CacheError, match="bad file"):  # a skip-built cache does not satisfy on_bad_file=error
        _build_cache([good[0], bad, good[1], good[2]], tmp_path / "c", on_bad_file="error")


@pytest.mark.parametrize("case", BAD)
def test_bad_file_stops_the_build_and_a_fixed_file_resumes(tmp_path, case):
    good = [_write(tmp_path / f"g{i}.wav", 1.2, 200.0 * (i + 1), seed=i) for i in range(3)]
    bad, phrase = _make_bad(tmp_path, case)
    records = [good[0], good[1], bad, good[2]]
    with pytest.raises(AudioError) as e:
        _build_cache(records, tmp_path / "c", on_bad_file="error", chunk_clips=1)
    assert e.value.path == bad.path and phrase in e.value.reason
    assert not (tmp_path / "c" / "manifest.json").exists()
    assert json.loads((tmp_path / "c" / "progress.json").read_text())["clips_done"] == 2
    fixed = _write(tmp_path / "fixed.wav", 1.0, 800.0)
    os.makedirs(os.path.dirname(bad.path), exist_ok=True)
    os.replace(fixed.path, bad.path)
    cache = _build_cache(records, tmp_path / "c", on_bad_file="error", chunk_clips=1)
    assert [c.clip_id for c in cache.clips] == ["g0", "g1", bad.clip_id, "g2"] and not cache.bad_files


def test_too_short_clips_and_nothing_left(tmp_path):
    good = _write(tmp_path / "ok.wav", 1.0)
    short = _write(tmp_path / "short.wav", 0.3)
    cache = _build_cache([good, short], tmp_path / "c")
    assert [c.clip_id for c in cache.clips] == ["ok"]
    assert [s["clip_id"] for s in cache.manifest["too_short"]] == ["short"]
    bad, _ = _make_bad(tmp_path, "corrupt")
    with pytest.raises(CacheError, match="no segments"):
        _build_cache([short, bad], tmp_path / "d")


def test_open_reports_missing_or_damaged_caches(tiny_corpus, tmp_path):
    with pytest.raises(CacheError, match="manifest.json is missing"):
        FeatureCache.open(tmp_path / "nothing")
    _build_cache(tiny_corpus.records[:2], tmp_path / "c")
    os.truncate(tmp_path / "c" / "features.f16", 1000)
    with pytest.raises(CacheError, match="damaged"):
        FeatureCache.open(tmp_path / "c")


def test_argument_checks(tmp_path, tiny_corpus):
    rec = tiny_corpus.records[0]
    with pytest.raises(CacheError, match="on_bad_file"):
        _build_cache([rec], tmp_path / "c", on_bad_file="ignore")
    with pytest.raises(CacheError, match="on_stale"):
        _build_cache([rec], tmp_path / "c", on_stale="maybe")
    with pytest.raises(CacheError, match="more than once"):
        _build_cache([rec, rec], tmp_path / "c")
    with pytest.raises(CacheError, match="no clips"):
        _build_cache([], tmp_path / "c")


def test_reading_a_cache_imports_no_builder():
    code = ("import sys; import hear_sela.data.cache; "
            "bad = [m for m in ('tqdm', 'torch.utils.data', 'hear_sela.data.cache_build') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
