"""hear_sela.data.synth_tasks writes tasks in the layout heareval reads, with labels that match the audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hear_sela.data.synth_tasks import SAMPLE_RATE, SPLITS, write_hear_tasks

# every key heareval 2021.1.3 reads from task_metadata.json (embeddings and predictions runners)
HEAREVAL_KEYS = {"task_name", "embedding_type", "prediction_type", "split_mode", "splits", "sample_duration",
                 "evaluation"}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict[str, Path]:
    return {p.name: p for p in write_hear_tasks(tmp_path_factory.mktemp("tasks"), seed=3, size=30)}


def _split(task: Path, split: str) -> dict:
    return json.loads((task / f"{split}.json").read_text())


def test_layout_and_metadata(tasks):
    assert set(tasks) == {"synth_scene_multiclass", "synth_scene_multilabel", "synth_events"}
    kinds = {}
    for name, task in tasks.items():
        meta = json.loads((task / "task_metadata.json").read_text())
        assert set(meta) >= HEAREVAL_KEYS and meta["task_name"] == name
        assert meta["split_mode"] == "trainvaltest" and meta["splits"] == list(SPLITS)
        kinds[name] = (meta["embedding_type"], meta["prediction_type"], meta["evaluation"][0])
        vocab = pd.read_csv(task / "labelvocabulary.csv")  # as heareval reads it
        assert list(vocab.columns) == ["idx", "label"] and vocab["idx"].tolist() == list(range(len(vocab)))
        seen = set()
        for split in SPLITS:
            labels = _split(task, split)
            wavs = sorted(p.name for p in (task / str(SAMPLE_RATE) / split).glob("*.wav"))
            assert wavs == sorted(labels) and wavs, f"{name}/{split}: labels and files differ"
            assert not seen & set(labels), f"{name}: a clip is in two splits"
            seen |= set(labels)
            for wav in wavs[:3]:
                audio, sr = sf.read(task / str(SAMPLE_RATE) / split / wav, dtype=np.float32)
                assert sr == SAMPLE_RATE and audio.ndim == 1 and len(audio) == round(meta["sample_duration"] * sr)
                assert 0.05 < np.abs(audio).max() <= 1.0
        assert len(seen) == 30
    assert kinds == {"synth_scene_multiclass": ("scene", "multiclass", "top1_acc"),
                     "synth_scene_multilabel": ("scene", "multilabel", "mAP"),
                     "synth_events": ("event", "multilabel", "event_onset_200ms_fms")}


def test_scene_labels(tasks):
    vocab = set(pd.read_csv(tasks["synth_scene_multiclass"] / "labelvocabulary.csv")["label"])
    for split in SPLITS:
        labels = _split(tasks["synth_scene_multiclass"], split)
        assert all(len(v) == 1 and v[0] in vocab for v in labels.values())
        assert {v[0] for v in labels.values()} == vocab, "stratified: every class in every split"
        multi = _split(tasks["synth_scene_multilabel"], split)
        assert all(1 <= len(v) <= 3 and len(set(v)) == len(v) and set(v) <= vocab for v in multi.values())


def test_events_sit_where_their_labels_say(tasks):
    task = tasks["synth_events"]
    for split in SPLITS:
        for name, events in _split(task, split).items():
            audio, sr = sf.read(task / str(SAMPLE_RATE) / split / name, dtype=np.float32)
            assert 1 <= len(events) <= 3
            inside = np.zeros(len(audio), dtype=bool)
            for a, b in zip(events, events[1:]):
                assert a["end"] + 200 <= b["start"] + 1e-6, "events overlap or are closer than 200 ms"
            for ev in events:
                assert 0 <= ev["start"] < ev["end"] <= 1000 * len(audio) / sr
                inside[round(ev["start"] * sr / 1000):round(ev["end"] * sr / 1000)] = True
            rms_in = np.sqrt(np.mean(audio[inside] ** 2))
            rms_out = np.sqrt(np.mean(audio[~inside] ** 2))
            assert rms_in > 10 * rms_out, f"{name}: event energy not where the labels are"


def test_deterministic_in_seed(tmp_path):
    a = write_hear_tasks(tmp_path / "a", seed=1, size=25)
    b = write_hear_tasks(tmp_path / "b", seed=1, size=25)
    c = write_hear_tasks(tmp_path / "c", seed=2, size=25)
    for ta, tb, tc in zip(a, b, c):
        assert (ta / "train.json").read_text() == (tb / "train.json").read_text()
        wav = sorted((ta / "16000" / "train").glob("*.wav"))[0].name
        assert (ta / "16000/train" / wav).read_bytes() == (tb / "16000/train" / wav).read_bytes()
        other = tc / "16000/train" / wav
        assert not other.exists() or other.read_bytes() != (ta / "16000/train" / wav).read_bytes()


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="size=10"):
        write_hear_tasks(tmp_path, size=10)
    with pytest.raises(ValueError, match="n_classes=1"):
        write_hear_tasks(tmp_path, n_classes=1)
