"""The HEAR task layout, in exactly the form heareval's runners read, and its one writer.

    <out_dir>/<task>/task_metadata.json     task_name, version, embedding_type, prediction_type, split_mode,
                                            splits, sample_duration, evaluation (first = primary score)
    <out_dir>/<task>/labelvocabulary.csv    idx,label
    <out_dir>/<task>/<split>.json           {"00012.wav": ["label", ...]}   (scene)
                                            {"00012.wav": [{"label", "start", "end"} in ms]}   (event)
    <out_dir>/<task>/16000/<split>/*.wav    16-bit PCM mono, every clip of a task the same length
    <out_dir>/<task>/clips.csv              provenance of our own tasks (wav, split, source fname, start, group, labels)

Every task writer (synth_tasks, scene_tasks, event_tasks) goes through `write_task`; `task_validate` checks the
result.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from hear_sela.data.records import DataError

SAMPLE_RATE = 16000
SPLITS = ("train", "valid", "test")
CLIPS_CSV = "clips.csv"  # written beside the task: wav, split, source fname, segment, group (provenance)


@dataclass(frozen=True)
class TaskClip:
    """One clip of a task: `fname` (relative to the audio folder) from `start` s, its labels and its group."""

    fname: str
    labels: tuple[str, ...]
    group: str
    start: float = 0.0


class ClipAudio(Protocol):
    """Clip i's samples, (S,), on demand: a list of arrays, or a lazy decoder for tasks too big for memory."""

    def __getitem__(self, i: int) -> np.ndarray: ...


def wav_name(i: int) -> str:
    return f"{i:05d}.wav"


def write_task(task_dir: Path, metadata: dict, vocabulary: list[str], audio: Sequence[np.ndarray] | ClipAudio,
               labels: list, splits: dict[str, list[int]]) -> Path:
    """Write one task: metadata, vocabulary, per-split label JSON and 16-bit WAVs; `audio[i]` is clip i, (S,)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata, indent=2))
    rows = "".join(f"{i},{label}\n" for i, label in enumerate(vocabulary))
    (task_dir / "labelvocabulary.csv").write_text("idx,label\n" + rows)
    for split, idx in splits.items():
        wav_dir = task_dir / str(SAMPLE_RATE) / split
        wav_dir.mkdir(parents=True, exist_ok=True)
        split_labels = {}
        for i in idx:
            name = wav_name(i)
            sf.write(wav_dir / name, np.clip(audio[i], -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
            split_labels[name] = labels[i]
        (task_dir / f"{split}.json").write_text(json.dumps(split_labels, indent=1))
    return task_dir


def task_metadata(name: str, embedding_type: str, prediction_type: str, seconds: float,
                  evaluation: list[str]) -> dict:
    return {
        "task_name": name, "version": "hear_sela-synth-1", "embedding_type": embedding_type,
        "prediction_type": prediction_type, "split_mode": "trainvaltest", "splits": list(SPLITS),
        "sample_duration": seconds, "evaluation": evaluation,
    }


def write_clips_csv(task_dir: Path, rows: list[tuple], extra: Sequence[str] = ()) -> None:
    """clips.csv (provenance; validate_task checks its groups): one (wav, split, TaskClip, *extra values) per row."""
    with open(task_dir / CLIPS_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["wav", "split", "fname", "start", "group", "labels", *extra])
        w.writerows([wav, split, c.fname, c.start, c.group, ",".join(c.labels), *more] for wav, split, c, *more in rows)


def new_task_dir(out_dir: Path, name: str) -> Path:
    task_dir = out_dir / name
    if task_dir.exists() and any(task_dir.iterdir()):
        raise DataError(f"task folder {task_dir} exists and is not empty; remove it or pick another --name")
    return task_dir
