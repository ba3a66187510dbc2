"""Build a pretraining corpus of 16 kHz mono clips from folders of audio (e.g. extracted Debian game-data packages).

Pipeline per source, in a fixed order so the same inputs always give the same corpus:
1. List the source's audio files (`list_audio_files`) and visit them in the order of a hash of their relative path:
   a deterministic shuffle, so a source cut short by its hours cap is still sampled across all its folders.
2. Decode, downmix and resample with the project's reader (`load_audio`); a file it refuses is named and skipped.
3. Exact duplicates: SHA-1 of the decoded 16 kHz float32 signal, across all sources.
4. Trim leading/trailing audio quieter than `trim_db` below the file's peak (gain-invariant), then near duplicates:
   a spectro-temporal fingerprint of the trimmed signal, 32 ms frames x 16 log-spaced bands of power in dB
   relative to the file's maximum, floored at -60 dB. Peak-relative dB ignores gain, trimming ignores padded silence,
   and 32 ms x 1/3-octave-ish resolution ignores codec and resampling noise, while two sounds differing in pitch,
   timbre or rhythm land far apart. The fingerprint only finds candidates: same number of frames (+-1) and a mean
   absolute difference below `near_dup_db` (2 dB). Different takes of one sound (two footsteps, two arrow hits) can
   pass that, so a candidate is a near duplicate only if the waveforms also match: peak normalised
   cross-correlation >= `near_dup_corr` (0.9; a copy with other gain or padding gives 1.0, a re-encode > 0.95,
   distinct takes measured 0.27-0.81 on the Debian sources).
5. Cut the trimmed signal into ceil(L / max_clip_seconds) equal clips (so no tiny remainder), drop clips shorter
   than `min_clip_seconds` or with RMS below `silence_db` dBFS (near-silent), and stop the source once it reaches its
   hours cap (its own `max_hours`, the global per-source cap, its category's per-source cap, and what is left of
   its category's cap). At most `max_seconds_per_file` is taken from one file (its first clips), so a source of
   long songs or ambience loops contributes many files rather than a few.
6. Write OUT/<source>/<path relative to the source root>_<k>.flac (16-bit), OUT/labels.csv (fname relative to OUT,
   labels = package, source/folder and category) and OUT/manifest.json (per source: files, clips, hours, licence,
   package version, what was dropped and why).
Legend: S samples, F fingerprint frames, B bands.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from hear_sela.data.audio import AudioError, load_audio
from hear_sela.data.folder import list_audio_files
from hear_sela.data.records import ClipRecord, DataError, write_labels_csv

log = logging.getLogger(__name__)

FP_FRAME = 512  # fingerprint frame: 32 ms at 16 kHz
FP_BANDS = 16
FP_FLOOR_DB = -60.0
FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}


@dataclass(frozen=True)
class SourceSpec:
    """One folder of audio that becomes OUT/<name>/; package/licence/version are recorded in the manifest."""

    name: str
    root: str
    category: str = ""  # coarse kind (music, speech, sfx, ...): a label and the key of a category cap
    package: str = ""
    licence: str = ""
    version: str = ""
    max_hours: float | None = None
    exclude: tuple[str, ...] = ()  # fnmatch patterns on the path relative to root


@dataclass(frozen=True)
class CorpusConfig:
    sample_rate: int = 16000
    max_clip_seconds: float = 10.0
    min_clip_seconds: float = 1.0
    silence_db: float = -60.0  # clip RMS (dBFS) below which a clip is near-silent and dropped
    trim_db: float = -50.0  # file edges quieter than this relative to the file's peak are trimmed
    near_dup_db: float = 2.0
    near_dup_corr: float = 0.9
    max_seconds_per_file: float | None = None
    max_hours_per_source: float = 1.0
    category_hours: dict[str, float] = field(default_factory=dict)
    # cap on each source of a category (e.g. music: 0.35), so that the category's cap is spread over many sources
    # rather than eaten by the first ones in the list
    category_source_hours: dict[str, float] = field(default_factory=dict)
    format: str = "flac"


@dataclass
class Clip:
    fname: str  # relative to OUT, with extension
    source: str
    file: str  # the source file it was cut from
    start: int  # first sample in the decoded 16 kHz signal
    labels: tuple[str, ...]
    audio: np.ndarray | None = None  # (S,) float32; None in a dry run


@dataclass
class SourceReport:
    spec: SourceSpec
    files_seen: int = 0
    files_used: int = 0
    files_not_reached: int = 0  # left after the cap was reached
    clips: int = 0
    seconds: float = 0.0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    too_short: int = 0
    silent_clips: int = 0
    excluded: int = 0
    bad_files: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "spec"}
        d.update(package=self.spec.package, version=self.spec.version, licence=self.spec.licence,
                 category=self.spec.category, root=self.spec.root, hours=round(self.seconds / 3600, 4),
                 seconds=round(self.seconds, 3))
        return d


def trim_silence(x: np.ndarray, rel_db: float) -> np.ndarray:
    """(S,) -> (S',) without the leading/trailing samples quieter than `rel_db` below the peak; all-zero -> (0,)."""
    a = np.abs(x)
    peak = float(a.max()) if a.size else 0.0
    if peak == 0.0:
        return x[:0]
    loud = np.flatnonzero(a >= peak * 10 ** (rel_db / 20))
    return x[loud[0]:loud[-1] + 1]


def _band_edges(n_bins: int, bands: int) -> np.ndarray:
    """Log-spaced rfft bin edges from bin 1 (DC excluded) to n_bins, strictly increasing."""
    edges = np.unique(np.round(np.geomspace(1, n_bins, bands + 1)).astype(int))
    return edges


_EDGES = _band_edges(FP_FRAME // 2 + 1, FP_BANDS)
_WINDOW = np.hanning(FP_FRAME).astype(np.float32)


def fingerprint(x: np.ndarray) -> np.ndarray:
    """(S,) trimmed signal -> (F, B) band power in dB relative to its maximum, floored at FP_FLOOR_DB."""
    n = max(1, math.ceil(len(x) / FP_FRAME))
    frames = np.zeros(n * FP_FRAME, np.float32)
    frames[:len(x)] = x
    spec = np.abs(np.fft.rfft(frames.reshape(n, FP_FRAME) * _WINDOW, axis=1)) ** 2  # (F, FP_FRAME // 2 + 1)
    bands = np.add.reduceat(spec, _EDGES[:-1], axis=1)  # (F, B)
    db = 10 * np.log10(bands + 1e-20)
    return np.maximum(db - db.max(), FP_FLOOR_DB).astype(np.float32)


class NearDuplicateIndex:
    """Fingerprints bucketed by frame count; `find` returns the first stored key within `max_db` mean distance."""

    def __init__(self, max_db: float):
        self.max_db = max_db
        self._buckets: dict[int, list[tuple[np.ndarray, str]]] = {}

    def candidates(self, fp: np.ndarray) -> list[str]:  # fp: (F, B)
        n, out = len(fp), []
        for m in (n, n - 1, n + 1):
            for other, key in self._buckets.get(m, ()):
                k = min(n, m)
                if float(np.abs(fp[:k] - other[:k]).mean()) < self.max_db:
                    out.append(key)
        return out

    def add(self, fp: np.ndarray, key: str) -> None:
        self._buckets.setdefault(len(fp), []).append((fp, key))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """(S_a,), (S_b,) -> peak of their normalised cross-correlation over all lags, in [0, 1] (1: same up to gain)."""
    from scipy.signal import fftconvolve

    energy = float(np.sqrt(np.sum(np.square(a, dtype=np.float64)) * np.sum(np.square(b, dtype=np.float64))))
    if energy == 0.0:
        return 0.0
    return float(np.abs(fftconvolve(a, b[::-1])).max()) / energy


def cut_clips(x: np.ndarray, sample_rate: int, max_seconds: float) -> list[tuple[int, np.ndarray]]:
    """(S,) -> [(start, (S_k,))]: ceil(S / max) contiguous clips of equal length (+-1 sample), each <= max."""
    max_len = int(round(max_seconds * sample_rate))
    n = max(1, math.ceil(len(x) / max_len))
    bounds = [round(i * len(x) / n) for i in range(n + 1)]
    return [(bounds[i], x[bounds[i]:bounds[i + 1]]) for i in range(n)]


def _order_key(rel: str) -> str:
    return hashlib.sha1(rel.encode()).hexdigest()


def _label(text: str) -> str:
    return text.replace(",", "_").strip()


def source_cap_seconds(spec: SourceSpec, cfg: CorpusConfig) -> float:
    """The smallest of the source's own cap, the global per-source cap and its category's per-source cap."""
    caps = [cfg.max_hours_per_source, spec.max_hours, cfg.category_source_hours.get(spec.category)]
    return min(h for h in caps if h is not None) * 3600


def collect(sources: list[SourceSpec], cfg: CorpusConfig, keep_audio: bool = True
            ) -> tuple[list[Clip], list[SourceReport]]:
    """Run steps 1-5 over `sources` in order; clips carry their audio unless `keep_audio` is False (dry run)."""
    if cfg.format not in FORMATS:
        raise DataError(f"unknown corpus format {cfg.format!r}; use one of {sorted(FORMATS)}")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DataError(f"source names must be unique, got {names}")
    exact: dict[str, str] = {}
    kept_paths: dict[str, Path] = {}  # key -> file, to re-read a near-duplicate candidate
    near = NearDuplicateIndex(cfg.near_dup_db)
    category_left = {k: v * 3600 for k, v in cfg.category_hours.items()}
    min_len = int(round(cfg.min_clip_seconds * cfg.sample_rate))
    silence = 10 ** (cfg.silence_db / 20)
    clips: list[Clip] = []
    reports: list[SourceReport] = []
    for spec in sources:
        rep = SourceReport(spec)
        reports.append(rep)
        root = Path(spec.root)
        files = list_audio_files(root)
        rels = [p.relative_to(root).as_posix() for p in files]
        order = sorted(range(len(files)), key=lambda i: _order_key(rels[i]))
        cap = source_cap_seconds(spec, cfg)
        if spec.category in category_left:
            cap = min(cap, category_left[spec.category])
        used_stems: set[str] = set()
        rep.files_seen = len(files)
        for pos, i in enumerate(order):
            path, rel = files[i], rels[i]
            if rep.seconds >= cap:
                rep.files_not_reached = len(order) - pos
                break
            if any(fnmatch.fnmatch(rel, pat) for pat in spec.exclude):
                rep.excluded += 1
                continue
            key = f"{spec.name}/{rel}"
            try:
                x = load_audio(path, cfg.sample_rate)  # (S,)
            except AudioError as e:
                log.warning("skipped %s", e)
                rep.bad_files.append({"path": str(path), "reason": e.reason})
                continue
            digest = hashlib.sha1(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()
            if digest in exact:
                rep.exact_duplicates += 1
                rep.duplicates.append({"file": key, "duplicate_of": exact[digest], "kind": "exact"})
                continue
            exact[digest] = key
            x = trim_silence(x, cfg.trim_db)
            if len(x) < min_len:
                rep.too_short += 1
                continue
            fp = fingerprint(x)
            twin = next((k for k in near.candidates(fp) if similarity(
                x, trim_silence(load_audio(kept_paths[k], cfg.sample_rate), cfg.trim_db)) >= cfg.near_dup_corr),
                None)
            if twin is not None:
                rep.near_duplicates += 1
                rep.duplicates.append({"file": key, "duplicate_of": twin, "kind": "near"})
                continue
            near.add(fp, key)
            kept_paths[key] = path
            stem = Path(rel).with_suffix("").as_posix()
            if stem in used_stems:  # x.ogg and x.wav in one folder
                stem = f"{stem}_{Path(rel).suffix.lstrip('.').lower()}"
            used_stems.add(stem)
            folder = Path(rel).parent.as_posix()
            labels = tuple(dict.fromkeys(_label(t) for t in (
                spec.package or spec.name, spec.name if folder == "." else f"{spec.name}/{folder}", spec.category)
                if _label(t)))
            n_kept, file_seconds = 0, 0.0
            for k, (start, piece) in enumerate(cut_clips(x, cfg.sample_rate, cfg.max_clip_seconds)):
                if rep.seconds >= cap or (cfg.max_seconds_per_file is not None
                                          and file_seconds >= cfg.max_seconds_per_file):
                    break
                if len(piece) < min_len:
                    rep.too_short += 1
                    continue
                if float(np.sqrt(np.mean(np.square(piece, dtype=np.float64)))) < silence:
                    rep.silent_clips += 1
                    continue
                fname = f"{spec.name}/{stem}_{k:02d}.{cfg.format}"
                clips.append(Clip(fname, spec.name, str(path), start, labels, piece if keep_audio else None))
                rep.clips += 1
                n_kept += 1
                rep.seconds += len(piece) / cfg.sample_rate
                file_seconds += len(piece) / cfg.sample_rate
            rep.files_used += n_kept > 0
        if spec.category in category_left:
            category_left[spec.category] -= rep.seconds
        log.info("%s: %d files, %d clips, %.2f h (%d exact + %d near duplicates, %d bad, %d not reached)",
                 spec.name, rep.files_used, rep.clips, rep.seconds / 3600, rep.exact_duplicates,
                 rep.near_duplicates, len(rep.bad_files), rep.files_not_reached)
    return clips, reports


def manifest(reports: list[SourceReport], cfg: CorpusConfig) -> dict:
    """The corpus summary written to OUT/manifest.json (no timestamps, so rebuilds are byte-identical)."""
    return {
        "config": asdict(cfg),
        "sources": {r.spec.name: r.as_json() for r in reports},
        "totals": {
            "clips": sum(r.clips for r in reports),
            "hours": round(sum(r.seconds for r in reports) / 3600, 4),
            "exact_duplicates": sum(r.exact_duplicates for r in reports),
            "near_duplicates": sum(r.near_duplicates for r in reports),
            "bad_files": sum(len(r.bad_files) for r in reports),
        },
    }


def write_corpus(out: str | Path, clips: list[Clip], reports: list[SourceReport], cfg: CorpusConfig) -> dict:
    """Write the clips, OUT/labels.csv and OUT/manifest.json (last: a folder without it is incomplete)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    fmt, subtype = FORMATS[cfg.format]
    for c in clips:
        if c.audio is None:
            raise DataError(f"clip {c.fname} has no audio (collected as a dry run)")
        dest = out / c.fname
        dest.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dest), np.clip(c.audio, -1.0, 1.0), cfg.sample_rate, format=fmt, subtype=subtype)
    write_labels_csv(out / "labels.csv", [ClipRecord(c.fname, str(out / c.fname), c.labels) for c in clips])
    summary = manifest(reports, cfg)
    (out / "manifest.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def load_sources(path: str | Path, base: str | Path) -> tuple[list[SourceSpec], dict]:
    """Sources from a YAML file (see scripts/real_corpus_sources.yaml); roots relative to `base`.

    Returns the specs and the file's top-level settings (max_hours_per_source, category_hours,
    category_source_hours, max_seconds_per_file) for CorpusConfig.
    A source's package version is read from <base>/<package>/.version when the file is there.
    """
    from hear_sela.config import load_yaml

    path, base = Path(path), Path(base)
    if not path.is_file():
        raise DataError(f"sources file not found: {path}")
    doc = load_yaml(path.read_text(), str(path)) or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), list):
        raise DataError(f"{path}: expected a mapping with a 'sources' list")
    known = set(SourceSpec.__dataclass_fields__)
    specs = []
    for i, entry in enumerate(doc["sources"]):
        if not isinstance(entry, dict) or not {"name", "root"} <= set(entry) or set(entry) - known:
            raise DataError(f"{path}: source #{i + 1} must have name and root and only the keys {sorted(known)}; "
                            f"got {entry!r}")
        entry = dict(entry)
        entry["root"] = str(base / entry["root"])
        entry["exclude"] = tuple(entry.get("exclude") or ())
        version_file = base / entry.get("package", "") / ".version"
        if entry.get("package") and not entry.get("version") and version_file.is_file():
            entry["version"] = version_file.read_text().strip()
        specs.append(SourceSpec(**entry))
    settings = {k: doc[k] for k in ("max_hours_per_source", "category_hours", "category_source_hours",
                                    "max_seconds_per_file") if k in doc}
    return specs, settings
