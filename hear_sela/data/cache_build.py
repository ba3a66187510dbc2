"""Building the feature cache (layout and reader: `data.cache`): every clip decoded once, cut into segments,
log-mel'd and appended to the float16 memmap, resumably.

Segmenting (audio SeLa code: 3 s segments, 1.5 s hop, short ones dropped, the rest zero-padded): segment k starts at
k * hop and the walk stops after the first segment that reaches the clip's end, so no segment lies wholly inside the
previous one. A segment with less than `min_segment_seconds` of real audio is dropped (a clip shorter than that gives
none: counted as "too short"). The last kept segment is zero-padded IN THE WAVEFORM, before the log-mel: its tail
is then exactly what digital silence gives, log(0 + eps) = log(eps) in every bin, in the same un-normalised space as
everything else, and it normalises like any silent frame. (Padding the log-mel instead with 0, or with log(eps)
after normalisation, would inject values that no real input produces.) Frames whose centre lies past the real audio
are left out of the mean/std, so padding does not bias the statistics; `FeatureCache.segment_frames` gives each
segment's count of such real frames.

Resume: clips are processed in fixed chunks of consecutive clips. After each chunk the features and the per-clip log
are fsync'ed and progress.json (counters, byte sizes, float64 stat sums) is replaced atomically. A rerun with the same
fingerprint truncates the data files to the recorded sizes and continues with the next chunk; since chunk boundaries
and the order of every computation are the same, the result equals an uninterrupted build byte for byte.

Staleness: the fingerprint covers the frontend (without norm stats), the segment parameters, the ordered clip list
(ids and paths, not file contents) and a source id (the synth corpus parameters). A cache or partial build with
another fingerprint is rebuilt (on_stale="rebuild", only our own files are deleted) or refused ("error") with what
differs. Changed labels alone only rewrite the manifest.

Bad files (missing, corrupt, empty, NaN/inf: see data/audio.py): on_bad_file="skip" logs each with path and reason,
records it in the manifest and logs the count at the end; "error" stops at the first (completed chunks stay on disk,
so a rerun after fixing the file resumes).
Legend: N segments, F mel bins, T frames per segment, S samples.

"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hear_sela.config import FrontendConfig
from hear_sela.data.audio import AudioError, load_audio
from hear_sela.data.cache import (
    CACHE_FORMAT,
    CACHE_VERSION,
    CLIP_LOG,
    FEATURES,
    LOCK,
    MANIFEST,
    NORM_FIELDS,
    OWN_FILES,
    PROGRESS,
    CacheError,
    FeatureCache,
    read_cache_json,
)
from hear_sela.data.records import ClipRecord
from hear_sela.fileio import DiskFullError, FileSizeLimitError, exclusive_lock, write_json
from hear_sela.frontend import LogMel

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- segmenting


@dataclass(frozen=True)
class SegmentSpec:
    """Segment geometry in samples at the frontend's sample rate."""

    segment: int
    hop: int
    min_length: int
    pad_short: bool = False  # a clip shorter than min_length gives one zero-padded segment

    @classmethod
    def from_seconds(cls, sample_rate: int, segment_seconds: float, hop_seconds: float,
                     min_segment_seconds: float, pad_short: bool = False) -> SegmentSpec:
        spec = cls(round(segment_seconds * sample_rate), round(hop_seconds * sample_rate),
                   round(min_segment_seconds * sample_rate), pad_short)
        if spec.segment <= 0 or spec.hop <= 0 or not 0 < spec.min_length <= spec.segment:
            raise CacheError(f"bad segment parameters: segment {segment_seconds}s, hop {hop_seconds}s, min "
                             f"{min_segment_seconds}s (need segment > 0, hop > 0, 0 < min <= segment)")
        return spec

    def starts(self, num_samples: int) -> list[int]:
        """Start samples of the kept segments of a clip of `num_samples` samples."""
        out, start = [], 0
        while True:
            if min(self.segment, num_samples - start) >= self.min_length:
                out.append(start)
            if start + self.segment >= num_samples:
                return [0] if not out and self.pad_short and num_samples > 0 else out
            start += self.hop


