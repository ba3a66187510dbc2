"""A HEAR scene task from a folder of real audio plus a labels CSV (`hear-sela tasks`).

Clips are padded/trimmed (or cut) to one length, partitioned into `presplit_kfold` folds `fold00..` (or
train/valid/test) grouped by a CSV column, written in the layout of `task_layout` with a `clips.csv` of provenance
beside it, and checked by `task_validate` before they appear under their name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from hear_sela.data.audio import load_audio
from hear_sela.data.folder import scan_folder
from hear_sela.data.records import DataError, clip_keys, read_csv_rows, split_labels
from hear_sela.data.task_layout import (
    SAMPLE_RATE,
    SPLITS,
    TaskClip,
    new_task_dir,
    task_metadata,
    wav_name,
    write_clips_csv,
    write_task,
)
from hear_sela.data.task_validate import staged_task

MAX_DEFAULT_CLIP_SECONDS = 4.0  # the default clip length is the median duration, capped here (embedding cost)
TVT_WEIGHTS = (0.6, 0.2, 0.2)
EVALUATION = {"multiclass": ["top1_acc"], "multilabel": ["mAP", "d_prime"]}
SILENT_PEAK = 1e-3  # a cut segment whose peak stays below this (-60 dBFS) holds nothing to label
MIN_FOLDS = 3  # heareval's presplit_kfold scoring trains on k-2 folds, validates on one and tests on one


def read_task_csv(folder: str | Path, labels_csv: str | Path, mode: str = "multiclass",
                  group_by: str | None = None) -> list[TaskClip]:
    """One TaskClip per CSV row (fname relative to `folder`, labels, optional group column), checked.

    A row names an audio file under `folder` as `prepare` and `analyze` match labels CSV rows (`records.clip_keys`:
    the relative path with or without extension, "bell/bell_0000" or "bell/bell_0000.wav"); TaskClip.fname is the
    file's relative path. Every bad row is named in one DataError line: no such audio file, empty labels, two rows
    for one file, several labels in a multiclass task, an empty group.
    """
    if mode not in EVALUATION:
        raise DataError(f"--mode must be one of {sorted(EVALUATION)}, got {mode!r}")
    folder = Path(folder)
    files = {key: Path(r.path).relative_to(folder).as_posix() for r in scan_folder(folder) for key in clip_keys(r)}
    columns = ("fname", "labels") + ((group_by,) if group_by else ())
    clips, bad, seen = [], [], {}
    for line, row in read_csv_rows(labels_csv, columns):
        fname, labels = row["fname"], split_labels(row["labels"])
        path = files.get(fname)
        problem = None
        if not fname:
            problem = "empty fname"
        elif leaves_folder(fname):
            problem = f"{fname!r} is outside the audio folder (fname must be a path inside it)"
        elif path is None:
            problem = f"missing file {fname!r}"
        elif path in seen:
            problem = f"duplicate row: {fname!r} already on line {seen[path]}"
        elif not labels:
            problem = f"empty label for {fname!r}"
        elif mode == "multiclass" and len(labels) > 1:
            problem = f"{len(labels)} labels {list(labels)} for {fname!r} in a multiclass task"
        elif group_by and not row[group_by]:
            problem = f"empty {group_by!r} for {fname!r}"
        if problem:
            bad.append(f"line {line}: {problem}")
        else:
            clips.append(TaskClip(path, labels, row[group_by] if group_by else path))
        seen.setdefault(path or fname, line)
    if bad:
        shown = "; ".join(bad[:20]) + (f"; ... {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DataError(f"{labels_csv}: {len(bad)} bad row(s): {shown}")
    if not clips:
        raise DataError(f"{labels_csv}: no rows")
    return clips


def leaves_folder(fname: str) -> bool:
    """An absolute fname, or one whose `..` climbs out of the folder it is relative to (judged on the text, so a
    symlink inside the folder may still point at audio kept elsewhere)."""
    norm = os.path.normpath(fname)
    return os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep)


def audio_seconds(path: Path) -> float:
    """Duration of an audio file from its header (decoding only when the header does not tell)."""
    try:
        info = sf.info(str(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError):
        pass
    return len(load_audio(path, SAMPLE_RATE)) / SAMPLE_RATE


def default_clip_seconds(durations: list[float]) -> float:
    """The median duration, capped at MAX_DEFAULT_CLIP_SECONDS and rounded to 10 ms."""
    return max(0.01, round(min(float(np.median(durations)), MAX_DEFAULT_CLIP_SECONDS), 2))


def cut_task_clips(folder: Path, clips: list[TaskClip], seconds: float,
                   max_per_file: int | None = None) -> list[TaskClip]:
    """Cut each file into consecutive `seconds`-long clips (a tail under half a clip and silent segments dropped).

    The clips of one file keep its labels and group (by default the file itself), so folds never split a file.
    """
    out = []
    n = round(seconds * SAMPLE_RATE)
    for clip in clips:
        x = load_audio(folder / clip.fname, SAMPLE_RATE)  # (S,)
        starts = [s for s in range(0, max(1, len(x) - n // 2), n) if np.abs(x[s:s + n]).max() >= SILENT_PEAK]
        out += [TaskClip(clip.fname, clip.labels, clip.group, s / SAMPLE_RATE) for s in starts[:max_per_file]]
    return out


def assign_partitions(clips: list[TaskClip], weights: tuple[float, ...], seed: int = 0) -> list[int]:
    """Partition index per clip, sizes in proportion to `weights`; all clips of a group go to one partition.

    Groups, largest first (ties in seeded random order), go to the partition furthest below its target. When
    every group is one clip (no --group-by), the same is done per label, so partitions are stratified by label.
    """
    rng = np.random.default_rng(seed)
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    members: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        members.setdefault(c.group, []).append(i)
    grouped = any(len(m) > 1 for m in members.values())
    strata = {"": list(members)} if grouped else {}
    if not grouped:
        for g in members:
            strata.setdefault("|".join(clips[members[g][0]].labels), []).append(g)
    part = [-1] * len(clips)
    filled = np.zeros(len(w))
    for _, groups in sorted(strata.items()):
        order = [groups[j] for j in rng.permutation(len(groups))]
        order.sort(key=lambda g: -len(members[g]))  # stable: random among equal sizes
        local = np.zeros(len(w))
        total = sum(len(members[g]) for g in order)
        for g in order:
            # furthest below target within the stratum; ties go to the partition with fewer clips overall
            deficit = w * total - local
            k = int(np.lexsort((filled, -deficit))[0])
            for i in members[g]:
                part[i] = k
            local[k] += len(members[g])
            filled[k] += len(members[g])
    return part


class _TaskAudio:
    """Lazily decoded, fixed-length clips (so a task of thousands of clips never sits in memory)."""

    def __init__(self, folder: Path, clips: list[TaskClip], seconds: float):
        self.folder, self.clips, self.n = folder, clips, round(seconds * SAMPLE_RATE)

    def __getitem__(self, i: int) -> np.ndarray:  # (S,) float32, zero-padded or trimmed at the end
        c = self.clips[i]
        x = load_audio(self.folder / c.fname, SAMPLE_RATE)[round(c.start * SAMPLE_RATE):][:self.n]
        return np.pad(x, (0, self.n - len(x)))


def check_split_args(split: str, folds: int, clip_seconds: float | None) -> None:
    if split not in ("kfold", "tvt"):
        raise DataError(f"--split must be kfold or tvt, got {split!r}")
    if split == "kfold" and folds < MIN_FOLDS:
        raise DataError(f"--folds {folds}: heareval scores a k-fold task only with at least {MIN_FOLDS} folds")
    if clip_seconds is not None and not clip_seconds > 0:
        raise DataError(f"--clip-seconds {clip_seconds}: must be positive")


def partition_clips(clips: list[TaskClip], split: str, folds: int, seed: int,
                    labels_csv: str | Path) -> tuple[list[str], list[int]]:
    """(split names, partition index per clip): folds fold00.. or train/valid/test, groups kept whole, none empty."""
    splits = [f"fold{k:02d}" for k in range(folds)] if split == "kfold" else list(SPLITS)
    weights = (1.0,) * folds if split == "kfold" else TVT_WEIGHTS
    part = assign_partitions(clips, weights, seed)
    empty = [s for k, s in enumerate(splits) if k not in part]
    if empty:
        raise DataError(f"{labels_csv}: {len(clips)} clips in {len({c.group for c in clips})} group(s) leave "
                        f"{empty} empty; use fewer folds or more groups")
    return splits, part


def write_scene_task(folder: str | Path, labels_csv: str | Path, out_dir: str | Path, name: str | None = None,
                     mode: str = "multiclass", split: str = "kfold", folds: int = 5, group_by: str | None = None,
                     clip_seconds: float | None = None, cut: bool = False, max_clips_per_file: int | None = None,
                     seed: int = 0) -> Path:
    """Write a HEAR scene task from a folder of audio and a labels CSV (fname,labels[,group column]).

    Args:
        folder: audio root; the CSV's fname is relative to it.
        out_dir: heareval's --tasks-dir; the task goes to out_dir/<name> (default: the CSV's stem).
        split: "kfold" (presplit_kfold, `folds` folds) or "tvt" (train/valid/test 60/20/20 %).
        group_by: CSV column whose value never spans two partitions (speaker, source recording, ...).
        clip_seconds: every clip is padded/trimmed to this; None = median duration capped at 4 s.
        cut: cut each file into as many clip_seconds clips as it holds (grouped by file unless group_by).
    Returns:
        the task directory, checked by `validate_task`.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    check_split_args(split, folds, clip_seconds)
    clips = read_task_csv(folder, labels_csv, mode, group_by)
    if clip_seconds is None:
        clip_seconds = default_clip_seconds([audio_seconds(folder / c.fname) for c in clips])
    if cut:
        clips = cut_task_clips(folder, clips, clip_seconds, max_clips_per_file)
    splits, part = partition_clips(clips, split, folds, seed, labels_csv)
    task_dir = new_task_dir(out_dir, name or Path(labels_csv).stem)
    meta = task_metadata(task_dir.name, "scene", mode, clip_seconds, EVALUATION[mode])
    meta.update(version="hear_sela-tasks-1", split_mode="presplit_kfold" if split == "kfold" else "trainvaltest",
                splits=splits)
    vocabulary = sorted({label for c in clips for label in c.labels})
    indices = {s: [i for i, p in enumerate(part) if p == k] for k, s in enumerate(splits)}
    with staged_task(task_dir) as stage:
        write_task(stage, meta, vocabulary, _TaskAudio(folder, clips, clip_seconds), [list(c.labels) for c in clips],
                   indices)
        write_clips_csv(stage, [(wav_name(i), s, clips[i]) for s, idx in indices.items() for i in idx])
    return task_dir
