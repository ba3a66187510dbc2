"""Small HEAR-format tasks from the embedded synth corpus, in exactly the layout heareval's runners read.

    <out_dir>/<task>/task_metadata.json     task_name, version, embedding_type, prediction_type, split_mode,
                                            splits, sample_duration, evaluation (first = primary score)
    <out_dir>/<task>/labelvocabulary.csv    idx,label
    <out_dir>/<task>/<split>.json           {"00012.wav": ["label", ...]}   (scene)
                                            {"00012.wav": [{"label", "start", "end"} in ms]}   (event)
    <out_dir>/<task>/16000/<split>/*.wav    16-bit PCM mono, every clip of a task the same length

Three tasks, one per kind of HEAR evaluation:
- synth_scene_multiclass: one synth class per clip, top1_acc.
- synth_scene_multilabel: mixtures of 1-3 distinct synth classes, mAP.
- synth_events: 1-3 synth events (0.3-0.6 s) at known onsets/offsets over a quiet noise floor, event_onset_200ms_fms and
  segment_1s_er.
Splits are train/valid/test (60/20/20 %, stratified by class for the multiclass task). Deterministic in `seed`.

`write_scene_task` (the `hear-sela tasks` command) writes the same layout for real audio: a folder plus a labels
CSV, clips padded/trimmed (or cut) to one length, `presplit_kfold` folds `fold00..` (or train/valid/test) grouped by
a CSV column, a `clips.csv` of provenance beside it, and `validate_task` checks the result.
`hear_sela.data.event_tasks.write_event_task` (`hear-sela tasks --events`) places recorded sounds at known onsets
with the synth event task's placement (`event_starts`, `add_event`) and this module's writer and validation.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from hear_sela.data.audio import load_audio
from hear_sela.data.folder import scan_folder
from hear_sela.data.records import DataError, clip_keys, read_csv_rows, split_labels

SAMPLE_RATE = 16000
SPLITS = ("train", "valid", "test")
SCENE_SECONDS = 2.0
EVENT_SECONDS = 3.0
NOISE_FLOOR = 0.003  # rms of the event task's background hiss (about -50 dBFS)
FADE_SECONDS = 0.01  # event fades, so onsets and offsets sit where the labels say
MIN_EVENT_GAP = 0.2  # s of background before each event and after the last


def write_hear_tasks(out_dir: str | Path, seed: int = 0, size: int = 60, n_classes: int = 5) -> list[Path]:
    """Write the three tasks under `out_dir`; returns their directories.

    Args:
        out_dir: parent folder (heareval's --tasks-dir).
        seed: everything (classes' sounds, mixtures, event placement, splits) follows from it.
        size: clips per task (at least 5 per class, so every split sees every class).
        n_classes: synth classes used per task, spread over the corpus's class list.
    """
    from hear_sela.data.synth import SYNTH_CLASSES, synthesize_clip

    if n_classes < 2 or n_classes > len(SYNTH_CLASSES):
        raise ValueError(f"n_classes={n_classes} must be in [2, {len(SYNTH_CLASSES)}]")
    if size < 5 * n_classes:
        raise ValueError(f"size={size} clips is too few for {n_classes} classes (need >= {5 * n_classes})")
    # classes spread over the list, so the tasks do not hinge on a few similar generators
    classes = [SYNTH_CLASSES[i] for i in np.linspace(0, len(SYNTH_CLASSES) - 1, n_classes).round().astype(int)]
    out_dir = Path(out_dir)
    root = np.random.SeedSequence(seed)
    seeds = root.spawn(3)
    return [
        _write_scene_multiclass(out_dir / "synth_scene_multiclass", classes, size, seeds[0], synthesize_clip),
        _write_scene_multilabel(out_dir / "synth_scene_multilabel", classes, size, seeds[1], synthesize_clip),
        _write_events(out_dir / "synth_events", classes, size, seeds[2], synthesize_clip),
    ]


Synth = Callable[..., np.ndarray]


def _clip(synth: Synth, name: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """One synth clip of exactly `seconds`, float64 (S,)."""
    n = round(seconds * SAMPLE_RATE)
    x = np.asarray(synth(name, rng, SAMPLE_RATE, seconds), dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError(f"synth class {name!r} produced non-finite samples")
    return np.pad(x, (0, max(0, n - len(x))))[:n]


def peak_normalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale to a random peak in [0.3, 0.9], so loudness alone tells nothing about the label."""
    peak = np.abs(x).max()
    return x * (rng.uniform(0.3, 0.9) / peak) if peak > 0 else x


def _split_indices(n: int, rng: np.random.Generator, groups: list[int] | None = None) -> dict[str, list[int]]:
    """60/20/20 % split of range(n); stratified by `groups` when given."""
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    members = [list(range(n))] if groups is None else [[i for i in range(n) if groups[i] == g]
                                                         for g in sorted(set(groups))]
    for idx in members:
        idx = list(rng.permutation(idx))
        n_valid = n_test = max(1, round(0.2 * len(idx)))
        out["valid"] += idx[:n_valid]
        out["test"] += idx[n_valid:n_valid + n_test]
        out["train"] += idx[n_valid + n_test:]
    return {s: sorted(int(i) for i in v) for s, v in out.items()}


def wav_name(i: int) -> str:
    return f"{i:05d}.wav"


def write_task(task_dir: Path, metadata: dict, vocabulary: list[str], audio: Sequence[np.ndarray] | _TaskAudio,
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


def _write_scene_multiclass(task_dir: Path, classes: list[str], size: int, seed: np.random.SeedSequence,
                            synth: Synth) -> Path:
    rng = np.random.default_rng(seed)
    label_of = [i % len(classes) for i in range(size)]
    audio = [peak_normalise(_clip(synth, classes[c], rng, SCENE_SECONDS), rng) for c in label_of]
    labels = [[classes[c]] for c in label_of]
    meta = task_metadata(task_dir.name, "scene", "multiclass", SCENE_SECONDS, ["top1_acc"])
    return write_task(task_dir, meta, classes, audio, labels, _split_indices(size, rng, label_of))


def _write_scene_multilabel(task_dir: Path, classes: list[str], size: int, seed: np.random.SeedSequence,
                            synth: Synth) -> Path:
    rng = np.random.default_rng(seed)
    audio, labels = [], []
    for _ in range(size):
        chosen = sorted(rng.choice(len(classes), size=int(rng.integers(1, 4)), replace=False).tolist())
        mix = sum(rng.uniform(0.5, 1.0) * peak_normalise(_clip(synth, classes[c], rng, SCENE_SECONDS), rng)
                  for c in chosen)
        audio.append(peak_normalise(mix, rng))
        labels.append([classes[c] for c in chosen])
    meta = task_metadata(task_dir.name, "scene", "multilabel", SCENE_SECONDS, ["mAP"])
    return write_task(task_dir, meta, classes, audio, labels, _split_indices(size, rng))


def event_starts(rng: np.random.Generator, seconds: float, durations: np.ndarray,
                 min_gap: float = MIN_EVENT_GAP) -> list[float]:
    """Random onsets (s) for non-overlapping events of `durations` (s), in that order, within `seconds`, with at
    least `min_gap` s of background before each event and after the last; the durations must fit."""
    slack = seconds - durations.sum() - min_gap * (len(durations) + 1)
    if slack < 0:
        raise ValueError(f"{len(durations)} events of {durations.sum():.2f} s in all do not fit a {seconds} s clip")
    gaps = min_gap + np.diff(np.sort(rng.uniform(0, slack, len(durations))), prepend=0.0)  # >= min_gap each
    starts, t = [], 0.0
    for gap, dur in zip(gaps, durations):
        t += gap
        starts.append(t)
        t += dur
    return starts


def add_event(x: np.ndarray, start: float, sound: np.ndarray, label: str) -> dict:
    """Mix `sound` (S_e,) into `x` (S,) in place from `start` s, faded in and out over FADE_SECONDS so the onset
    and offset sit where the returned HEAR event label ({"label", "start", "end"} in ms) says."""
    s0, fade = round(start * SAMPLE_RATE), np.linspace(0.0, 1.0, round(FADE_SECONDS * SAMPLE_RATE))
    ev = np.array(sound, dtype=np.float64)
    ev[:len(fade)] *= fade
    ev[-len(fade):] *= fade[::-1]
    x[s0:s0 + len(ev)] += ev
    return {"label": label, "start": 1000.0 * s0 / SAMPLE_RATE, "end": 1000.0 * (s0 + len(ev)) / SAMPLE_RATE}


def _write_events(task_dir: Path, classes: list[str], size: int, seed: np.random.SeedSequence,
                  synth: Synth) -> Path:
    """1-3 non-overlapping events of 0.3-0.6 s per clip, separated by at least 0.2 s of background."""
    rng = np.random.default_rng(seed)
    n = round(EVENT_SECONDS * SAMPLE_RATE)
    audio, labels = [], []
    for _ in range(size):
        x = rng.normal(0.0, NOISE_FLOOR, n)
        durations = rng.uniform(0.3, 0.6, size=int(rng.integers(1, 4)))
        events = []
        for t, dur in zip(event_starts(rng, EVENT_SECONDS, durations), durations):
            c = int(rng.integers(len(classes)))
            length = round(dur * SAMPLE_RATE)
            ev = peak_normalise(_clip(synth, classes[c], rng, length / SAMPLE_RATE), rng)
            events.append(add_event(x, t, ev, classes[c]))
        audio.append(x)
        labels.append(events)
    meta = task_metadata(task_dir.name, "event", "multilabel", EVENT_SECONDS,
                         ["event_onset_200ms_fms", "segment_1s_er"])
    return write_task(task_dir, meta, classes, audio, labels, _split_indices(size, rng))


# ---------------------------------------------------------------- scene tasks from a folder of audio + labels CSV

MAX_DEFAULT_CLIP_SECONDS = 4.0  # the default clip length is the median duration, capped here (embedding cost)
TVT_WEIGHTS = (0.6, 0.2, 0.2)
EVALUATION = {"multiclass": ["top1_acc"], "multilabel": ["mAP", "d_prime"]}
SILENT_PEAK = 1e-3  # a cut segment whose peak stays below this (-60 dBFS) holds nothing to label
MIN_FOLDS = 3  # heareval's presplit_kfold scoring trains on k-2 folds, validates on one and tests on one
CLIPS_CSV = "clips.csv"  # written beside the task: wav, split, source fname, segment, group (provenance)


@dataclass(frozen=True)
class TaskClip:
    """One clip of a task: `fname` (relative to the audio folder) from `start` s, its labels and its group."""

    fname: str
    labels: tuple[str, ...]
    group: str
    start: float = 0.0


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


def new_task_dir(out_dir: Path, name: str) -> Path:
    task_dir = out_dir / name
    if task_dir.exists() and any(task_dir.iterdir()):
        raise DataError(f"task folder {task_dir} exists and is not empty; remove it or pick another --name")
    return task_dir


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


def write_clips_csv(task_dir: Path, rows: list[tuple], extra: Sequence[str] = ()) -> None:
    """clips.csv (provenance; validate_task checks its groups): one (wav, split, TaskClip, *extra values) per row."""
    with open(task_dir / CLIPS_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["wav", "split", "fname", "start", "group", "labels", *extra])
        w.writerows([wav, split, c.fname, c.start, c.group, ",".join(c.labels), *more] for wav, split, c, *more in rows)


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