def cut_segments(audio: np.ndarray, spec: SegmentSpec, starts: list[int]) -> np.ndarray:
    """(S,) -> (len(starts), spec.segment) float32, the last one zero-padded in the waveform."""
    out = np.zeros((len(starts), spec.segment), dtype=np.float32)
    for i, s in enumerate(starts):
        piece = audio[s:s + spec.segment]
        out[i, :len(piece)] = piece
    return out


# ---------------------------------------------------------------- building


class _ClipAudio(Dataset):
    """Decodes clips in DataLoader workers; a bad file comes back as its reason, not as an exception."""

    def __init__(self, records: list[ClipRecord], sample_rate: int):
        self.records, self.sample_rate = records, sample_rate

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, load_audio(self.records[i].path, self.sample_rate), None
        except AudioError as e:
            return i, None, e.reason


def _identity(x):
    return x


def _frontend_key(cfg: FrontendConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in NORM_FIELDS}


def _relative(path: str | Path, root: str | Path | None) -> str:
    """`path` relative to `root` when it lies inside it (so a copied or moved data folder keeps its identity), else
    as given."""
    if root is None:
        return str(path)
    p, r = os.path.abspath(path), os.path.abspath(root)
    return os.path.relpath(p, r) if p.startswith(r.rstrip(os.sep) + os.sep) else str(path)


def _identity_parts(records: list[ClipRecord], frontend: FrontendConfig, seg: dict[str, Any],
                    source_id: str, data_root: str | Path | None = None) -> dict[str, Any]:
    """The identity of a cache and its fingerprint. With `data_root`, clip paths count relative to it (the
    fingerprint of a copied run is its original's); "legacy_fingerprint" (not stored) is the one caches and
    checkpoints written before that used, over the paths as given, still accepted as the same cache."""
    def parts_with(root: str | Path | None) -> dict[str, Any]:
        clips = [[r.clip_id, _relative(r.path, root)] for r in records]
        parts = {"version": CACHE_VERSION, "frontend": _frontend_key(frontend), "segment": seg,
                 "clips_sha": hashlib.sha256(json.dumps(clips).encode()).hexdigest(), "n_input_clips": len(records),
                 "source_id": source_id}
        if root is not None:
            parts["paths"] = "relative to the data root"
        parts["fingerprint"] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        return parts

    parts = parts_with(data_root)
    return {**parts, "legacy_fingerprint": parts_with(None)["fingerprint"]}


def same_cache(fingerprint: str | None, ident: dict[str, Any]) -> bool:
    """Whether a stored fingerprint (manifest, checkpoint) is that of the cache `ident` describes."""
    return fingerprint is not None and fingerprint in (ident["fingerprint"], ident["legacy_fingerprint"])


def segment_meta(frontend_cfg: FrontendConfig, segment_seconds: float, hop_seconds: float,
                 min_segment_seconds: float, pad_short: bool = False) -> tuple[SegmentSpec, dict[str, Any]]:
    """The segment geometry and its manifest entry (part of the cache fingerprint)."""
    spec = SegmentSpec.from_seconds(frontend_cfg.sample_rate, segment_seconds, hop_seconds, min_segment_seconds,
                                    pad_short)
    meta = {"segment_seconds": segment_seconds, "hop_seconds": hop_seconds,
            "min_segment_seconds": min_segment_seconds, "segment_samples": spec.segment,
            "hop_samples": spec.hop, "min_samples": spec.min_length,
            "frames": LogMel(frontend_cfg).num_frames(spec.segment)}
    if pad_short:  # only when on, so caches built before the setting existed keep their fingerprint
        meta["pad_short"] = True
    return spec, meta


def cache_identity(records: list[ClipRecord], frontend_cfg: FrontendConfig, segment_seconds: float = 3.0,
                   hop_seconds: float = 1.5, min_segment_seconds: float = 1.0, pad_short: bool = False,
                   source_id: str = "", data_root: str | Path | None = None) -> dict[str, Any]:
    """What decides a cache's content, with its fingerprint: the cache a build of these arguments would hold."""
    _, seg_meta = segment_meta(frontend_cfg, segment_seconds, hop_seconds, min_segment_seconds, pad_short)
    return _identity_parts(records, frontend_cfg, seg_meta, source_id, data_root)


