"""A HEAR event task from recorded sounds placed at known onsets (`hear-sela tasks --events`).

Each row of the labels CSV (fname, label[, group column]) is one short sound, e.g. a single instrument note. Its
quiet lead-in and tail (below ONSET_FRACTION of its peak) are cut, so the sound starts at its first audible sample,
and it is capped at `max_event_seconds`. Each clip of `clip_seconds` is a low-level white-noise background (the synth
event task's NOISE_FLOOR) with 1-`max_events` sounds mixed in at random onsets, non-overlapping and with at least
MIN_EVENT_GAP s of background between them (synth_tasks.event_starts / add_event, shared with the synth event task),
each at a random peak in [0.3, 0.9]. The label of a placed sound is {"label", "start", "end"} in ms: exactly the
sample where it was placed and where it ends.

Sounds are partitioned first (train/valid/test 60/20/20 % or k folds, grouped by a CSV column, by default by file and
stratified by label: scene_tasks.assign_partitions), and each partition's clips are built from its own sounds only,
so no recording is heard in two splits. The layout is task_layout.write_task's, checked by
task_validate.validate_task; clips.csv lists one row per placed sound (clip wav, split, source fname, offset in the
source, group, label, onset/offset ms).
Deterministic in `seed`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hear_sela.data.audio import load_audio
from hear_sela.data.records import DataError
from hear_sela.data.scene_tasks import TVT_WEIGHTS, check_split_args, partition_clips, read_task_csv
from hear_sela.data.synth_tasks import FADE_SECONDS, MIN_EVENT_GAP, NOISE_FLOOR, add_event, event_starts, peak_normalise
from hear_sela.data.task_layout import (
    SAMPLE_RATE,
    TaskClip,
    new_task_dir,
    task_metadata,
    wav_name,
    write_clips_csv,
    write_task,
)
from hear_sela.data.task_validate import staged_task

ONSET_FRACTION = 0.05  # a sound starts at its first sample above 5 % of its peak (-26 dB) and ends at its last
EVENT_EVALUATION = ["event_onset_200ms_fms", "event_onset_50ms_fms"]  # heareval's score names
EVENT_CLIP_SECONDS = 4.0
MIN_SOUND_SECONDS = 2 * FADE_SECONDS  # room for the fade-in and the fade-out


def trim_sound(x: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """(S,) -> (the sound from its first to its last sample above ONSET_FRACTION of the peak, its first index)."""
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak <= 0:
        raise DataError(f"{path}: silent; an event sound needs an onset")
    loud = np.flatnonzero(np.abs(x) >= ONSET_FRACTION * peak)
    if loud[-1] + 1 - loud[0] < MIN_SOUND_SECONDS * SAMPLE_RATE:
        raise DataError(f"{path}: audible for {1000 * (loud[-1] + 1 - loud[0]) / SAMPLE_RATE:.0f} ms; an event "
                        f"sound needs at least {1000 * MIN_SOUND_SECONDS:.0f} ms")
    return x[loud[0]:loud[-1] + 1], int(loud[0])


def _fit(durations: np.ndarray, seconds: float) -> int:
    """How many of the first events fit a clip with their gaps (at least one)."""
    n = len(durations)
    while n > 1 and durations[:n].sum() + MIN_EVENT_GAP * (n + 1) > seconds:
        n -= 1
    return n


def _clip_counts(total: int, weights: tuple[float, ...]) -> list[int]:
    """`total` clips shared out in proportion to `weights` (largest remainder), each partition at least one."""
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    base = np.maximum(1, np.floor(w * total)).astype(int)
    for k in np.argsort(-(w * total - np.floor(w * total)), kind="stable")[:max(0, total - base.sum())]:
        base[k] += 1
    return base.tolist()


def write_event_task(folder: str | Path, labels_csv: str | Path, out_dir: str | Path, name: str | None = None,
                     clips: int = 240, split: str = "tvt", folds: int = 5, group_by: str | None = None,
                     clip_seconds: float | None = None, max_events: int = 4, max_event_seconds: float = 1.0,
                     seed: int = 0) -> Path:
    """Write a HEAR event task of `clips` clips from the sounds of a labels CSV (one label per sound).

    Args:
        folder: audio root; the CSV's fname is relative to it.
        out_dir: heareval's --tasks-dir; the task goes to out_dir/<name> (default: the CSV's stem).
        split: "tvt" (train/valid/test, clips 60/20/20 %) or "kfold" (`folds` presplit folds of equal size).
        group_by: CSV column whose sounds never span two partitions (default: each file is its own group).
        clip_seconds: clip length (default EVENT_CLIP_SECONDS).
        max_events, max_event_seconds: 1..max_events sounds per clip, each cut to at most max_event_seconds.
    Returns:
        the task directory, checked by `validate_task`.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    clip_seconds = EVENT_CLIP_SECONDS if clip_seconds is None else clip_seconds
    check_split_args(split, folds, clip_seconds)
    if max_events < 1 or not max_event_seconds > 0 or max_event_seconds + 2 * MIN_EVENT_GAP > clip_seconds:
        raise DataError(f"--max-events {max_events} / --max-event-seconds {max_event_seconds}: need at least one "
                        f"event of at most {clip_seconds - 2 * MIN_EVENT_GAP:.2f} s per {clip_seconds} s clip")
    sounds = read_task_csv(folder, labels_csv, "multiclass", group_by)
    splits, part = partition_clips(sounds, split, folds, seed, labels_csv)
    if clips < len(splits):
        raise DataError(f"--clips {clips}: need at least one clip per split ({len(splits)})")
    task_dir = new_task_dir(out_dir, name or Path(labels_csv).stem)
    rng = np.random.default_rng(seed)
    # every sound decoded and checked up front: a bad one is named whether or not the draw would have picked it
    trimmed = [trim_sound(load_audio(folder / c.fname, SAMPLE_RATE), folder / c.fname) for c in sounds]
    n = round(clip_seconds * SAMPLE_RATE)
    cap = round(max_event_seconds * SAMPLE_RATE)
    audio, labels, rows, indices = [], [], [], {}
    counts = _clip_counts(clips, TVT_WEIGHTS if split == "tvt" else (1.0,) * folds)
    for k, (s, count) in enumerate(zip(splits, counts)):
        pool = [i for i, p in enumerate(part) if p == k]
        indices[s] = []
        for _ in range(count):
            chosen = rng.choice(pool, size=int(rng.integers(1, max_events + 1)))
            durations = np.array([min(len(trimmed[i][0]), cap) / SAMPLE_RATE for i in chosen])
            keep = _fit(durations, clip_seconds)
            x = rng.normal(0.0, NOISE_FLOOR, n)  # (S,)
            events = []
            for i, t in zip(chosen[:keep], event_starts(rng, clip_seconds, durations[:keep])):
                sound, offset = trimmed[i]
                ev = add_event(x, t, peak_normalise(sound[:cap], rng), sounds[i].labels[0])
                events.append(ev)
                clip = TaskClip(sounds[i].fname, sounds[i].labels, sounds[i].group, offset / SAMPLE_RATE)
                rows.append((wav_name(len(audio)), s, clip, ev["start"], ev["end"]))
            indices[s].append(len(audio))
            audio.append(x)
            labels.append(events)
    meta = task_metadata(task_dir.name, "event", "multilabel", clip_seconds, EVENT_EVALUATION)
    meta.update(version="hear_sela-events-1", split_mode="presplit_kfold" if split == "kfold" else "trainvaltest",
                splits=splits)
    with staged_task(task_dir) as stage:
        write_task(stage, meta, sorted({c.labels[0] for c in sounds}), audio, labels, indices)
        write_clips_csv(stage, rows, extra=("onset_ms", "offset_ms"))
    return task_dir
