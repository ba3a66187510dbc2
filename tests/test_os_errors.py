"""What the CLI says when the operating system refuses: a read-only output folder, a full disk while the feature
cache is built, a file size limit (ulimit -f) while exporting. Each is one line naming the problem and the path,
never a traceback."""

from __future__ import annotations

import builtins
import csv
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_sela.cli import main as cli

ASSETS = Path(__file__).resolve().parents[1] / "hear_sela" / "assets"
TINY = ["data.synth.clips_per_class=1", "data.synth.clip_seconds=1.5", "data.synth.classes=[knock, chirp_up]",
        "data.segment_seconds=1.0", "data.hop_seconds=1.0", "data.num_workers=0", "train.epochs=1"]


def _inside(path, folder: Path) -> bool:
    try:
        return Path(os.path.abspath(os.fspath(path))).is_relative_to(folder)
    except TypeError:  # a file descriptor
        return False


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder nobody may write in: chmod 555, and, as root ignores that, every create/write call under it refused
    the way the kernel refuses it (EACCES with the path)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        def refuse(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

        def guarded_open(file, mode="r", *args, **kwargs):
            if _inside(file, folder) and any(c in mode for c in "wax+"):
                refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def guarded_os_open(path, flags, *args, **kwargs):
            if _inside(path, folder) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            if _inside(path, folder):
                refuse(path)
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(os, "open", guarded_os_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    yield folder
    folder.chmod(0o755)


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    assert err[-1].startswith(f"hear-sela {command}: error: permission denied: "), err[-1]
    return err[-1]


def test_train_into_a_read_only_folder(read_only, capsys):
    assert cli(["train", "demo", f"train.out_dir={read_only / 'run'}", *TINY]) == 1
    assert str(read_only / "run") in _one_line(capsys, "train")


def test_prepare_into_a_read_only_folder(read_only, capsys):
    assert cli(["prepare", "demo", f"train.out_dir={read_only / 'run'}", *TINY, "--no-progress"]) == 1
    assert str(read_only) in _one_line(capsys, "prepare")


def test_export_into_a_read_only_folder(read_only, capsys):
    assert cli(["export", str(ASSETS / "default.safetensors"), str(read_only / "x.safetensors")]) == 1
    assert str(read_only / "x.safetensors") in _one_line(capsys, "export")


def test_tasks_into_a_read_only_folder(read_only, tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = [("fname", "labels")]
    for i in range(9):
        sf.write(audio / f"{i}.wav", 0.3 * np.sin(np.arange(8000) * (0.05 + 0.05 * (i % 3))), 16000)
        rows.append((f"{i}.wav", f"c{i % 3}"))
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert cli(["tasks", str(audio), "--labels", str(tmp_path / "labels.csv"), "--out", str(read_only / "tasks"),
                "--folds", "3"]) == 1
    assert str(read_only / "tasks") in _one_line(capsys, "tasks")


def test_analyze_into_a_read_only_folder(read_only, tmp_path, capsys):
    checkpoint = _tiny_sela_checkpoint(tmp_path)
    assert cli(["analyze", str(checkpoint), "--out", str(read_only / "analysis")]) == 1
    assert str(read_only / "analysis") in _one_line(capsys, "analyze")


def _tiny_sela_checkpoint(tmp_path: Path) -> Path:
    import dataclasses

    from hear_sela.checkpoint import encoder_checkpoint_state, save_checkpoint
    from hear_sela.config import load_config
    from hear_sela.data.prepare import prepare_cache
    from hear_sela.encoders import build_encoder
    from hear_sela.objectives.sela import SelaObjective

    cfg = load_config(None, ["model.encoder=audiontt_d512", "sela.heads=2", "sela.clusters=4", *TINY,
                             f"train.out_dir={tmp_path / 'run'}"])
    cache = prepare_cache(cfg, progress=False)
    cfg = dataclasses.replace(cfg, frontend=cache.frontend)
    objective = SelaObjective(cfg.sela, build_encoder(cfg), len(cache), seed=0)
    state = {**encoder_checkpoint_state(cfg, objective.encoder), **objective.state_dict(), "objective": "sela"}
    return save_checkpoint(tmp_path / "run" / "final.pt", state)


def test_a_full_disk_while_preparing_is_one_line_and_frees_the_half_written_chunk(tmp_path, monkeypatch, capsys):
    import hear_sela.data.cache_build as cache_build

    real = cache_build._write_chunk
    calls = []

    def fill_then_fail(chunk, records, lm, spec, state, f_feat, f_log, *args):
        calls.append(1)
        if len(calls) == 1:
            return real(chunk, records, lm, spec, state, f_feat, f_log, *args)
        f_feat.write(b"\0" * 4096)  # part of the chunk got out before the disk filled
        f_feat.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_build, "_write_chunk", fill_then_fail)
    cache = tmp_path / "cache"
    argv = ["prepare", "demo", f"train.out_dir={tmp_path / 'run'}", f"data.cache_dir={cache}", *TINY,
            "data.synth.clips_per_class=3", "--no-progress"]
    import hear_sela.data.prepare as prepare

    monkeypatch.setattr(prepare, "build_feature_cache", _small_chunks(cache_build.build_feature_cache))
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"hear-sela prepare: error: {cache}: the feature cache could not be written, its disk is "
                          "full") and "run the same command to resume it" in err
    progress = __import__("json").loads((cache / "progress.json").read_text())
    assert (cache / "features.f16").stat().st_size == progress["features_bytes"] > 0  # the partial chunk is gone
    monkeypatch.setattr(cache_build, "_write_chunk", real)
    assert cli(argv) == 0  # and the same command resumes


def _small_chunks(build):
    def wrapped(*args, **kwargs):
        return build(*args, **{**kwargs, "chunk_clips": 2})
    return wrapped


def test_a_file_size_limit_while_exporting_is_one_line(tmp_path):
    """`ulimit -f` below the export's size: torch.save and safetensors fail with opaque errors; we name the limit."""
    out = tmp_path / "x.pt"
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY)); "
            "from hear_sela.cli import main; sys.exit(main(sys.argv[1:]))")
    for suffix in (".pt", ".safetensors"):
        out = tmp_path / f"x{suffix}"
        run = subprocess.run([sys.executable, "-c", code, "export", str(ASSETS / "default.safetensors"), str(out)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 1, run.stderr[-2000:]
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"hear-sela export: error: {out}: not written, it would exceed this process's file "
                               "size limit (200000 bytes, ulimit -f)"), last
        assert "Traceback" not in run.stderr and not out.exists() and os.listdir(tmp_path) == []
