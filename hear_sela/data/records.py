"""What every dataset reader returns: one `ClipRecord` per audio file, plus the labels-CSV format they share.

Labels are reference annotations for analysis only; training never reads them.
The labels CSV is FSD50K's ground-truth format: a header with at least `fname` and `labels`, one row per clip,
several labels comma-separated inside one (quoted) field: `64760,"Electric_guitar,Guitar"`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


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


def read_csv_rows(path: str | Path, columns: tuple[str, ...] = ("fname", "labels")) -> list[tuple[int, dict]]:
    """(line number, row) for every row of a labels CSV whose header has at least `columns`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: header {reader.fieldnames} lacks column(s) {sorted(missing)}")
        return [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for row in reader]


def read_labels_csv(path: str | Path) -> dict[str, tuple[str, ...]]:
    """fname -> labels from a CSV with (at least) the columns fname and labels. Errors name the file and line."""
    out: dict[str, tuple[str, ...]] = {}
    for line, row in read_csv_rows(path):
        fname = row["fname"]
        if not fname:
            raise DataError(f"{path}:{line}: empty fname")
        if fname in out:
            raise DataError(f"{path}:{line}: fname {fname!r} appears twice")
        out[fname] = split_labels(row["labels"])
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
