"""Checking a HEAR task folder the way heareval will read it, and staging a task so none is ever seen half-written."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import soundfile as sf

from hear_sela.data.records import DataError, read_csv_rows
from hear_sela.data.task_layout import CLIPS_CSV, SAMPLE_RATE, SPLITS


def _valid_events(events: object, vocab: set[str], duration_ms: float) -> bool:
    """A list of {"label", "start", "end"} (ms) with labels in `vocab` and 0 <= start < end <= duration."""
    return isinstance(events, list) and all(
        isinstance(e, dict) and e.get("label") in vocab and isinstance(e.get("start"), int | float)
        and isinstance(e.get("end"), int | float) and 0 <= e["start"] < e["end"] <= duration_ms for e in events)


def validate_task(task_dir: str | Path, own: bool = True) -> dict[str, int]:
    """Check a written scene or event task the way heareval will read it; returns clips per split, or raises
    DataError.

    metadata keys and split names, labelvocabulary.csv, one {split}.json per split whose files exist as 16 kHz mono
    WAVs of exactly sample_duration, no file in two splits, labels in the vocabulary (scene: one each when
    multiclass; event: a list of events inside the clip), and (when clips.csv is there) no group in two splits.
    own=False checks only what heareval needs to read a task (`evaluate` on any task folder): a file name in two
    splits and clips.csv's groups are guarantees of our writer, not requirements of heareval.
    """
    task_dir = Path(task_dir)
    meta_path = task_dir / "task_metadata.json"
    if not meta_path.is_file():
        raise DataError(f"{task_dir}: no task_metadata.json")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{meta_path}: damaged JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: not a JSON object")
    if meta.get("split_mode") == "trainvaltest":  # heareval needs no list of these three
        meta.setdefault("splits", list(SPLITS))
    missing = {"task_name", "embedding_type", "prediction_type", "split_mode", "splits", "sample_duration",
               "evaluation"} - set(meta)
    if missing:
        raise DataError(f"{meta_path}: lacks {sorted(missing)}")
    splits = meta["splits"]
    want = list(SPLITS) if meta["split_mode"] == "trainvaltest" else sorted(splits)
    if splits != want or not all(s.startswith("fold") for s in splits if meta["split_mode"] != "trainvaltest"):
        raise DataError(f"{meta_path}: splits {splits} do not fit split_mode {meta['split_mode']}")
    vocab = [row[1] for _, row in sorted((int(r["idx"]), (r["idx"], r["label"]))
                                         for _, r in read_csv_rows(task_dir / "labelvocabulary.csv", ("idx", "label")))]
    n = round(meta["sample_duration"] * SAMPLE_RATE)
    counts, owner, listed = {}, {}, set()
    for s in splits:
        labels = json.loads((task_dir / f"{s}.json").read_text())
        for fname, lab in labels.items():
            if own and fname in owner:
                raise DataError(f"{task_dir}: {fname} is in {owner[fname]} and {s}")
            owner[fname] = s
            listed.add((s, fname))
            if meta["embedding_type"] == "event":
                if not _valid_events(lab, set(vocab), 1000.0 * meta["sample_duration"]):
                    raise DataError(f"{task_dir}/{s}.json: bad events {lab} for {fname}")
            elif not lab or not set(lab) <= set(vocab) or (meta["prediction_type"] == "multiclass" and len(lab) != 1):
                raise DataError(f"{task_dir}/{s}.json: bad labels {lab} for {fname}")
            info = sf.info(str(task_dir / str(SAMPLE_RATE) / s / fname))
            if info.samplerate != SAMPLE_RATE or info.channels != 1 or info.frames != n:
                raise DataError(f"{task_dir}/{SAMPLE_RATE}/{s}/{fname}: {info.samplerate} Hz, {info.channels} ch, "
                                f"{info.frames} samples; want {SAMPLE_RATE} Hz mono, {n} samples")
        counts[s] = len(labels)
    wavs = {(s, p.name) for s in splits for p in (task_dir / str(SAMPLE_RATE) / s).glob("*.wav")}
    if wavs != listed:
        raise DataError(f"{task_dir}: {len(wavs ^ listed)} WAV(s) not matching the split JSON files")
    if own and (task_dir / CLIPS_CSV).is_file():
        group_split: dict[str, str] = {}
        for line, r in read_csv_rows(task_dir / CLIPS_CSV, ("split", "group")):
            if group_split.setdefault(r["group"], r["split"]) != r["split"]:
                raise DataError(f"{task_dir / CLIPS_CSV}:{line}: group {r['group']!r} is in "
                                f"{group_split[r['group']]} and {r['split']}")
    return counts


@contextmanager
def staged_task(task_dir: Path) -> Iterator[Path]:
    """A hidden folder beside `task_dir` to write the task into; when the block ends it is validated and moved into
    place, so heareval and `evaluate` never see a half-written task. On any error it is removed (and a rerun
    finds `task_dir` free)."""
    task_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{task_dir.name}.", suffix=".partial", dir=task_dir.parent))
    try:
        yield stage
        validate_task(stage)
        if task_dir.exists():
            task_dir.rmdir()  # empty (new_task_dir checked it), so the rename below can take its place
        stage.rename(task_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
