"""`hear-sela tasks --events` / write_event_task: onsets where the sounds were placed, heareval reads the layout,
no source sound in two splits, bad sounds named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_sela.cli import main as cli_main
from hear_sela.data.audio import load_audio
from hear_sela.data.event_tasks import trim_sound, write_event_task
from hear_sela.data.records import DataError
from hear_sela.data.synth_tasks import NOISE_FLOOR
from hear_sela.data.task_layout import SAMPLE_RATE
from hear_sela.data.task_validate import validate_task


@pytest.fixture()
def sounds(tmp_path) -> tuple[Path, Path]:
    """12 tone bursts (2 labels, distinct pitches) with 0.1-0.2 s of silence before and after, labels CSV."""
    root = tmp_path / "sounds"
    root.mkdir()
    rows = []
    for i in range(12):
        label = ("low", "high")[i % 2]
        t = np.arange(round(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.5 * np.sin(2 * np.pi * (200.0 + 90.0 * i) * t) * np.exp(-3 * t)
        lead = np.zeros(round((0.1 + 0.01 * i) * SAMPLE_RATE))
        sf.write(root / f"s{i:02d}.wav", np.concatenate([lead, tone, np.zeros(1600)]), SAMPLE_RATE)
        rows.append((f"s{i:02d}.wav", label))
    csv_path = tmp_path / "events.csv"
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([("fname", "labels"), *rows])
    return root, csv_path


def _clips(task: Path) -> list[dict]:
    with open(task / "clips.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_onsets_are_where_the_sounds_were_placed(sounds, tmp_path):
    root, csv_path = sounds
    task = write_event_task(root, csv_path, tmp_path / "tasks", clips=10, clip_seconds=2.0, max_events=3, seed=1)
    labels = {s: json.loads((task / f"{s}.json").read_text()) for s in ("train", "valid", "test")}
    checked = 0
    for row in _clips(task):
        x, _ = sf.read(task / str(SAMPLE_RATE) / row["split"] / row["wav"])
        event = next(e for e in labels[row["split"]][row["wav"]] if e["start"] == float(row["onset_ms"]))
        assert event["label"] == row["labels"] and event["end"] == float(row["offset_ms"])
        s0, s1 = round(event["start"] * SAMPLE_RATE / 1000), round(event["end"] * SAMPLE_RATE / 1000)
        src, offset = trim_sound(load_audio(root / row["fname"], SAMPLE_RATE), root / row["fname"])
        assert offset / SAMPLE_RATE == pytest.approx(float(row["start"]))
        # the source's own waveform starts at the labelled onset (a 1 ms shift decorrelates these tones) ...
        inner = slice(160, s1 - s0 - 160)  # inside the 10 ms fades
        assert np.corrcoef(x[s0:s1][inner], src[:s1 - s0][inner])[0, 1] > 0.99
        # ... and before it, and after its end, there is only the noise floor
        assert np.sqrt(np.mean(x[s0 - 800:s0] ** 2)) < 2 * NOISE_FLOOR
        assert np.sqrt(np.mean(x[s1:s1 + 800] ** 2)) < 2 * NOISE_FLOOR
        checked += 1
    assert checked >= 10


@pytest.mark.integration  # heareval reads the layout
def test_layout_read_by_heareval_and_no_sound_in_two_splits(sounds, tmp_path):
    """heareval's split logic, vocabulary reader and its own scorers (by the task's metric names) on the labels."""
    from heareval.predictions.task_predictions import get_splits_from_metadata, label_vocab_nlabels
    from heareval.score import available_scores

    root, csv_path = sounds
    task = write_event_task(root, csv_path, tmp_path / "tasks", name="ev", clips=10, clip_seconds=2.0, seed=0)
    assert validate_task(task) == {"train": 6, "valid": 2, "test": 2}
    meta = json.loads((task / "task_metadata.json").read_text())
    assert meta["embedding_type"] == "event" and meta["prediction_type"] == "multilabel"
    assert meta["evaluation"] == ["event_onset_200ms_fms", "event_onset_50ms_fms"]
    assert get_splits_from_metadata(meta) == [{"train": ["train"], "valid": ["valid"], "test": ["test"]}]
    vocab, nlabels = label_vocab_nlabels(task)
    assert sorted(vocab["label"]) == ["high", "low"] and nlabels == 2
    label_to_idx = dict(zip(vocab["label"], vocab["idx"]))
    test = json.loads((task / "test.json").read_text())
    late = {f: [{**e, "start": e["start"] + 100.0} for e in ev] for f, ev in test.items()}  # 100 ms late
    scores = {name: available_scores[name](label_to_idx=label_to_idx) for name in meta["evaluation"]}
    assert scores["event_onset_50ms_fms"](test, test)[0] == ("f_measure", 1.0)
    assert scores["event_onset_50ms_fms"](late, test)[0] == ("f_measure", 0.0)
    assert scores["event_onset_200ms_fms"](late, test)[0] == ("f_measure", 1.0)
    owner: dict[str, str] = {}
    for row in _clips(task):
        assert owner.setdefault(row["fname"], row["split"]) == row["split"], row["fname"]
    assert len(set(owner.values())) == 3


def test_deterministic_in_seed(sounds, tmp_path):
    root, csv_path = sounds
    a, b, c = (write_event_task(root, csv_path, tmp_path / d, clips=6, clip_seconds=2.0, seed=s)
               for d, s in (("a", 4), ("b", 4), ("c", 5)))
    assert (a / "train.json").read_text() == (b / "train.json").read_text() != (c / "train.json").read_text()


def test_bad_sound_named_and_cli(sounds, tmp_path, capsys, caplog):
    root, csv_path = sounds
    assert cli_main(["tasks", str(root), "--labels", str(csv_path), "--out", str(tmp_path / "t0"), "--events",
                     "--clips", "5", "--clip-seconds", "2"]) == 0
    assert "5 clips: train 3, valid 1, test 1" in capsys.readouterr().out
    sf.write(root / "s03.wav", np.zeros(8000), SAMPLE_RATE)
    with pytest.raises(DataError, match=r"s03\.wav: silent"):
        write_event_task(root, csv_path, tmp_path / "t1", clips=40, clip_seconds=2.0, seed=0)
    rc = cli_main(["tasks", str(root), "--labels", str(csv_path), "--out", str(tmp_path / "t2"), "--events",
                   "--clips", "40", "--clip-seconds", "2"])
    assert rc == 1 and "s03.wav: silent" in caplog.text
    with pytest.raises(DataError, match="--max-event-seconds"):
        write_event_task(root, csv_path, tmp_path / "t3", clip_seconds=1.0, max_event_seconds=0.9)
