"""The feature cache: every clip decoded once, cut into fixed-length segments, log-mel'd, stored as a float16 memmap.

Layout of a cache directory:
    features.f16     raw float16, C order, shape (N, F, T_seg): the UN-normalised log-mel, log(mel + eps), of each
                     segment. Normalisation is applied at use time by `frontend.normalize` with the cache's stats
                     (`FeatureCache.frontend`, which the training run's config takes over), so training, the label
                     update and inference all normalise the same way.
    manifest.json    written last, atomically; its presence means the cache is complete. Holds the frontend config,
                     segment parameters, the kept clips (id, path, labels, samples, first_segment, segments: the
                     per-segment index, segment first_segment + k starting at k * hop_samples),
                     bad files with reasons, clips too short to give a segment, log-mel mean/std, and a fingerprint.
    progress.json, clips.partial.jsonl   only while a build is incomplete (see "Resume").
    .lock            flock'ed while a build runs: a second process on the same cache waits, then reuses it.

Building (segmenting, resume, staleness, bad files) is `data.cache_build`; this module only reads, so code
that opens a cache imports no DataLoader or tqdm.
Legend: N segments, F mel bins, T frames per segment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hear_sela.config import FrontendConfig
from hear_sela.data.records import ClipRecord
from hear_sela.fileio import read_json

log = logging.getLogger(__name__)

CACHE_FORMAT = "hear_sela.feature_cache"
CACHE_VERSION = 1
FEATURES, MANIFEST, PROGRESS, CLIP_LOG = "features.f16", "manifest.json", "progress.json", "clips.partial.jsonl"
LOCK = ".lock"  # held while building; never deleted (deleting a lock file others wait on would break the lock)
OWN_FILES = (MANIFEST, PROGRESS, CLIP_LOG, FEATURES)  # manifest first: deleting it first un-completes the cache
NORM_FIELDS = ("norm_mean", "norm_std")


class CacheError(ValueError):
    """A feature cache is missing, incomplete, damaged, stale, or cannot be built."""


# ---------------------------------------------------------------- the cache


@dataclass
class FeatureCache:
    """An opened, complete cache. `features` is a read-only float16 memmap (N, F, T) of un-normalised log-mel.

    Test helpers build this positionally (tests/helpers/training.py): add new fields at the end only.
    """

    root: Path
    manifest: dict[str, Any]
    features: np.ndarray  # (N, F, T) float16 memmap
    segment_clip: np.ndarray  # (N,) int64, index into `clips`
    segment_start: np.ndarray  # (N,) float64 seconds from the clip's start
    segment_frames: np.ndarray  # (N,) int64 frames holding real audio (the rest is padding)
    clips: list[ClipRecord]
    mean: float
    std: float
    frontend: FrontendConfig  # the cache's frontend with norm_mean/norm_std = mean/std

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __getitem__(self, i: int) -> np.ndarray:  # (F, T) float16
        return self.features[i]

    @property
    def bad_files(self) -> list[dict[str, str]]:
        return self.manifest["bad_files"]

    @property
    def audio_seconds(self) -> float:
        return float(self.manifest["audio_seconds"])

    def disk_bytes(self) -> int:
        return sum((self.root / name).stat().st_size for name in (FEATURES, MANIFEST))

    def summary(self) -> str:
        n, f, t = self.features.shape
        seg = self.manifest["segment"]
        return (f"{n} segments ({f} mels x {t} frames, {seg['segment_seconds']} s, hop {seg['hop_seconds']} s) from "
                f"{len(self.clips)} clips, {self.audio_seconds:.1f} s of audio; "
                f"{len(self.bad_files)} bad file(s) skipped, {len(self.manifest['too_short'])} clip(s) under "
                f"{seg['min_segment_seconds']} s; log-mel mean {self.mean:.3f} std {self.std:.3f}; "
                f"{self.disk_bytes() / 2**20:.1f} MiB in {self.root}; "
                f"its build took {self.manifest['build_seconds']:.1f} s")

    @classmethod
    def open(cls, cache_dir: str | Path) -> FeatureCache:
        """Open a complete cache (read-only memmap). Raises CacheError if it is absent, incomplete or damaged."""
        root = Path(cache_dir)
        manifest = read_cache_json(root / MANIFEST)
        if manifest is None:
            hint = " (an interrupted build is there: rerun `hear-sela prepare` to resume it)" \
                if (root / PROGRESS).is_file() else ""
            raise CacheError(f"no complete feature cache in {root}: {MANIFEST} is missing{hint}")
        if manifest.get("format") != CACHE_FORMAT or manifest.get("version") != CACHE_VERSION:
            raise CacheError(f"{root / MANIFEST}: not a hear_sela feature cache of version {CACHE_VERSION}")
        shape = tuple(manifest["shape"])
        expected = int(np.prod(shape)) * 2
        size = (root / FEATURES).stat().st_size if (root / FEATURES).is_file() else -1
        if size != expected:
            raise CacheError(f"{root / FEATURES}: {size} bytes, but the manifest's shape {shape} needs {expected}; "
                             f"the cache is damaged: delete {root} and prepare again")
        features = np.memmap(root / FEATURES, dtype=np.float16, mode="r", shape=shape)
        clips_meta = manifest["clips"]
        counts = np.array([c["segments"] for c in clips_meta], dtype=np.int64)
        seg_clip = np.repeat(np.arange(len(clips_meta), dtype=np.int64), counts)  # (N,)
        firsts = np.cumsum(counts) - counts  # (clips,)
        if not np.array_equal(firsts, [c["first_segment"] for c in clips_meta]):
            raise CacheError(f"{root / MANIFEST}: clips' first_segment values are not consecutive; cache damaged")
        first = np.repeat(firsts, counts)  # (N,)
        k = np.arange(len(seg_clip), dtype=np.int64) - first  # segment number within its clip
        seg = manifest["segment"]
        start_samples = k * seg["hop_samples"]  # (N,)
        clip_samples = np.repeat(np.array([c["samples"] for c in clips_meta], dtype=np.int64), counts)  # (N,)
        real = np.minimum(seg["segment_samples"], clip_samples - start_samples)  # (N,) samples of real audio
        fe = manifest["frontend"]
        seg_frames = np.minimum(real // fe["hop_length"] + 1, shape[2])
        if len(seg_clip) != shape[0]:
            raise CacheError(f"{root / MANIFEST}: clips account for {len(seg_clip)} segments, shape says {shape[0]}")
        stats = manifest["stats"]
        frontend = FrontendConfig(**{**fe, "norm_mean": stats["mean"], "norm_std": stats["std"]})
        clips = [ClipRecord(c["clip_id"], c["path"], tuple(c["labels"])) for c in clips_meta]
        return cls(root, manifest, features, seg_clip, start_samples / fe["sample_rate"], seg_frames, clips,
                   float(stats["mean"]), float(stats["std"]), frontend)


def read_cache_json(path: Path) -> dict[str, Any] | None:
    """A cache JSON file (manifest, progress), None when absent; damaged JSON raises CacheError."""
    return read_json(path, CacheError, "delete the cache directory and prepare again")
