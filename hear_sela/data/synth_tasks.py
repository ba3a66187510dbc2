"""Small HEAR-format tasks from the embedded synth corpus (layout: `task_layout`).

Three tasks, one per kind of HEAR evaluation:
- synth_scene_multiclass: one synth class per clip, top1_acc.
- synth_scene_multilabel: mixtures of 1-3 distinct synth classes, mAP.
- synth_events: 1-3 synth events (0.3-0.6 s) at known onsets/offsets over a quiet noise floor, event_onset_200ms_fms and
  segment_1s_er.
Splits are train/valid/test (60/20/20 %, stratified by class for the multiclass task). Deterministic in `seed`.
The event placement (`event_starts`, `add_event`) is shared with `event_tasks`, which places recorded sounds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hear_sela.data.task_layout import SAMPLE_RATE, SPLITS, task_metadata, write_task

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
