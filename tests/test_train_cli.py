"""What a user meets around training: a changed data set under --resume, short clips, ~ in paths, and one-line
errors (no traceback) for expected failures at the command line, Ctrl-C included."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from hear_sela.checkpoint import load_checkpoint, save_checkpoint
from hear_sela.cli import main
from hear_sela.config import config_from_dict, config_to_dict, load_config
from hear_sela.training.loop import train
from hear_sela.training.state import ResumeError, read_checkpoint
from helpers.training import cpu_config


def write_wav(path: Path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 0.1, int(16000 * seconds)) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(x.tobytes())


def folder_config(tmp_path: Path, **over):
    root = tmp_path / "audio"
    over = {"data.source": "folder", "data.root": str(root), "data.segment_seconds": 0.5, "data.hop_seconds": 0.25,
            "data.min_segment_seconds": 0.3, "train.epochs": 1, **over}
    return cpu_config(tmp_path / "run", **over)


def test_resume_on_changed_data_is_refused_before_the_cache_is_touched(tmp_path: Path):
    for i in range(6):
        write_wav(tmp_path / "audio" / f"clip{i}.wav", 1.0, i)
    cfg = folder_config(tmp_path, **{"train.epochs": 1})
    train(cfg)
    n_before = read_checkpoint(tmp_path / "run" / "last.pt").label_store.labels.shape[1]
    manifest = tmp_path / "run" / "cache" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    write_wav(tmp_path / "audio" / "new_one.wav", 1.0, 9)
    (tmp_path / "audio" / "clip2.wav").unlink()
    longer = folder_config(tmp_path, **{"train.epochs": 2})
    with pytest.raises(ResumeError) as e:
        train(longer, resume="auto")
    msg = str(e.value)
    assert "1 file(s) added" in msg and "new_one.wav" in msg and "1 file(s) removed" in msg and "clip2.wav" in msg
    assert "train.out_dir" in msg and "train.resume_relabel=true" in msg and "\n" not in msg
    assert manifest.stat().st_mtime_ns == stamp  # the old cache is still there, untouched
    # the explicit way on: the resumed weights label the new data and training continues
    relabel = folder_config(tmp_path, **{"train.epochs": 2, "train.resume_relabel": True})
    final = train(relabel, resume="auto")
    ckpt = read_checkpoint(final)
    assert ckpt.epoch == 2 and ckpt.label_store.labels.shape[1] == n_before  # 6 clips before, 6 now
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    relabelled = [r for r in rows if r.get("relabel")]
    assert len(relabelled) == 1 and relabelled[0]["step"] == load_checkpoint(final)["step"] // 2
    assert json.loads(manifest.read_text())["n_input_clips"] == 6
    assert any(c["path"].endswith("new_one.wav") for c in json.loads(manifest.read_text())["clips"])


def test_short_clips_are_named_and_kept_zero_padded_on_request(tmp_path: Path, caplog):
    from hear_sela.data.prepare import prepare_cache

    for i, seconds in enumerate((1.0, 0.2, 0.8)):
        write_wav(tmp_path / "audio" / f"c{i}.wav", seconds, i)
    with caplog.at_level("INFO"):
        dropped = prepare_cache(folder_config(tmp_path, **{"data.cache_dir": str(tmp_path / "a")}))
    assert [c["path"] for c in dropped.manifest["too_short"]] == [str(tmp_path / "audio" / "c1.wav")]
    assert "c1.wav" in caplog.text and "data.min_segment_seconds=0.3" in caplog.text and "data.pad_short=true" \
        in caplog.text
    kept = prepare_cache(folder_config(tmp_path, **{"data.cache_dir": str(tmp_path / "b"), "data.pad_short": True}))
    assert kept.manifest["too_short"] == [] and len(kept) == len(dropped) + 1
    short = next(i for i, c in enumerate(kept.clips) if c.path.endswith("c1.wav"))
    first = kept.manifest["clips"][short]["first_segment"]
    assert kept.segment_frames[first] == 0.2 * 16000 // 160 + 1  # one segment: 0.2 s of audio, the rest padding


def test_tilde_is_expanded_in_every_path_setting(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "prior.npy").touch()  # a missing marginals file is refused at load
    cfg = load_config(None, ["data.root=~/audio", "data.labels_csv=~/l.csv", "data.cache_dir=~/cache",
                             "train.out_dir=~/run", "train.resume=~/run/last.pt", "sela.marginals=~/prior.npy"])
    home = str(tmp_path)
    assert (cfg.data.root, cfg.data.labels_csv, cfg.data.cache_dir) == (f"{home}/audio", f"{home}/l.csv",
                                                                        f"{home}/cache")
    assert (cfg.train.out_dir, cfg.train.resume, cfg.sela.marginals) == (f"{home}/run", f"{home}/run/last.pt",
                                                                         f"{home}/prior.npy")
    assert load_config(None, ["sela.marginals=uniform"]).sela.marginals == "uniform"


def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cpu_config(tmp_path / "run"))))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_expected_failures_are_one_line_errors(tmp_path: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"not a checkpoint")
    assert main(["train", str(recipe(tmp_path))]) == 1  # an existing run without --resume
    assert "last.pt exists" in one_line_error(capsys)
    assert main(["train", str(recipe(tmp_path)), "--resume"]) == 1  # a damaged checkpoint
    err = one_line_error(capsys)
    assert "not a loadable hear_sela checkpoint" in err and "new train.out_dir" in err
    assert main(["analyze", str(run / "last.pt"), "--out", str(tmp_path / "a")]) == 1
    assert "not a loadable hear_sela checkpoint" in one_line_error(capsys)


def test_ctrl_c_names_the_last_checkpoint_and_the_resume_command(tmp_path: Path, capsys, monkeypatch):
    import hear_sela.training.loop as loop

    rec = recipe(tmp_path)
    cfg = config_from_dict(yaml.safe_load(rec.read_text()))
    save_checkpoint(Path(cfg.train.out_dir) / "last.pt", {"epoch": 1, "step": 4})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    assert main(["train", str(rec), "train.epochs=3"]) == 130
    err = one_line_error(capsys)
    assert f"{cfg.train.out_dir}/last.pt (epoch 1, step 4)" in err
    assert f"hear-sela train {rec} train.epochs=3 --resume" in err


def test_a_copied_run_folder_resumes(tmp_path: Path, caplog):
    """The synth corpus and the cache live in the run folder; a copy resumes as the original would (clip paths
    count relative to the data root), its cache reused with its paths updated, not rebuilt."""
    import logging
    import shutil

    over = {"data.segment_seconds": 1.0, "data.hop_seconds": 1.0, "train.batch_size": 4,
            "data.synth": {"clips_per_class": 3, "clip_seconds": 1.5, "classes": ["knock", "chirp_up"]}}
    train(cpu_config(tmp_path / "a", **{**over, "train.epochs": 1}))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with caplog.at_level(logging.INFO):
        final = train(cpu_config(tmp_path / "b", **{**over, "train.epochs": 2}), resume="auto")
    assert load_checkpoint(final)["epoch"] == 2
    assert "manifest paths updated" in caplog.text and "rebuilding" not in caplog.text
    manifest = json.loads((tmp_path / "b" / "cache" / "manifest.json").read_text())
    assert all(c["path"].startswith(str(tmp_path / "b")) for c in manifest["clips"])