def describe_change(old: dict[str, Any], new: dict[str, Any], old_paths: list[str] | None,
                    records: list[ClipRecord], shown: int = 3) -> str:
    """How the cache `new` (an identity) differs from `old` (a manifest or identity): settings, and the files added
    and removed when the old clip list `old_paths` (every input clip's path) is known."""
    parts = [d for d in _differences(old, new).split("; ") if not d.startswith("clip list")]
    if old.get("clips_sha") != new["clips_sha"]:
        if old_paths is None:
            parts.append(f"clip list: {old.get('n_input_clips')} -> {new['n_input_clips']} clips")
        else:
            before, now = set(old_paths), {str(r.path) for r in records}
            for word, names in (("added", sorted(now - before)), ("removed", sorted(before - now))):
                if names:
                    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
                    parts.append(f"{len(names)} file(s) {word} ({', '.join(names[:shown])}{more})")
            if not before ^ now:
                parts.append("clip ids or order changed")
    return "; ".join(p for p in parts if p and p != "fingerprint differs") or "fingerprint differs"


def manifest_input_paths(manifest: dict[str, Any]) -> list[str]:
    """Every input clip's path of a complete cache: kept, bad and too short."""
    return [c["path"] for key in ("clips", "bad_files", "too_short") for c in manifest.get(key, [])]


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    out = []
    for key in ("frontend", "segment"):
        o, n = old.get(key, {}), new[key]
        diffs = [f"{k} {o.get(k)!r} -> {n.get(k)!r}" for k in sorted(set(o) | set(n)) if o.get(k) != n.get(k)]
        if diffs:
            out.append(f"{key}: " + ", ".join(diffs))
    if old.get("clips_sha") != new["clips_sha"]:
        out.append(f"clip list: {old.get('n_input_clips')} -> {new['n_input_clips']} clips or other ids/paths")
    if old.get("source_id") != new["source_id"]:
        out.append(f"source: {old.get('source_id')!r} -> {new['source_id']!r}")
    if old.get("version") != new["version"]:
        out.append(f"cache version {old.get('version')} -> {new['version']}")
    return "; ".join(out) or "fingerprint differs"


