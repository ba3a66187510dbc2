"""`hear-sela tasks` / write_scene_task: layout read by heareval's own loader code, grouped folds, bad rows named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_sela.cli import main as cli_main
from hear_sela.data import synth_tasks
from hear_sela.data.audio import AudioError
from hear_sela.data.records import DataError
from hear_sela.data.scene_tasks import assign_partitions, write_scene_task
from hear_sela.data.task_layout import SAMPLE_RATE, TaskClip
from hear_sela.data.task_validate import validate_task


def _tone(seconds: float, freq: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return 0.5 * np.sin(2 * np.pi * freq * t)


@pytest.fixture()
def folder(tmp_path) -> tuple[Path, Path]:
    """12 speakers x 3 words, varied lengths and rates (one 44.1 kHz stereo file), labels CSV with a speaker column."""
    root = tmp_path / "audio"
    rows = []
    for s in range(12):
        for w, word in enumerate(("yes", "no", "up")):
            name = f"{word}/spk{s:02d}_{w}.wav"
            (root / word).mkdir(parents=True, exist_ok=True)
            sr = 44100 if (s, w) == (0, 0) else SAMPLE_RATE
            x = _tone(0.6 + 0.1 * ((s + w) % 5), 200.0 * (w + 1), sr)
            sf.write(root / name, np.stack([x, x], 1) if sr == 44100 else x, sr)
            rows.append((name, word, f"spk{s:02d}"))
    csv_path = tmp_path / "kw.csv"
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([("fname", "labels", "speaker"), *rows])
    return root, csv_path


def _heareval_read(task: Path) -> dict:
    """Read the task as heareval does: its split logic on the metadata, its vocabulary and label reading."""
    import pandas as pd
    from heareval.predictions.task_predictions import get_splits_from_metadata, label_vocab_nlabels

    meta = json.loads((task / "task_metadata.json").read_text())
    data_splits = get_splits_from_metadata(meta)
    vocab, nlabels = label_vocab_nlabels(task)  # reads labelvocabulary.csv
    assert list(vocab.columns) == ["idx", "label"] and nlabels == len(vocab)
    label_to_idx = dict(zip(vocab["label"], vocab["idx"]))
    splits = {}
    for split in meta["splits"]:
        labels = json.load((task / f"{split}.json").open())
        for fname, lab in labels.items():
            wav, sr = sf.read(task / str(SAMPLE_RATE) / split / fname)
            assert sr == SAMPLE_RATE and len(wav) == round(meta["sample_duration"] * sr)
            assert [label_to_idx[x] for x in lab]  # every label in the vocabulary (KeyError otherwise)
        splits[split] = labels
    assert isinstance(pd.DataFrame(vocab), pd.DataFrame)
    return {"meta": meta, "data_splits": data_splits, "splits": splits}


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _write_rows(path: Path, rows: list) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _clips(task: Path) -> list[dict]:
    with open(task / "clips.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.integration  # heareval reads the layout
def test_kfold_layout_read_by_heareval(folder, tmp_path):
    root, csv_path = folder
    task = write_scene_task(root, csv_path, tmp_path / "tasks", name="kw", group_by="speaker", folds=4)
    read = _heareval_read(task)
    meta = read["meta"]
    assert meta["split_mode"] == "presplit_kfold" and meta["splits"] == ["fold00", "fold01", "fold02", "fold03"]
    assert meta["embedding_type"] == "scene" and meta["prediction_type"] == "multiclass"
    assert meta["evaluation"][0] == "top1_acc"
    assert len(read["data_splits"]) == 4 and all(len(s["train"]) == 2 for s in read["data_splits"])
    assert sum(len(v) for v in read["splits"].values()) == 36
    assert meta["sample_duration"] == pytest.approx(0.8)  # median of 0.6..1.0 s
    # heareval's embeddings runner needs exactly these to exist
    for split in meta["splits"]:
        assert (task / f"{split}.json").is_file() and (task / "16000" / split).is_dir()


def test_grouped_folds_never_split_a_group(folder, tmp_path):
    root, csv_path = folder
    task = write_scene_task(root, csv_path, tmp_path / "tasks", name="kw", group_by="speaker", folds=5, seed=3)
    fold_of: dict[str, set] = {}
    for row in _clips(task):
        fold_of.setdefault(row["group"], set()).add(row["split"])
        assert row["group"] == Path(row["fname"]).name.split("_")[0]  # the CSV's speaker column
    assert len(fold_of) == 12 and all(len(f) == 1 for f in fold_of.values())
    sizes = [len(json.loads((task / f"fold0{k}.json").read_text())) for k in range(5)]
    assert max(sizes) - min(sizes) <= 3  # groups of 3 clips: balanced up to one group


def test_ungrouped_partitions_are_stratified():
    clips = [TaskClip(f"{i}.wav", (f"c{i % 3}",), f"{i}.wav") for i in range(30)]
    part = assign_partitions(clips, (1.0,) * 5, seed=0)
    for label in ("c0", "c1", "c2"):
        assert sorted(part[i] for i, c in enumerate(clips) if c.labels == (label,)) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_tvt_multilabel_and_fixed_length(folder, tmp_path):
    root, csv_path = folder
    rows = _read_rows(csv_path)
    rows[1][1] = "yes,loud"  # one multilabel row
    multi = tmp_path / "multi.csv"
    _write_rows(multi, rows)
    task = write_scene_task(root, multi, tmp_path / "tasks", mode="multilabel", split="tvt", group_by="speaker",
                            clip_seconds=0.5)
    read = _heareval_read(task)
    assert read["meta"]["split_mode"] == "trainvaltest" and read["meta"]["evaluation"][0] == "mAP"
    assert [sorted(s) for s in read["data_splits"]] == [["test", "train", "valid"]]
    n = {s: len(v) for s, v in read["splits"].items()}
    assert n["train"] > n["valid"] > 0 and n["test"] > 0 and sum(n.values()) == 36
    assert ["loud", "yes"] in [sorted(v) for v in read["splits"]["train"].values()] + \
        [sorted(v) for s in ("valid", "test") for v in read["splits"][s].values()]


def test_cut_groups_segments_by_file(tmp_path):
    root = tmp_path / "a"
    root.mkdir()
    rows = [("fname", "labels")]
    for i in range(6):
        x = _tone(5.2, 300 + 50 * i)
        x[round(2 * SAMPLE_RATE):round(3 * SAMPLE_RATE)] = 0.0  # one silent segment, dropped
        sf.write(root / f"f{i}.wav", x, SAMPLE_RATE)
        rows.append((f"f{i}.wav", "a" if i % 2 else "b"))
    _write_rows(tmp_path / "l.csv", rows)
    task = write_scene_task(root, tmp_path / "l.csv", tmp_path / "t", cut=True, clip_seconds=1.0, folds=3)
    clips = _clips(task)
    assert len(clips) == 6 * 4  # 5 whole seconds + a 0.2 s tail (dropped), minus the silent one
    by_file: dict[str, set] = {}
    for r in clips:
        by_file.setdefault(r["fname"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_file.values())


def test_bad_rows_are_all_named(folder, tmp_path):
    root, csv_path = folder
    rows = _read_rows(csv_path)
    rows.append(["no/ghost.wav", "no", "spk99"])  # line 38: missing file
    rows.append(list(rows[3]))  # line 39: duplicate of line 4
    rows[5][1] = ""  # line 6: empty label
    rows[7][1] = "yes,no"  # line 8: two labels in a multiclass task
    bad = tmp_path / "bad.csv"
    _write_rows(bad, rows)
    with pytest.raises(DataError) as e:
        write_scene_task(root, bad, tmp_path / "tasks", group_by="speaker")
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "4 bad row(s)" in msg
    assert "line 38: missing file 'no/ghost.wav'" in msg
    assert f"line 39: duplicate row: {rows[3][0]!r} already on line 4" in msg
    assert "line 6: empty label" in msg and "line 8: 2 labels" in msg
    assert not (tmp_path / "tasks").exists()


def test_cli_one_line_errors_and_success(folder, tmp_path, capsys, caplog):
    root, csv_path = folder
    assert cli_main(["tasks", str(root), "--labels", str(csv_path), "--out", str(tmp_path / "t"),
                     "--group-by", "nope"]) == 1
    assert "lacks column(s) ['nope']" in caplog.text
    assert cli_main(["tasks", str(root), "--labels", str(csv_path), "--out", str(tmp_path / "t"), "--name", "kw",
                     "--group-by", "speaker", "--folds", "20"]) == 1  # 12 speakers cannot fill 20 folds
    assert cli_main(["tasks", str(root), "--labels", str(csv_path), "--out", str(tmp_path / "t"), "--name", "kw",
                     "--group-by", "speaker", "--folds", "3"]) == 0
    assert "36 clips" in capsys.readouterr().out


def test_validate_catches_a_broken_layout(folder, tmp_path):
    root, csv_path = folder
    task = write_scene_task(root, csv_path, tmp_path / "tasks", name="kw", group_by="speaker", folds=3)
    assert sum(validate_task(task).values()) == 36
    rows = _clips(task)
    moved = next(r for r in rows if r["split"] != rows[0]["split"])
    lines = (task / "clips.csv").read_text().splitlines()
    # a clip of the first row's group claimed by another split: the group now spans two
    lines[1 + rows.index(moved)] = lines[1 + rows.index(moved)].replace(moved["group"], rows[0]["group"])
    (task / "clips.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="is in fold"):
        validate_task(task)
    sf.write(task / "16000" / "fold00" / next(iter(json.loads((task / "fold00.json").read_text()))),
             np.zeros(10), SAMPLE_RATE)
    with pytest.raises(DataError, match="want 16000 Hz mono"):
        validate_task(task)


def test_synth_and_folder_tasks_share_one_layout_writer():
    """The synth tasks and user tasks share write_task (one place that writes the HEAR layout)."""
    from hear_sela.data import event_tasks, scene_tasks

    assert synth_tasks.write_task is scene_tasks.write_task is event_tasks.write_task
    assert synth_tasks.write_task.__module__ == "hear_sela.data.task_layout"


def test_extensionless_names_as_prepare_and_analyze_match_them(folder, tmp_path):
    """FSD50K's ground truth and the synth corpus's labels.csv name clips without extension ("bell/bell_0000");
    `tasks` matches rows to files by the rule `prepare` and `analyze` use (records.clip_keys)."""
    root, csv_path = folder
    rows = _read_rows(csv_path)
    for r in rows[1:]:
        r[0] = r[0].removesuffix(".wav")  # yes/spk00_0
    rows[2][0] += ".wav"  # one row with its extension: both forms in one CSV
    bare = tmp_path / "bare.csv"
    _write_rows(bare, rows)
    task = write_scene_task(root, bare, tmp_path / "tasks", group_by="speaker", folds=3)
    assert {c["fname"] for c in _clips(task)} == {r[0] for r in _read_rows(csv_path)[1:]}  # files, with extension
    rows.append([rows[2][0].removesuffix(".wav"), "no", "spk01"])  # the same file as line 3, without extension
    _write_rows(bare, rows)
    with pytest.raises(DataError, match=r"duplicate row: '[a-z]+/spk\d\d_\d' already on line 3"):
        write_scene_task(root, bare, tmp_path / "tasks2", group_by="speaker", folds=3)


def test_synth_corpus_labels_csv_makes_a_task(tmp_path, capsys):
    from hear_sela.data.synth import write_synth_corpus

    corpus = tmp_path / "corpus"
    write_synth_corpus(corpus, clips_per_class=3, clip_seconds=0.5, classes=["bell", "rain"], progress=False)
    assert cli_main(["tasks", str(corpus), "--labels", str(corpus / "labels.csv"), "--out", str(tmp_path / "t"),
                     "--folds", "3"]) == 0
    assert "6 clips" in capsys.readouterr().out


def test_rows_that_leave_the_folder_are_refused(folder, tmp_path):
    """A fname of ../x.wav or /abs/x.wav would copy a file from outside FOLDER into the task."""
    root, csv_path = folder
    outside = tmp_path / "secret.wav"
    sf.write(outside, _tone(0.8, 300.0), SAMPLE_RATE)
    rows = _read_rows(csv_path)
    rows.append(["../secret.wav", "yes", "spk98"])  # line 38
    rows.append([str(outside), "no", "spk99"])  # line 39
    bad = tmp_path / "escape.csv"
    _write_rows(bad, rows)
    with pytest.raises(DataError) as e:
        write_scene_task(root, bad, tmp_path / "tasks", group_by="speaker", folds=3)
    msg = str(e.value)
    assert "2 bad row(s)" in msg and "line 38: '../secret.wav' is outside the audio folder" in msg
    assert f"line 39: {str(outside)!r} is outside the audio folder" in msg
    assert not (tmp_path / "tasks").exists()


def test_a_failed_write_leaves_no_task_behind(folder, tmp_path):
    """NaN audio found while writing: no task folder (evaluate would pick it up), no hidden leftover, and the rerun
    after the fix is not refused."""
    root, csv_path = folder
    good = sf.read(root / "up/spk05_2.wav")[0]
    sf.write(root / "up/spk05_2.wav", np.full_like(good, np.nan), SAMPLE_RATE, subtype="FLOAT")
    tasks = tmp_path / "tasks"
    with pytest.raises(AudioError, match="spk05_2.wav"):
        write_scene_task(root, csv_path, tasks, name="kw", group_by="speaker", folds=3, clip_seconds=1.0)
    assert list(tasks.iterdir()) == []
    sf.write(root / "up/spk05_2.wav", good, SAMPLE_RATE)
    task = write_scene_task(root, csv_path, tasks, name="kw", group_by="speaker", folds=3, clip_seconds=1.0)
    assert sum(validate_task(task).values()) == 36 and [p.name for p in tasks.iterdir()] == ["kw"]


def test_fewer_than_three_folds_are_refused(folder, tmp_path):
    """heareval cannot score a presplit_kfold task of 2 folds."""
    root, csv_path = folder
    with pytest.raises(DataError, match="--folds 2: heareval scores a k-fold task only with at least 3 folds"):
        write_scene_task(root, csv_path, tmp_path / "tasks", group_by="speaker", folds=2)
    assert not (tmp_path / "tasks").exists()


def test_a_csv_with_a_utf8_bom_is_read(folder, tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark; the first column is still `fname`."""
    root, csv_path = folder
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    task = write_scene_task(root, bom, tmp_path / "tasks", group_by="speaker", folds=3)
    assert sum(validate_task(task).values()) == 36
