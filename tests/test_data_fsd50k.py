"""FSD50K reader on a tiny replica in the exact distributed schema (Zenodo 4060432):

FSD50K.ground_truth/dev.csv    header fname,labels,mids,split; labels/mids quoted, comma-separated; split train|val
FSD50K.ground_truth/eval.csv   header fname,labels,mids
FSD50K.ground_truth/vocabulary.csv   no header: index,label,mid
FSD50K.dev_audio/<fname>.wav, FSD50K.eval_audio/<fname>.wav
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import soundfile as sf

from hear_sela.data.fsd50k import VocabularyEntry, load_fsd50k, load_vocabulary
from hear_sela.data.records import DataError

VOCAB = [(0, "Accelerating_and_revving_and_vroom", "/m/07q2z82"), (1, "Bark", "/m/05tny_"), (2, "Dog", "/m/0bt9lr"),
         (3, "Domestic_animals_and_pets", "/m/068hy"), (4, "Animal", "/m/0jbk"), (5, "Guitar", "/m/0342h"),
         (6, "Music", "/m/04rlf")]
MID = {label: mid for _, label, mid in VOCAB}
DEV = [  # fname, labels, split   (CSV order is kept, and is not sorted)
    ("64760", ["Guitar", "Music"], "train"),
    ("16399", ["Bark", "Dog", "Domestic_animals_and_pets", "Animal"], "train"),
    ("345111", ["Accelerating_and_revving_and_vroom"], "val"),
    ("21914", ["Dog", "Animal"], "val"),
    ("5", ["Music"], "train"),
]
EVAL = [("37199", ["Guitar", "Music"]), ("100", ["Bark", "Dog", "Animal"])]


def _row(*fields: str) -> str:
    return ",".join(f'"{f}"' if "," in f else f for f in fields) + "\n"


def write_replica(root, dev=DEV, eval_rows=EVAL, vocab=VOCAB):
    gt = root / "FSD50K.ground_truth"
    for d in (gt, root / "FSD50K.dev_audio", root / "FSD50K.eval_audio"):
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(gt / "dev.csv", "w") as f:
        f.write("fname,labels,mids,split\n")
        for fname, labels, split in dev:
            f.write(_row(fname, ",".join(labels), ",".join(MID[x] for x in labels), split))
            sf.write(root / "FSD50K.dev_audio" / f"{fname}.wav", rng.normal(0, 0.1, 22050), 44100)
    with open(gt / "eval.csv", "w") as f:
        f.write("fname,labels,mids\n")
        for fname, labels in eval_rows:
            f.write(_row(fname, ",".join(labels), ",".join(MID[x] for x in labels)))
            sf.write(root / "FSD50K.eval_audio" / f"{fname}.wav", rng.normal(0, 0.1, 22050), 44100)
    with open(gt / "vocabulary.csv", "w") as f:
        f.writelines(_row(str(i), label, mid) for i, label, mid in vocab)
    return root


@pytest.fixture
def replica(tmp_path):
    return write_replica(tmp_path / "FSD50K")


def test_replica_files_have_the_distributed_header_forms(replica):
    gt = replica / "FSD50K.ground_truth"
    assert (gt / "dev.csv").read_text().splitlines()[0] == "fname,labels,mids,split"
    assert (gt / "dev.csv").read_text().splitlines()[2] == (
        '16399,"Bark,Dog,Domestic_animals_and_pets,Animal","/m/05tny_,/m/0bt9lr,/m/068hy,/m/0jbk",train')
    assert (gt / "vocabulary.csv").read_text().splitlines()[0] == "0,Accelerating_and_revving_and_vroom,/m/07q2z82"


@pytest.mark.parametrize("split,expected", [
    ("dev", [r[0] for r in DEV]),
    ("train", [r[0] for r in DEV if r[2] == "train"]),
    ("val", [r[0] for r in DEV if r[2] == "val"]),
    ("eval", [r[0] for r in EVAL]),
])
def test_splits(replica, split, expected):
    records = load_fsd50k(replica, split)
    assert [r.clip_id for r in records] == expected
    folder = "FSD50K.eval_audio" if split == "eval" else "FSD50K.dev_audio"
    assert all(r.path == str(replica / folder / f"{r.clip_id}.wav") for r in records)


def test_multi_labels(replica):
    records = {r.clip_id: r.labels for r in load_fsd50k(replica, "dev")}
    assert records["16399"] == ("Bark", "Dog", "Domestic_animals_and_pets", "Animal")
    assert records["345111"] == ("Accelerating_and_revving_and_vroom",)
    assert {r.clip_id: r.labels for r in load_fsd50k(replica, "eval")}["100"] == ("Bark", "Dog", "Animal")


def test_vocabulary(replica):
    vocab = load_vocabulary(replica)
    assert vocab == [VocabularyEntry(*v) for v in VOCAB]
    labels = {lab for r in load_fsd50k(replica, "dev") + load_fsd50k(replica, "eval") for lab in r.labels}
    assert labels <= {v.label for v in vocab}


def test_vocabulary_with_a_header_is_refused(replica):
    path = replica / "FSD50K.ground_truth" / "vocabulary.csv"
    path.write_text("index,label,mid\n" + path.read_text())
    with pytest.raises(DataError, match="no header"):
        load_vocabulary(replica)


@pytest.mark.parametrize("remove,phrase", [
    ("", "FSD50K root not found"),
    ("FSD50K.ground_truth", "FSD50K.ground_truth/ is missing"),
    ("FSD50K.ground_truth/dev.csv", "dev.csv"),
    ("FSD50K.dev_audio", "audio folder missing"),
])
def test_missing_parts_are_named(tmp_path, remove, phrase):
    root = write_replica(tmp_path / "FSD50K")
    target = root / remove if remove else root
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DataError, match=phrase):
        load_fsd50k(root, "dev")


def test_row_without_audio_by_policy(replica, caplog):
    (replica / "FSD50K.dev_audio" / "21914.wav").unlink()
    with pytest.raises(DataError) as e:
        load_fsd50k(replica, "dev", on_bad_file="error")
    assert "dev.csv:5" in str(e.value) and "21914.wav" in str(e.value)
    with caplog.at_level(logging.WARNING):
        records = load_fsd50k(replica, "dev", on_bad_file="skip")
    assert [r.clip_id for r in records] == ["64760", "16399", "345111", "5"]
    assert "skipped 1 row(s)" in caplog.text and "21914.wav" in caplog.text
    assert [r.clip_id for r in load_fsd50k(replica, "train", on_bad_file="error")] == ["64760", "16399", "5"]


def test_malformed_rows(tmp_path):
    root = write_replica(tmp_path / "a", dev=[("1", ["Dog"], "test")])
    with pytest.raises(DataError, match="dev.csv:2: split must be"):
        load_fsd50k(root, "dev")
    root = write_replica(tmp_path / "b")
    dev = root / "FSD50K.ground_truth" / "dev.csv"
    dev.write_text(dev.read_text() + '77,"Dog,Animal",/m/0bt9lr,train\n')
    with pytest.raises(DataError, match="2 labels but 1 mids"):
        load_fsd50k(root, "dev")
    dev.write_text("fname,labels\n1,Dog\n")
    with pytest.raises(DataError, match="lacks column"):
        load_fsd50k(root, "dev")


def test_bad_arguments(replica):
    with pytest.raises(DataError, match="split must be one of"):
        load_fsd50k(replica, "test")
    with pytest.raises(DataError, match="on_bad_file"):
        load_fsd50k(replica, "dev", on_bad_file="ignore")


def test_prepare_cache_on_the_replica(replica, tmp_path):
    from hear_sela.config import config_from_dict
    from hear_sela.data.prepare import prepare_cache

    cfg = config_from_dict({"data": {"source": "fsd50k", "root": str(replica), "split": "val", "num_workers": 0,
                                     "segment_seconds": 0.5, "hop_seconds": 0.5, "min_segment_seconds": 0.25},
                            "train": {"out_dir": str(tmp_path / "run")}})
    cache = prepare_cache(cfg, device="cpu", progress=False)
    assert [c.clip_id for c in cache.clips] == ["345111", "21914"]
    assert cache.clips[1].labels == ("Dog", "Animal")
    assert len(cache) == 2 and cache.root == tmp_path / "run" / "cache"  # 0.5 s of 44.1 kHz audio = 1 segment each
