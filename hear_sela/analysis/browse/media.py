"""The browser's media: audio excerpts of segments (Ogg Opus by default, through libsndfile), log-mel thumbnails and
cluster-mean log-mels (WebP), all small enough for a 1000-cluster x 10-head run.

An excerpt is a segment as the encoder heard it: the clip decoded by `data.audio.load_audio` (mono, the frontend's
sample rate), samples [start, start + min(segment, max_seconds)). Thumbnails draw the cached log-mel the encoder
saw, low frequencies at the bottom, on one colour scale for the whole site so thumbnails compare.

Legend: S segments, F mel bins, T frames, H heads, K clusters.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import sparse

from hear_sela.data.audio import load_audio
from hear_sela.data.cache import FeatureCache

log = logging.getLogger("hear_sela.analysis")

# container, libsndfile subtype, compression level (libsndfile's 0..1: higher = smaller), file extension. Measured
# on 2.2 s excerpts of the real corpus at 16 kHz: Opus at 0.98 is ~14 kbit/s (3.8 KiB an excerpt), under half of
# Vorbis, whose encoder goes no lower than ~35 kbit/s at 16 kHz (10 KiB); at 0.99 (~11 kbit/s) Opus drops to a
# narrower band and high-pitched noise loses its top octave, so 0.98 it is. Opus encodes ~10x slower than Vorbis
# (~0.1 s an excerpt; use --workers). MP3 (~26 kbit/s) plays in every browser; FLAC is exact (16-bit), ~4x Vorbis.
AUDIO_FORMATS = {"opus": ("OGG", "OPUS", 0.98, "opus"), "ogg": ("OGG", "VORBIS", 0.9, "ogg"),
                 "mp3": ("MP3", "MPEG_LAYER_III", 0.9, "mp3"), "flac": ("FLAC", "PCM_16", 0.5, "flac")}
PER_FOLDER = 1000  # media files per sub-folder: file browsers and some file systems slow down on huge folders


def media_name(segment: int, ext: str) -> str:
    """Relative path of a segment's media file: media/0012/s12345.ogg."""
    return f"media/{segment // PER_FOLDER:04d}/s{segment}.{ext}"


def excerpt_span(start_s: float, segment_seconds: float, max_seconds: float, clip_samples: int,
                 sample_rate: int) -> tuple[int, int]:
    """[first, last) sample of a segment's excerpt within its clip, at most `max_seconds` long."""
    first = int(round(start_s * sample_rate))
    last = first + int(round(min(segment_seconds, max_seconds) * sample_rate))
    return min(first, clip_samples), min(last, clip_samples)


@dataclass(frozen=True)
class ClipJob:
    """One clip's excerpts: decode `path` once, write the excerpt starting at each start (seconds) to out / name."""

    path: str
    spans: tuple[tuple[float, str], ...]  # (start seconds, relative file name)


def _write_clip(job: ClipJob, out: Path, sample_rate: int, seconds: float, audio_format: str) -> None:
    container, subtype, level, _ = AUDIO_FORMATS[audio_format]
    audio = load_audio(job.path, sample_rate)  # (samples,) float32
    for start, name in job.spans:
        a, b = excerpt_span(start, seconds, seconds, len(audio), sample_rate)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / name, np.clip(audio[a:b], -1.0, 1.0), sample_rate, format=container, subtype=subtype,
                 compression_level=level)


def write_excerpts(cache: FeatureCache, segments: Iterable[int], out: Path, audio_format: str,
                   max_seconds: float, progress: bool = False, workers: int = 1) -> dict[int, str]:
    """Write each segment's excerpt under `out`, decoding each clip once, in `workers` processes (decoding and
    encoding are most of a large site's build): segment -> relative path."""
    ext = AUDIO_FORMATS[audio_format][3]
    by_clip: dict[int, list[int]] = defaultdict(list)
    for s in sorted(set(int(s) for s in segments)):
        by_clip[int(cache.segment_clip[s])].append(s)
    names = {s: media_name(s, ext) for segs in by_clip.values() for s in segs}
    jobs = [ClipJob(cache.clips[clip].path, tuple((float(cache.segment_start[s]), names[s]) for s in segs))
            for clip, segs in by_clip.items()]
    seconds = min(float(cache.manifest["segment"]["segment_seconds"]), max_seconds)
    write = partial(_write_clip, out=out, sample_rate=int(cache.frontend.sample_rate), seconds=seconds,
                    audio_format=audio_format)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            done = pool.map(write, jobs, chunksize=16)
            _drain(done, len(jobs), progress)
    else:
        _drain(map(write, jobs), len(jobs), progress)
    return names