def _die_with_parent(worker_id: int) -> None:
    """DataLoader worker init: on Linux, get SIGKILL when the building process dies. Without it, workers of a killed
    build can hang on a full result pipe forever, holding memory."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _remove_own_files(root: Path) -> None:
    for name in OWN_FILES:
        (root / name).unlink(missing_ok=True)


def build_feature_cache(records: list[ClipRecord], frontend_cfg: FrontendConfig, cache_dir: str | Path,
                        segment_seconds: float = 3.0, hop_seconds: float = 1.5, min_segment_seconds: float = 1.0,
                        on_bad_file: str = "skip", on_stale: str = "rebuild", num_workers: int = 0,
                        chunk_clips: int = 64, batch_size: int = 64, device: str | torch.device = "cpu",
                        source_id: str = "", progress: bool = True, pad_short: bool = False,
                        data_root: str | Path | None = None) -> FeatureCache:
    """Build the cache of `records` in `cache_dir` (resuming an interrupted build), or open it if complete."""
    if on_bad_file not in ("skip", "error"):
        raise CacheError(f"on_bad_file must be 'skip' or 'error', got {on_bad_file!r}")
    if on_stale not in ("rebuild", "error"):
        raise CacheError(f"on_stale must be 'rebuild' or 'error', got {on_stale!r}")
    if not records:
        raise CacheError(f"no clips to cache in {cache_dir}")
    dup = next((cid for cid, k in Counter(r.clip_id for r in records).items() if k > 1), None)
    if dup is not None:
        raise CacheError(f"clip id {dup!r} appears more than once in the clip list")
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    spec, seg_meta = segment_meta(frontend_cfg, segment_seconds, hop_seconds, min_segment_seconds, pad_short)
    lm = LogMel(frontend_cfg)
    ident = _identity_parts(records, frontend_cfg, seg_meta, source_id, data_root)
    legacy = ident.pop("legacy_fingerprint")

    def wait() -> None:  # a second process on the same cache waits, then finds it complete
        log.info("another process is building the cache in %s; waiting for it", root)

    with exclusive_lock(root / LOCK, busy=wait):
        manifest = read_cache_json(root / MANIFEST)
        state = manifest if manifest is not None else read_cache_json(root / PROGRESS)
        if state is not None and state.get("fingerprint") not in (ident["fingerprint"], legacy):
            what = "feature cache" if manifest is not None else "interrupted cache build"
            msg = f"stale {what} in {root}: {_differences(state, ident)}"
            if on_stale == "error":
                raise CacheError(f"{msg}. Delete it, point data.cache_dir elsewhere, or set data.on_stale=rebuild")
            log.warning("%s; rebuilding it", msg)
            _remove_own_files(root)
            manifest = state = None
        if manifest is not None and manifest["fingerprint"] == legacy != ident["fingerprint"]:
            manifest.update(fingerprint=ident["fingerprint"], clips_sha=ident["clips_sha"])  # from now on, movable
            write_json(root / MANIFEST, manifest)
        if manifest is not None:
            for name in (PROGRESS, CLIP_LOG):  # left over if a finished build died before cleaning up
                (root / name).unlink(missing_ok=True)
            return _open_complete(root, manifest, records, on_bad_file)
        return _build_feature_cache(records, lm, root, spec, seg_meta, ident, state, on_bad_file, num_workers,
                                    chunk_clips, batch_size, device, progress)


def _open_complete(root: Path, manifest: dict[str, Any], records: list[ClipRecord], on_bad_file: str) -> FeatureCache:
    if on_bad_file == "error" and manifest["bad_files"]:
        first = manifest["bad_files"][0]
        raise CacheError(f"the cache in {root} was built skipping {len(manifest['bad_files'])} bad file(s) "
                         f"(first: {first['path']}: {first['reason']}), and data.on_bad_file=error")
    labels = {r.clip_id: list(r.labels) for r in records}
    if any(c["labels"] != labels[c["clip_id"]] for c in manifest["clips"]):
        for c in manifest["clips"]:
            c["labels"] = labels[c["clip_id"]]
        write_json(root / MANIFEST, manifest)
        log.info("%s: reference labels changed; manifest updated (features unchanged)", root)
    paths = {r.clip_id: str(r.path) for r in records}
    entries = [c for key in ("clips", "bad_files", "too_short") for c in manifest[key]]
    if any(c["path"] != paths[c["clip_id"]] for c in entries):  # the same data, copied or moved
        for c in entries:
            c["path"] = paths[c["clip_id"]]
        write_json(root / MANIFEST, manifest)
        log.info("%s: the data moved (same files relative to the data root); manifest paths updated", root)
    cache = FeatureCache.open(root)
    log.info("feature cache reused (nothing rebuilt): %s", cache.summary())
    return cache


def _build_feature_cache(records: list[ClipRecord], lm: LogMel, root: Path, spec: SegmentSpec,
                         seg_meta: dict[str, Any], ident: dict[str, Any], state: dict[str, Any] | None,
                         on_bad_file: str, num_workers: int, chunk_clips: int, batch_size: int,
                         device: str | torch.device, progress: bool) -> FeatureCache:
    t0 = time.perf_counter()
    if state is None:
        _remove_own_files(root)
        state = {**ident, "clips_done": 0, "segments_done": 0, "features_bytes": 0, "log_bytes": 0,
                 "sum": 0.0, "sumsq": 0.0, "count": 0, "build_seconds": 0.0, "chunk_clips": chunk_clips,
                 "batch_size": batch_size}
    else:
        log.info("resuming the cache build in %s at clip %d of %d", root, state["clips_done"], len(records))
    # a resumed build keeps the chunking it started with, so every batch (and float rounding) is the same
    chunk_clips, batch_size = state["chunk_clips"], state["batch_size"]
    for name, size in ((FEATURES, state["features_bytes"]), (CLIP_LOG, state["log_bytes"])):
        (root / name).touch()
        os.truncate(root / name, size)  # drop whatever a killed run wrote after its last checkpoint
    lm = lm.to(device).eval()
    n_mels, n_frames = lm.cfg.n_mels, seg_meta["frames"]
    done = state["clips_done"]
    remaining = records[done:]
    loader = DataLoader(_ClipAudio(remaining, lm.cfg.sample_rate), batch_size=None, shuffle=False,
                        num_workers=num_workers, collate_fn=_identity,
                        worker_init_fn=_die_with_parent if num_workers else None)
    bar = tqdm(total=len(records), initial=done, desc=f"feature cache {root}", unit="clip", disable=not progress)
    chunk: list[tuple[int, np.ndarray | None, str | None]] = []
    with open(root / FEATURES, "ab") as f_feat, open(root / CLIP_LOG, "a", encoding="utf-8") as f_log:
        for i, audio, reason in loader:
            idx = done + i
            if reason is not None:
                log.warning("bad audio file %s: %s", records[idx].path, reason)
                if on_bad_file == "error":
                    raise AudioError(records[idx].path, reason)
            chunk.append((idx, audio, reason))
            bar.update(1)
            if len(chunk) == chunk_clips or idx == len(records) - 1:
                try:
                    _write_chunk(chunk, records, lm, spec, state, f_feat, f_log, batch_size, device, n_frames)
                except OSError as e:
                    raise _out_of_space(e, root, state, len(records)) from e
                state["build_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                write_json(root / PROGRESS, state)
                chunk = []
                bar.set_postfix(segments=state["segments_done"])
    bar.close()
    if state["clips_done"] != len(records):
        raise CacheError(f"cache build in {root} stopped at clip {state['clips_done']} of {len(records)}")
    return _finalise(root, records, lm.cfg, seg_meta, state, n_mels, n_frames)


def _out_of_space(e: OSError, root: Path, state: dict[str, Any], n_clips: int) -> OSError:
    """A write of the cache failed: on a full disk (or a file size limit), drop the chunk half written (so its
    space is free again) and say what is kept; any other OSError is returned as it is."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return e
    for name, size in ((FEATURES, state["features_bytes"]), (CLIP_LOG, state["log_bytes"])):
        os.truncate(root / name, size)
    free = shutil.disk_usage(root).free
    what = "its disk is full" if e.errno != errno.EFBIG else "a file would exceed this process's size limit (ulimit -f)"
    error = FileSizeLimitError if e.errno == errno.EFBIG else DiskFullError
    return error(e.errno, f"{root}: the feature cache could not be written, {what} ({free / 2**20:.0f} MiB "
                         f"free); the finished part ({state['clips_done']} of {n_clips} clips, "
                         f"{state['features_bytes'] / 2**20:.0f} MiB) is kept: free some space and run the same "
                         f"command to resume it, or delete {root}")


