"""What the browser reads: an analysis folder written by `hear-sela analyze` and the feature cache it names.

Legend: H heads, C clips, S segments, K clusters, F mel bins, T frames, D reduced embedding dimension.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from hear_sela.data.cache import CacheError, FeatureCache
from hear_sela.data.records import split_labels
from hear_sela.fileio import read_json

NEEDED = ("summary.json", "clips.csv", "clip_embeddings.npy", "metrics.csv")


class AnalysisFolderError(ValueError):
    """An analysis folder lacks a file the browser needs, or no longer matches its feature cache."""


@dataclass
class BrowseData:
    """One analysed run, everything indexed as the feature cache orders clips and segments."""

    folder: Path
    summary: dict  # summary.json
    cache: FeatureCache  # features (S, F, T) un-normalised log-mel, clip paths, segment times
    clip_refs: list[tuple[str, ...]]  # (C,) reference labels, () where unknown
    clip_labels: np.ndarray  # (H, C) int64 majority vote of each head
    clip_conf: np.ndarray  # (H, C) float64
    segment_labels: np.ndarray  # (H, S) int64
    embeddings: np.ndarray  # (C, D) reduced clip embeddings (`analysis.core.reduce_features`)
    xy: np.ndarray | None  # (C, 2) the 2-D map, None without one
    metrics: pd.DataFrame  # analyze's score table (method, reference, nmi, ami, tag_mi, ...)

    @property
    def n_heads(self) -> int:
        return int(self.clip_labels.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(self.summary["clusters"])

    @cached_property
    def clip_ids(self) -> list[str]:  # once: cluster pages look ids up 10^5 times at FSD50K scale
        return [c.clip_id for c in self.cache.clips]


def _table(folder: Path, stem: str) -> pd.DataFrame:
    """stem.parquet when analyze wrote one (faster at FSD50K scale), else stem.csv."""
    if (folder / f"{stem}.parquet").is_file():
        try:
            return pd.read_parquet(folder / f"{stem}.parquet")
        except ImportError:
            pass
    if not (folder / f"{stem}.csv").is_file():
        raise AnalysisFolderError(f"{folder}: no {stem}.csv; run `hear-sela analyze CKPT --out {folder}` first")
    return pd.read_csv(folder / f"{stem}.csv", keep_default_na=False, na_values=[""],
                       dtype={"clip_id": str, "labels": str})


def read_analysis(folder: str | Path) -> BrowseData:
    """Open an analysis folder and its feature cache; errors name the missing or mismatched file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnalysisFolderError(f"{folder}: not a folder (give a checkpoint .pt or an analysis folder)")
    missing = [name for name in NEEDED if not (folder / name).is_file()]
    if missing:
        raise AnalysisFolderError(f"{folder}: lacks {', '.join(missing)}; write it with a current `hear-sela analyze "
                                  f"CKPT --out {folder}`")
    summary = read_json(folder / "summary.json", AnalysisFolderError)
    if not summary.get("cache"):
        raise AnalysisFolderError(f"{folder / 'summary.json'}: names no feature cache; rerun `hear-sela analyze`")
    try:
        cache = FeatureCache.open(summary["cache"])
    except CacheError as e:
        raise AnalysisFolderError(f"{folder}: its feature cache cannot be opened ({e})") from None
    ids = [c.clip_id for c in cache.clips]
    clips = _table(folder, "clips")
    if list(clips["clip_id"]) != ids or summary["segments"] != len(cache):
        raise AnalysisFolderError(f"{folder}: clips.csv and the cache {cache.root} disagree (the cache was rebuilt "
                                  "since the analysis?); rerun `hear-sela analyze`")
    index = pd.Index(ids)
    h = int(summary["heads"])
    votes = _table(folder, "clip_labels")
    col = index.get_indexer(votes["clip_id"])
    clip_labels, clip_conf = np.full((h, len(ids)), -1, dtype=np.int64), np.zeros((h, len(ids)))
    clip_labels[votes["head"].to_numpy(), col] = votes["label"].to_numpy()
    clip_conf[votes["head"].to_numpy(), col] = votes["confidence"].to_numpy()
    seg = _table(folder, "labels")
    firsts = np.searchsorted(cache.segment_clip, np.arange(len(ids)))  # (C,) segments are stored clip by clip
    seg_index = firsts[index.get_indexer(seg["clip_id"])] + seg["segment"].to_numpy()
    segment_labels = np.full((h, len(cache)), -1, dtype=np.int64)
    segment_labels[seg["head"].to_numpy(), seg_index] = seg["label"].to_numpy()
    if (clip_labels < 0).any() or (segment_labels < 0).any():
        raise AnalysisFolderError(f"{folder}: clip_labels/labels do not cover every clip, segment and head")
    xy = clips[["map_x", "map_y"]].to_numpy(dtype=np.float64)
    return BrowseData(folder, summary, cache, [split_labels(str(x)) if isinstance(x, str) else ()
                                               for x in clips["labels"]],
                      clip_labels, clip_conf, segment_labels, np.load(folder / "clip_embeddings.npy"),
                      None if np.isnan(xy).any() else xy, pd.read_csv(folder / "metrics.csv"))
