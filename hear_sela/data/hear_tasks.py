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
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
SPLITS = ("train", "valid", "test")
SCENE_SECONDS = 2.0
EVENT_SECONDS = 3.0
NOISE_FLOOR = 0.003  # rms of the event task's background hiss (about -50 dBFS)
FADE_SECONDS = 0.01  # event fades, so onsets and offsets sit where the labels say


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


def _peak_normalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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


def _write_task(task_dir: Path, metadata: dict, vocabulary: list[str], audio: list[np.ndarray],
                labels: list, splits: dict[str, list[int]]) -> Path:
    """Write one task: metadata, vocabulary, per-split label JSON and 16-bit WAVs."""
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata, indent=2))
    rows = "".join(f"{i},{label}\n" for i, label in enumerate(vocabulary))
    (task_dir / "labelvocabulary.csv").write_text("idx,label\n" + rows)
    for split, idx in splits.items():
        wav_dir = task_dir / str(SAMPLE_RATE) / split
        wav_dir.mkdir(parents=True, exist_ok=True)
        split_labels = {}
        for i in idx:
            name = f"{i:05d}.wav"
            sf.write(wav_dir / name, np.clip(audio[i], -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
            split_labels[name] = labels[i]
        (task_dir / f"{split}.json").write_text(json.dumps(split_labels, indent=1))
    return task_dir


def _metadata(name: str, embedding_type: str, prediction_type: str, seconds: float, evaluation: list[str]) -> dict:
    return {
        "task_name": name, "version": "hear_sela-synth-1", "embedding_type": embedding_type,
        "prediction_type": prediction_type, "split_mode": "trainvaltest", "splits": list(SPLITS),
        "sample_duration": seconds, "evaluation": evaluation,
    }


def _write_scene_multiclass(task_dir: Path, classes: list[str], size: int, seed: np.random.SeedSequence,
                            synth: Synth) -> Path:
    rng = np.random.default_rng(seed)
    label_of = [i % len(classes) for i in range(size)]
    audio = [_peak_normalise(_clip(synth, classes[c], rng, SCENE_SECONDS), rng) for c in label_of]
    labels = [[classes[c]] for c in label_of]
    meta = _metadata(task_dir.name, "scene", "multiclass", SCENE_SECONDS, ["top1_acc"])
    return _write_task(task_dir, meta, classes, audio, labels, _split_indices(size, rng, label_of))


def _write_scene_multilabel(task_dir: Path, classes: list[str], size: int, seed: np.random.SeedSequence,
                            synth: Synth) -> Path:
    rng = np.random.default_rng(seed)
    audio, labels = [], []
    for _ in range(size):
        chosen = sorted(rng.choice(len(classes), size=int(rng.integers(1, 4)), replace=False).tolist())
        mix = sum(rng.uniform(0.5, 1.0) * _peak_normalise(_clip(synth, classes[c], rng, SCENE_SECONDS), rng)
                  for c in chosen)
        audio.append(_peak_normalise(mix, rng))
        labels.append([classes[c] for c in chosen])
    meta = _metadata(task_dir.name, "scene", "multilabel", SCENE_SECONDS, ["mAP"])
    return _write_task(task_dir, meta, classes, audio, labels, _split_indices(size, rng))


def _write_events(task_dir: Path, classes: list[str], size: int, seed: np.random.SeedSequence,
                  synth: Synth) -> Path:
    """1-3 non-overlapping events of 0.3-0.6 s per clip, separated by at least 0.2 s of background."""
    rng = np.random.default_rng(seed)
    n = round(EVENT_SECONDS * SAMPLE_RATE)
    fade = np.linspace(0.0, 1.0, round(FADE_SECONDS * SAMPLE_RATE))
    audio, labels = [], []
    for _ in range(size):
        x = rng.normal(0.0, NOISE_FLOOR, n)
        events = []
        durations = rng.uniform(0.3, 0.6, size=int(rng.integers(1, 4)))
        slack = EVENT_SECONDS - durations.sum() - 0.2 * (len(durations) + 1)
        gaps = 0.2 + np.diff(np.sort(rng.uniform(0, slack, len(durations))), prepend=0.0)  # >= 0.2 s each
        t = 0.0
        for gap, dur in zip(gaps, durations):
            t += gap
            c = int(rng.integers(len(classes)))
            s0, length = round(t * SAMPLE_RATE), round(dur * SAMPLE_RATE)
            ev = _peak_normalise(_clip(synth, classes[c], rng, length / SAMPLE_RATE), rng)
            ev[:len(fade)] *= fade
            ev[-len(fade):] *= fade[::-1]
            x[s0:s0 + length] += ev
            events.append({"label": classes[c], "start": 1000.0 * s0 / SAMPLE_RATE,
                           "end": 1000.0 * (s0 + length) / SAMPLE_RATE})
            t += dur
        audio.append(x)
        labels.append(events)
    meta = _metadata(task_dir.name, "event", "multilabel", EVENT_SECONDS, ["event_onset_200ms_fms", "segment_1s_er"])
    return _write_task(task_dir, meta, classes, audio, labels, _split_indices(size, rng))
