"""scripts/dev_task_labels.py: the labels CSVs of the dev tasks, from each source's file layout (fake trees of empty
files here; the script reads names only)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dev_task_labels.py"
_spec = importlib.util.spec_from_file_location("dev_task_labels", SCRIPT)
labels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(labels)

TEST_SPEAKER, TRAIN_SPEAKER = "aef8dcf5", "62581901"  # Speech Commands' hash: testing / training partition


def _touch(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_v002_partition_is_the_datasets_own_speaker_hash():
    assert labels.v002_partition(TEST_SPEAKER) == "testing"
    assert labels.v002_partition(TRAIN_SPEAKER) == "training"
    parts = [labels.v002_partition(f"{i:08x}") for i in range(4000)]
    assert 0.08 < parts.count("testing") / len(parts) < 0.12  # 10 % testing, 10 % validation
    assert 0.08 < parts.count("validation") / len(parts) < 0.12


def test_keywords_leave_out_v002_test_speakers_unless_asked(tmp_path):
    src = _touch(tmp_path / "sc", *(f"{w}/{s}_nohash_0.wav" for w in ("yes", "no") for s in (TEST_SPEAKER,
                                                                                               TRAIN_SPEAKER)))
    labels.main("keywords", src, tmp_path / "kw.csv")
    assert {r["speaker"] for r in _rows(tmp_path / "kw.csv")} == {TRAIN_SPEAKER}
    labels.main("keywords", src, tmp_path / "kw_v1.csv", keep_v002_test=True)
    assert {r["speaker"] for r in _rows(tmp_path / "kw_v1.csv")} == {TRAIN_SPEAKER, TEST_SPEAKER}


def test_philharmonia_dynamics_and_articulation(tmp_path):
    src = _touch(tmp_path / "ph", "flute/flute_A4_1_forte_normal.mp3", "flute/flute_A4_1_pianissimo_normal.mp3",
                 "flute/flute_A4_1_mezzo-piano_normal.mp3", "cello/cello_C3_05_piano_arco-normal.mp3",
                 "cello/cello_C3_1_forte_arco-major-trill.mp3", "oboe/oboe_D5_phrase_forte_staccatissimo.mp3",
                 "oboe/oboe_D5_1_forte_harmonics.mp3", "guitar/guitar_E2_1_forte_normal.mp3")
    labels.main("dynamics", src, tmp_path / "dyn.csv")
    dyn = {r["fname"]: (r["labels"], r["instrument"]) for r in _rows(tmp_path / "dyn.csv")}
    assert dyn == {"cello/cello_C3_05_piano_arco-normal.mp3": ("piano", "cello"),  # mezzo-piano, trills, guitar out
                   "flute/flute_A4_1_forte_normal.mp3": ("forte", "flute"),
                   "flute/flute_A4_1_pianissimo_normal.mp3": ("pianissimo", "flute")}
    labels.main("articulation", src, tmp_path / "art.csv")
    art = {r["fname"]: (r["labels"], r["note"]) for r in _rows(tmp_path / "art.csv")}
    assert art["cello/cello_C3_1_forte_arco-major-trill.mp3"] == ("trill", "cello_C3")
    assert art["oboe/oboe_D5_phrase_forte_staccatissimo.mp3"] == ("staccato", "oboe_D5")
    assert "oboe/oboe_D5_1_forte_harmonics.mp3" not in art  # not a family the task keeps


def test_game_sfx_classes_by_top_folder(tmp_path):
    src = _touch(tmp_path / "cc", "plmove/walk_dirt_1.ogg", "environment/weather/rain.ogg",
                 "fire_gun/rifles/shot.ogg", "menu_move/beep.ogg", "close_door/credits.md")
    labels.main("game_sfx", src, tmp_path / "sfx.csv")
    rows = {r["fname"]: (r["labels"], r["source"]) for r in _rows(tmp_path / "sfx.csv")}
    assert rows == {"environment/weather/rain.ogg": ("ambience", "environment/weather/rain.ogg"),
                    "fire_gun/rifles/shot.ogg": ("gunfire", "fire_gun/rifles/shot.ogg"),
                    "plmove/walk_dirt_1.ogg": ("footsteps", "plmove/walk_dirt_1.ogg")}


def test_ravdess_emotion_grouped_by_actor_and_actors_grouped_by_emotion(tmp_path):
    src = _touch(tmp_path / "rv", "Actor_01/03-01-05-02-01-01-01.wav", "Actor_02/03-01-01-01-02-02-02.wav",
                 "Actor_02/02-01-01-01-02-02-02.mp4")
    labels.main("emotion", src, tmp_path / "emo.csv")
    assert [(r["labels"], r["actor"]) for r in _rows(tmp_path / "emo.csv")] == [("angry", "actor01"),
                                                                                ("neutral", "actor02")]
    labels.main("actors", src, tmp_path / "act.csv")
    assert [(r["labels"], r["emotion"]) for r in _rows(tmp_path / "act.csv")] == [("actor01", "angry"),
                                                                                 ("actor02", "neutral")]