def _drain(results: Iterable[None], total: int, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=total, desc="audio excerpts (clips)", leave=False, dynamic_ncols=True)
    for _ in results:
        pass


def mel_range(features: np.ndarray, samples: int = 512, seed: int = 0) -> tuple[float, float]:
    """The site's colour scale: 1st and 99.5th percentile of the log-mel of up to `samples` random segments
    (S, F, T)."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(features), size=min(samples, len(features)), replace=False))
    x = np.asarray(features[pick], dtype=np.float32)
    return float(np.percentile(x, 1.0)), float(np.percentile(x, 99.5))


def mel_rgb(mel: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(F, T) log-mel -> (F, T, 3) uint8 image, viridis on [lo, hi], low frequencies at the bottom."""
    from matplotlib import colormaps

    scaled = np.clip((np.asarray(mel, dtype=np.float32) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)[::-1]
    return (colormaps["viridis"](scaled)[..., :3] * 255).round().astype(np.uint8)


def save_webp(rgb: np.ndarray, path: Path, quality: int = 70) -> None:
    """(F, T, 3) uint8 -> lossy WebP at its own size (pages enlarge it with `image-rendering: pixelated`, which costs
    no bytes)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="WEBP", quality=quality, method=4)


THUMB_POOL = 2  # frames averaged into one thumbnail column: 20 ms columns still show onsets, at half the bytes


def pool_frames(mel: np.ndarray, pool: int = THUMB_POOL) -> np.ndarray:
    """(F, T) -> (F, ceil(T / pool)): the mean of each run of `pool` frames (the last run may be shorter)."""
    mel = np.asarray(mel, dtype=np.float32)
    starts = np.arange(0, mel.shape[1], pool)
    return np.add.reduceat(mel, starts, axis=1) / np.diff(np.append(starts, mel.shape[1]))


def write_thumbnails(cache: FeatureCache, segments: Iterable[int], out: Path, lo: float, hi: float
                     ) -> dict[int, str]:
    """A thumbnail of each segment's cached log-mel, `THUMB_POOL` frames a column (pages stretch it back to one
    pixel a frame): segment -> relative path."""
    names: dict[int, str] = {}
    for s in sorted(set(int(s) for s in segments)):
        names[s] = media_name(s, "webp")
        save_webp(mel_rgb(pool_frames(cache.features[s]), lo, hi), out / names[s], quality=60)
    return names


def cluster_mean_mels(features: np.ndarray, segment_labels: np.ndarray, n_clusters: int, batch: int = 2048
                      ) -> np.ndarray:
    """Mean log-mel of the segments each head put in each cluster, in one pass over the cache (the cache is read
    once; at FSD50K scale that pass dominates). Memory: H * K * F * T float32, 0.5 GB for 10 x 1000 x 64 x 201.

    features (S, F, T), segment_labels (H, S) -> (H, K, F, T) float32, NaN for empty clusters."""
    h, s = segment_labels.shape
    _, f, t = features.shape
    sums = np.zeros((h, n_clusters, f * t), dtype=np.float32)
    for i in range(0, s, batch):
        x = np.asarray(features[i:i + batch], dtype=np.float32).reshape(-1, f * t)  # (B, F*T)
        for head in range(h):
            lab = segment_labels[head, i:i + batch]
            one_hot = sparse.csr_matrix((np.ones(len(lab), dtype=np.float32), (lab, np.arange(len(lab)))),
                                        shape=(n_clusters, len(lab)))
            sums[head] += one_hot @ x
    counts = np.stack([np.bincount(lab, minlength=n_clusters) for lab in segment_labels])  # (H, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        sums /= counts[..., None]  # in place: no second H x K x F x T array
    return sums.reshape(h, n_clusters, f, t)


def write_mean_mels(means: np.ndarray, out: Path, keep: Mapping[int, Iterable[int]]) -> dict[tuple[int, int], str]:
    """The mean log-mel image of each (head, cluster) in `keep` (head -> clusters), each on its own colour scale
    (1st to 99.5th percentile: a mean over many segments is too flat to read on the thumbnails' scale) ->
    relative path."""
    names: dict[tuple[int, int], str] = {}
    for head, clusters in keep.items():
        for k in clusters:
            names[head, k] = f"h{head}/mean/c{k}.webp"
            lo, hi = np.percentile(means[head, k], [1.0, 99.5])
            save_webp(mel_rgb(means[head, k], float(lo), float(hi)), out / names[head, k])
    return names
