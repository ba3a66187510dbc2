"""labels.csv: the self-labels of every segment and head, the one format `hear-sela labels` and `hear-sela analyze`
write.

Columns (LABEL_COLUMNS): clip_id, segment (the segment's index within its clip, in time order), start_s (its start
in seconds), head, label (its cluster), confidence. One row per (head, segment): head 0's segments first, each head's
in the order the segments are given (a feature cache's: clips in order, each clip's segments in time order).

Legend: H heads, S segments, C clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hear_sela.fileio import atomic_write

LABEL_COLUMNS = ("clip_id", "segment", "start_s", "head", "label", "confidence")


def segment_index(segment_clip: np.ndarray, segment_start: np.ndarray) -> np.ndarray:
    """(S,) index of each segment within its clip, in time order, from its clip (S,) and start in seconds (S,)."""
    seg_clip, starts = np.asarray(segment_clip), np.asarray(segment_start, dtype=np.float64)
    s = len(seg_clip)
    order = np.lexsort((starts, seg_clip))
    boundaries = np.r_[True, seg_clip[order][1:] != seg_clip[order][:-1]]
    run_start = np.maximum.accumulate(np.where(boundaries, np.arange(s), 0))
    index = np.empty(s, dtype=np.int64)
    index[order] = np.arange(s) - run_start
    return index


def segment_label_table(labels: np.ndarray, confidences: np.ndarray, segment_clip: np.ndarray,
                        segment_start: np.ndarray, clip_ids: Sequence[str]) -> pd.DataFrame:
    """labels (H, S) int, confidences (H, S), segment_clip (S,) index into clip_ids (C,), segment_start (S,) s
    -> the labels.csv table (LABEL_COLUMNS, H * S rows)."""
    labels, confidences = np.asarray(labels), np.asarray(confidences)
    h, _ = labels.shape
    seg_clip, starts = np.asarray(segment_clip), np.asarray(segment_start, dtype=np.float64)
    ids = np.asarray(clip_ids, dtype=object)
    return pd.DataFrame({
        "clip_id": np.tile(ids[seg_clip], h), "segment": np.tile(segment_index(seg_clip, starts), h),
        "start_s": np.tile(starts, h), "head": np.repeat(np.arange(h), len(seg_clip)),
        "label": labels.reshape(-1).astype(np.int64), "confidence": confidences.reshape(-1).astype(np.float64),
    }, columns=list(LABEL_COLUMNS))


def write_segment_labels(path: str | Path, table: pd.DataFrame) -> Path:
    """Write the table as labels.csv, atomically (a reader never sees half a file)."""
    return atomic_write(Path(path), lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))
