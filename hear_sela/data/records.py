"""What every dataset reader returns: one `ClipRecord` per audio file, plus the labels-CSV format they share.

Labels are reference annotations for analysis only; training never reads them.
The labels CSV is FSD50K's ground-truth format: a header with at least an id column (`fname`) and `labels`, one row
per clip, several labels comma-separated inside one (quoted) field: `64760,"Electric_guitar,Guitar"`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset's layout or metadata is wrong (missing folder or CSV, malformed row, missing audio, ...)."""


@dataclass(frozen=True)
class ClipRecord:
    """One audio clip: a stable id (unique within its dataset), the file, and its reference labels (maybe none)."""

    clip_id: str
    path: str
    labels: tuple[str, ...] = ()


def split_labels(text: str) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'); empty fields are dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


ID_COLUMNS = ("clip_id", "fname", "filename", "file", "path", "id")  # the first one present names the clip


@dataclass(frozen=True)
class LabelsTable:
    """A labels CSV: clip id -> labels (in file order), and label -> AudioSet mid where a `mids` column gives them."""

    labels: dict[str, tuple[str, ...]]
    mids: dict[str, str]


def _read_rows(path: str | Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(line number, stripped row)]) of a CSV; the one place a labels CSV is opened."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM (as Excel writes) is not in the header
        reader = csv.DictReader(f)
        rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for row in reader]
        return list(reader.fieldnames or ()), rows


def read_csv_rows(path: str | Path, columns: tuple[str, ...] = ("fname", "labels")) -> list[tuple[int, dict]]:
    """(line number, row) for every row of a labels CSV whose header has at least `columns`; errors name the file."""
    header, rows = _read_rows(path)
    missing = set(columns) - set(header)
    if missing:
        raise DataError(f"{path}: header {header} lacks column(s) {sorted(missing)}")
    return rows


def read_labels_table(path: str | Path) -> LabelsTable:
    """The one labels-CSV reader. Columns: an id column (the first of `ID_COLUMNS` present), `labels`
    (comma-separated) and optionally `mids` (comma-separated, aligned with labels), as FSD50K's dev.csv/eval.csv.
    Errors name the file and line."""
    header, rows = _read_rows(path)
    id_col = next((c for c in ID_COLUMNS if c in header), None)
    if id_col is None or "labels" not in header:
        raise DataError(f"{path}: header {header} needs an id column (one of {ID_COLUMNS}) and a 'labels' column")
    labels: dict[str, tuple[str, ...]] = {}
    mids: dict[str, str] = {}
    for line, row in rows:
        key = row[id_col]
        if not key:
            raise DataError(f"{path}:{line}: empty {id_col}")
        if key in labels:
            raise DataError(f"{path}:{line}: {id_col} {key!r} appears twice")
        labels[key] = split_labels(row["labels"])
        for lab, mid in zip(labels[key], row.get("mids", "").split(",")):
            if mid.strip():
                mids[lab] = mid.strip()
    return LabelsTable(labels, mids)


def read_labels_csv(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Clip id -> labels of a labels CSV (`read_labels_table`)."""
    return read_labels_table(path).labels


def _names(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def clip_keys(clip: ClipRecord) -> tuple[str, ...]:
    """The row ids that name `clip` in a labels CSV: its clip id, and its clip id with its file's extension
    (folders: "dogs/bark_01", "dogs/bark_01.wav"; FSD50K: "64760", "64760.wav"). The one rule every reader of a
    labels CSV (prepare, analyze, tasks) matches rows to clips by; never the bare file name (folders repeat names:
    "yes/0a2b_nohash_0", "no/0a2b_nohash_0")."""
    return tuple(dict.fromkeys((clip.clip_id, clip.clip_id + Path(clip.path).suffix)))


def match_label_rows(clips: Sequence[ClipRecord], table: Mapping[str, tuple[str, ...]], where: str | Path
                     ) -> list[tuple[str, ...]]:
    """Each clip's labels from a labels table (row id -> labels), () for a clip without a row.

    A row belongs to a clip when its id is one of `clip_keys(clip)`. Clips without a row and rows naming no clip
    are logged by name; two rows for one clip are an error naming both (`where`: the CSV).
    """
    out: list[tuple[str, ...]] = []
    used: set[str] = set()
    unlabelled: list[str] = []
    for clip in clips:
        keys = [k for k in clip_keys(clip) if k in table]
        if len(keys) > 1:
            raise DataError(f"{where}: rows {keys[0]!r} and {keys[1]!r} both name clip {clip.clip_id!r}; keep one")
        used.update(keys)
        if not keys:
            unlabelled.append(clip.clip_id)
        out.append(table[keys[0]] if keys else ())
    unmatched = [k for k in table if k not in used]
    if unmatched:
        log.warning("%s: %d row(s) name no clip of the data (ids are paths relative to the data root, with or "
                    "without extension): %s", where, len(unmatched), _names(unmatched))
    if unlabelled:
        log.warning("%s: %d of %d clips have no row: %s", where, len(unlabelled), len(clips), _names(unlabelled))
    return out


def write_labels_csv(path: str | Path, records: list[ClipRecord]) -> Path:
    """Write fname (= clip_id), labels for `records`; the csv module quotes multi-label fields as FSD50K does."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["fname", "labels"])
        for r in records:
            writer.writerow([r.clip_id, ",".join(r.labels)])
    return path
