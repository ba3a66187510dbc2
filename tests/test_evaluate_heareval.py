"""hear-sela evaluate through heareval's real runners: a tiny fake HEAR module that raises on one of two tasks.
The failing task is reported, the other one is scored; a rerun does no work."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_sela.evaluation.runner import EvalOptions, evaluate_modules, run_command
from hear_sela.evaluation.specs import parse_module_spec

pytestmark = pytest.mark.integration

FAKE_MODULE = '''
"""A HEAR module for tests: a few audio statistics as embeddings; refuses 0.5 s clips (the "short" task)."""
import torch


class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 4
    timestamp_embedding_size = 4


def load_model(model_file_path="", **kw):
    return Model()


def _stats(x):
    spec = torch.fft.rfft(x).abs()
    half = spec.shape[-1] // 2
    return torch.stack([x.std(-1), x.abs().amax(-1), spec[..., :half].mean(-1), spec[..., half:].mean(-1)], -1)


def get_scene_embeddings(audio, model):
    if audio.shape[1] == 8000:
        raise RuntimeError("deliberate failure on the short task")
    return _stats(audio)


def get_timestamp_embeddings(audio, model):
    emb = _stats(audio)[:, None, :]
    return emb, torch.zeros(audio.shape[0], 1)
'''


def _write_task(root: Path, name: str, seconds: float, rng: np.random.Generator) -> None:
    """A 2-class scene task (low vs high tone in noise), 8/4/4 clips, in heareval's layout."""
    task = root / name
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    for split, count in (("train", 8), ("valid", 4), ("test", 4)):
        (task / "16000" / split).mkdir(parents=True)
        labels = {}
        for i in range(count):
            cls = i % 2
            x = 0.3 * np.sin(2 * np.pi * (300 if cls == 0 else 3000) * t) + 0.05 * rng.standard_normal(n)
            sf.write(task / "16000" / split / f"{i}.wav", x.astype(np.float32), 16000, subtype="PCM_16")
            labels[f"{i}.wav"] = ["low" if cls == 0 else "high"]
        (task / f"{split}.json").write_text(json.dumps(labels))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,low\n1,high\n")
    meta = {"task_name": name, "version": "test", "embedding_type": "scene", "prediction_type": "multiclass",
            "split_mode": "trainvaltest", "splits": ["train", "valid", "test"], "sample_duration": seconds,
            "evaluation": ["top1_acc"]}
    (task / "task_metadata.json").write_text(json.dumps(meta))


def test_failing_task_is_isolated_with_real_heareval(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fake_hear_module.py").write_text(textwrap.dedent(FAKE_MODULE))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))
    rng = np.random.default_rng(0)
    _write_task(tmp_path / "tasks", "long", 1.0, rng)
    _write_task(tmp_path / "tasks", "short", 0.5, rng)
    calls = []

    written = []  # probe checkpoints heareval wrote, counted right after its predictions call

    def counting(cmd, env, cwd, log_path):
        calls.append(cmd)
        result = run_command(cmd, env, cwd, log_path)
        written.extend((tmp_path / "out").glob("embeddings/*/*/*/lightning_logs/*/checkpoints/*.ckpt"))
        return result

    opts = EvalOptions(grid="faster", grid_points=1, runner="heareval", cpu=True)
    specs = [parse_module_spec("fake=fake_hear_module")]
    table = evaluate_modules(tmp_path / "tasks", specs, tmp_path / "out", opts, runner=counting).set_index("task")
    assert 0.0 <= table.loc["long", "fake"] <= 1.0
    assert np.isnan(table.loc["short", "fake"])
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "`fake` / `short`: embeddings failed" in md and "deliberate failure on the short task" in md
    assert (tmp_path / "out" / "embeddings" / "fake" / "fake_hear_module" / "long" / "prediction-done.json").exists()
    assert len(calls) == 3  # embeddings x 2, predictions x 1
    long_dir = tmp_path / "out" / "embeddings" / "fake" / "fake_hear_module" / "long"
    assert written and all(long_dir in p.parents for p in written)  # the layout removal globs
    assert not list(long_dir.rglob("*.ckpt")) and list(long_dir.glob("lightning_logs/*/metrics.csv"))
    calls.clear()
    evaluate_modules(tmp_path / "tasks", specs, tmp_path / "out", opts, runner=counting, tasks=["long"])
    assert calls == []  # done work is not redone
