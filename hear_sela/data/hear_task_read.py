"""Reading a HEAR scene task back into memory (the layout `data.task_layout` writes and heareval reads), for probes
that run inside a training process: the online evaluation.

Legend: N clips, S samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hear_sela.data.audio import load_audio
from hear_sela.data.records import DataError, read_csv_rows

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SceneTaskClips:
    """One multiclass scene task's clips with their class and the split each belongs to."""

    name: str
    audio: np.ndarray  # (N, S) float32 at 16 kHz, every clip the task's sample_duration
    labels: np.ndarray  # (N,) int64 index into `classes`
    splits: np.ndarray  # (N,) int64 index into `split_names`
    split_names: tuple[str, ...]  # "fold00", ... (presplit_kfold) or "train", "valid", "test"
    split_mode: str  # "presplit_kfold" | "trainvaltest"
    classes: tuple[str, ...]

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train, test) boolean masks (N,) as heareval scores the task: each fold held out in turn
        (presplit_kfold), or train + valid against test (trainvaltest)."""
        if self.split_mode == "trainvaltest":
            test = self.splits == self.split_names.index("test")
            return [(~test, test)]
        return [(self.splits != i, self.splits == i) for i in range(len(self.split_names))]


def is_scene_multiclass(task_dir: str | Path) -> bool:
    """A folder holding a HEAR scene task with one label per clip (what `read_scene_task` reads)."""
    meta_path = Path(task_dir) / "task_metadata.json"
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    return meta.get("embedding_type") == "scene" and meta.get("prediction_type") == "multiclass"


def read_scene_task(task_dir: str | Path, max_clips: int = 0, seed: int = 0) -> SceneTaskClips:
    """A multiclass scene task's clips, all of them or a fixed random subset of `max_clips` (seeded, so the same
    clips at every evaluation and in every run). Errors name the file."""
    task_dir = Path(task_dir)
    meta_path = task_dir / "task_metadata.json"
    if not is_scene_multiclass(task_dir):
        raise DataError(f"{meta_path}: not a multiclass scene task (or missing)")
    meta = json.loads(meta_path.read_text())
    split_names = tuple(meta["splits"])
    if meta["split_mode"] == "trainvaltest" and "test" not in split_names:
        raise DataError(f"{meta_path}: split_mode trainvaltest without a test split")
    classes = tuple(r["label"] for _, r in sorted(read_csv_rows(task_dir / "labelvocabulary.csv", ("idx", "label")),
                                                  key=lambda row: int(row[1]["idx"])))
    index = {c: i for i, c in enumerate(classes)}
    entries = []  # (split index, file, class index)
    for s, split in enumerate(split_names):
        for fname, labels in sorted(json.loads((task_dir / f"{split}.json").read_text()).items()):
            if len(labels) != 1 or labels[0] not in index:
                raise DataError(f"{task_dir}/{split}.json: {fname} has labels {labels}, want one of the vocabulary")
            entries.append((s, task_dir / str(SAMPLE_RATE) / split / fname, index[labels[0]]))
    if max_clips and len(entries) > max_clips:
        keep = np.sort(np.random.default_rng(seed).choice(len(entries), max_clips, replace=False))
        entries = [entries[i] for i in keep]
    audio = np.stack([load_audio(path, SAMPLE_RATE) for _, path, _ in entries]).astype(np.float32)  # (N, S)
    return SceneTaskClips(name=str(meta.get("task_name", task_dir.name)), audio=audio,
                          labels=np.array([c for _, _, c in entries], dtype=np.int64),
                          splits=np.array([s for s, _, _ in entries], dtype=np.int64), split_names=split_names,
                          split_mode=str(meta["split_mode"]), classes=classes)