def _write_chunk(chunk: list[tuple[int, np.ndarray | None, str | None]], records: list[ClipRecord], lm: LogMel,
                 spec: SegmentSpec, state: dict[str, Any], f_feat, f_log, batch_size: int,
                 device: str | torch.device, n_frames: int) -> None:
    """Log-mel the chunk's segments, append features and the per-clip log, fsync both, advance `state`."""
    lines, pieces, reals = [], [], []
    for idx, audio, reason in chunk:
        entry: dict[str, Any] = {"i": idx}
        if reason is not None:
            entry.update(status="bad", reason=reason)
        else:
            starts = spec.starts(len(audio))
            entry.update(status="ok" if starts else "short", samples=len(audio), segments=len(starts))
            if starts:
                pieces.append(cut_segments(audio, spec, starts))
                reals += [min(spec.segment, len(audio) - s) for s in starts]
        lines.append(json.dumps(entry) + "\n")
    if pieces:
        wav = np.concatenate(pieces)  # (n, segment)
        valid = torch.tensor([min(r // lm.hop_length + 1, n_frames) for r in reals])  # (n,)
        with torch.no_grad():
            for b in range(0, len(wav), batch_size):
                x = lm.log_mel(torch.from_numpy(wav[b:b + batch_size]).to(device)).cpu()  # (B, F, T)
                if x.shape[-1] != n_frames:
                    raise CacheError(f"frontend produced {x.shape[-1]} frames per segment, expected {n_frames}")
                mask = (torch.arange(n_frames)[None] < valid[b:b + batch_size, None]).to(torch.float64)  # (B, T)
                x64 = x.to(torch.float64)
                state["sum"] += float((x64 * mask[:, None]).sum())
                state["sumsq"] += float((x64.square() * mask[:, None]).sum())
                state["count"] += int(mask.sum()) * x.shape[1]
                f_feat.write(x.to(torch.float16).numpy().tobytes())
        state["segments_done"] += len(wav)
    f_log.write("".join(lines))
    for f in (f_feat, f_log):
        f.flush()
        os.fsync(f.fileno())
    state["clips_done"] = chunk[-1][0] + 1
    state["features_bytes"] = f_feat.tell()
    state["log_bytes"] = f_log.tell()


def _finalise(root: Path, records: list[ClipRecord], frontend: FrontendConfig, seg_meta: dict[str, Any],
              state: dict[str, Any], n_mels: int, n_frames: int) -> FeatureCache:
    entries = [json.loads(line) for line in (root / CLIP_LOG).read_text().splitlines()]
    if [e["i"] for e in entries] != list(range(len(records))):
        raise CacheError(f"{root / CLIP_LOG}: the per-clip log does not cover clips 0..{len(records) - 1}")
    sr = frontend.sample_rate
    clips, bad, short = [], [], []
    for e in entries:
        r = records[e["i"]]
        if e["status"] == "bad":
            bad.append({"clip_id": r.clip_id, "path": r.path, "reason": e["reason"]})
        elif e["status"] == "short":
            short.append({"clip_id": r.clip_id, "path": r.path, "seconds": e["samples"] / sr})
        else:  # segments [first_segment, first_segment + segments) of features.f16, starting every hop_samples
            first = clips[-1]["first_segment"] + clips[-1]["segments"] if clips else 0
            clips.append({"clip_id": r.clip_id, "path": r.path, "labels": list(r.labels), "samples": e["samples"],
                          "first_segment": first, "segments": e["segments"]})
    n = state["segments_done"]
    if n == 0:
        raise CacheError(f"no segments: all {len(records)} clips were bad ({len(bad)}) or shorter than "
                         f"{seg_meta['min_segment_seconds']} s ({len(short)}); see the warnings above")
    count = state["count"]
    mean = state["sum"] / count
    std = float(np.sqrt(max(state["sumsq"] / count - mean * mean, 0.0)))
    if not std > 0:
        raise CacheError(f"log-mel standard deviation over the cache is {std}: every frame is identical")
    fe = asdict(replace(frontend, norm_mean=None, norm_std=None))
    manifest = {
        "format": CACHE_FORMAT, "version": CACHE_VERSION, "fingerprint": state["fingerprint"],
        "clips_sha": state["clips_sha"], "n_input_clips": state["n_input_clips"], "source_id": state["source_id"],
        "frontend": {k: v for k, v in fe.items() if k not in NORM_FIELDS}, "segment": seg_meta,
        "shape": [n, n_mels, n_frames], "dtype": "float16", "layout": "C order (N, F, T), un-normalised log-mel",
        "stats": {"mean": mean, "std": std, "frames": count // n_mels},
        "audio_seconds": sum(c["samples"] for c in clips) / sr, "build_seconds": state["build_seconds"],
        "clips": clips, "bad_files": bad, "too_short": short,
    }
    write_json(root / MANIFEST, manifest)
    for name in (PROGRESS, CLIP_LOG):
        (root / name).unlink(missing_ok=True)
    if bad:
        log.warning("skipped %d bad audio file(s) of %d (listed in %s)", len(bad), len(records), root / MANIFEST)
    if short:
        for c in short:
            log.info("too short: %s (%.2f s)", c["path"], c["seconds"])
        log.warning("%d clip(s) of %d shorter than data.min_segment_seconds=%s gave no segment (named above and in "
                    "%s); lower data.min_segment_seconds, or set data.pad_short=true to keep each as one zero-padded "
                    "segment", len(short), len(records), seg_meta["min_segment_seconds"], root / MANIFEST)
    cache = FeatureCache.open(root)
    log.info("feature cache built: %s", cache.summary())
    return cache
