"""FSD50K as distributed on Zenodo (record 4060432), unchanged:

    <root>/FSD50K.dev_audio/<fname>.wav           40,966 clips (train + val)
    <root>/FSD50K.eval_audio/<fname>.wav          10,231 clips
    <root>/FSD50K.ground_truth/dev.csv            header fname,labels,mids,split   split in {train, val}
    <root>/FSD50K.ground_truth/eval.csv           header fname,labels,mids
    <root>/FSD50K.ground_truth/vocabulary.csv     no header: index,label,mid       (200 rows)

`labels` and `mids` hold several comma-separated values in one quoted field; clip_id = fname. Labels are only for
analysis, never for training.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import NamedTuple

from hear_sela.data.records import ClipRecord, DataError, split_labels

log = logging.getLogger(__name__)

SPLITS = ("dev", "train", "val", "eval")
GROUND_TRUTH = "FSD50K.ground_truth"


class VocabularyEntry(NamedTuple):
    index: int
    label: str
    mid: str


def _ground_truth(root: Path, name: str) -> Path:
    if not root.is_dir():
        raise DataError(f"FSD50K root not found: {root}")
    gt = root / GROUND_TRUTH
    if not gt.is_dir():
        raise DataError(f"{root} is not an FSD50K root: {GROUND_TRUTH}/ is missing")
    path = gt / name
    if not path.is_file():
        raise DataError(f"FSD50K ground truth file missing: {path}")
    return path


def load_fsd50k(root: str | Path, split: str = "dev", on_bad_file: str = "error") -> list[ClipRecord]:
    """Clips of `split` (dev = train + val, train, val, eval) in CSV order.

    A CSV row whose audio file is missing is reported with the CSV line and path, then skipped (on_bad_file="skip",
    count logged) or raised as DataError ("error").
    """
    if split not in SPLITS:
        raise DataError(f"FSD50K split must be one of {SPLITS}, got {split!r}")
    if on_bad_file not in ("skip", "error"):
        raise DataError(f"on_bad_file must be 'skip' or 'error', got {on_bad_file!r}")
    root = Path(root)
    is_eval = split == "eval"
    csv_path = _ground_truth(root, "eval.csv" if is_eval else "dev.csv")
    audio_dir = root / ("FSD50K.eval_audio" if is_eval else "FSD50K.dev_audio")
    if not audio_dir.is_dir():
        raise DataError(f"FSD50K audio folder missing: {audio_dir}")
    present = set(os.listdir(audio_dir))  # one directory listing instead of 40k stat calls
    required = {"fname", "labels", "mids"} | (set() if is_eval else {"split"})
    records: list[ClipRecord] = []
    missing: list[str] = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        lacking = required - set(reader.fieldnames or ())
        if lacking:
            raise DataError(f"{csv_path}: header {reader.fieldnames} lacks column(s) {sorted(lacking)}")
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            fname = (row["fname"] or "").strip()
            if not fname:
                raise DataError(f"{where}: empty fname")
            if not is_eval:
                row_split = (row["split"] or "").strip()
                if row_split not in ("train", "val"):
                    raise DataError(f"{where}: split must be 'train' or 'val', got {row_split!r}")
                if split != "dev" and row_split != split:
                    continue
            labels, mids = split_labels(row["labels"] or ""), split_labels(row["mids"] or "")
            if len(labels) != len(mids):
                raise DataError(f"{where}: {len(labels)} labels but {len(mids)} mids")
            if f"{fname}.wav" not in present:
                if on_bad_file == "error":
                    raise DataError(f"{where}: audio file missing: {audio_dir / (fname + '.wav')}")
                log.warning("%s: audio file missing, skipped: %s", where, audio_dir / f"{fname}.wav")
                missing.append(fname)
                continue
            records.append(ClipRecord(fname, str(audio_dir / f"{fname}.wav"), labels))
    if missing:
        log.warning("FSD50K %s: skipped %d row(s) of %s whose audio is missing", split, len(missing), csv_path)
    if not records:
        raise DataError(f"{csv_path}: no clips for split {split!r}")
    return records


def load_vocabulary(root: str | Path) -> list[VocabularyEntry]:
    """vocabulary.csv (no header; index,label,mid) sorted by index."""
    path = _ground_truth(Path(root), "vocabulary.csv")
    entries: list[VocabularyEntry] = []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 3:
                raise DataError(f"{path}:{line}: expected index,label,mid, got {row}")
            try:
                index = int(row[0])
            except ValueError:
                raise DataError(f"{path}:{line}: index {row[0]!r} is not an integer (the file has no header)") from None
            entries.append(VocabularyEntry(index, row[1].strip(), row[2].strip()))
    if len({e.index for e in entries}) != len(entries) or len({e.label for e in entries}) != len(entries):
        raise DataError(f"{path}: repeated index or label")
    if not entries:
        raise DataError(f"{path}: empty vocabulary")
    return sorted(entries, key=lambda e: e.index)
