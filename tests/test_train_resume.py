"""Exact resume: a run SIGKILLed mid-epoch and resumed ends bitwise identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.training import cpu_config, memory_cache

from hear_sela.checkpoint import load_checkpoint
from hear_sela.commands.demo import THREAD_VARIABLES
from hear_sela.training.loop import train

TRAINING_SCRIPT = Path(__file__).parent / "helpers" / "training.py"  # run as a subprocess
ROOT = Path(__file__).resolve().parents[1]


def run_fixture(out_dir: Path, objective: str, *args: str) -> subprocess.CompletedProcess:
    # every thread variable torch reads (OpenMP and MKL): an MKL_NUM_THREADS=2 left by an earlier test (the demo
    # pins its threads for its subprocesses) changes the subprocess's reduction order, so its bits
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           **dict.fromkeys(THREAD_VARIABLES, "1")}
    return subprocess.run([sys.executable, str(TRAINING_SCRIPT), str(out_dir), objective, *args], env=env,
                          capture_output=True, text=True, timeout=240)


def assert_same(a, b, where: str = "") -> None:
    """Bitwise equality of nested checkpoint contents (tensors, dicts, lists, plain values)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            if not str(k).endswith("seconds"):  # wall-clock timings of label updates legitimately differ
                assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def losses(out_dir: Path) -> list[tuple[str, int, float]]:
    rows = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["step"], r.get("loss", r.get("changed"))) for r in rows]


# SeLaVi's label views and head groups (objectives/label_views.py) draw from (seed, update index): exact as well
SELAVI = {"sela.views": 2, "sela.head_groups": 2, "sela.view_kind": "augment"}


@pytest.mark.parametrize(("objective", "over"), [
    ("sela", {}), ("byol", {}), pytest.param("sela", SELAVI, marks=pytest.mark.slow, id="sela-views-groups")],
    ids=["sela", "byol", "sela-views-groups"])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path, objective: str, over: dict):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1): same reduction order, same bits
    try:
        train(cpu_config(ref, objective, **{"train.ckpt_every_steps": 3, **over}), cache=memory_cache())
    finally:
        torch.set_num_threads(threads)
    extra = [f"{k}={v}" for k, v in over.items()]
    # 4 steps per epoch, checkpoints every 3 steps and at each epoch end: steps 3, 4, 6, 8, 9, 12, ... Dying when
    # step 8 is to be saved leaves step 6 (epoch 1, 2 of 4 steps done) as the newest checkpoint; steps 7-8 are lost.
    died = run_fixture(killed, objective, "--kill-at-save", "8", "train.ckpt_every_steps=3", *extra)
    assert died.returncode == -9, f"expected SIGKILL, got {died.returncode}: {died.stderr[-2000:]}"
    last = load_checkpoint(killed / "last.pt")
    assert (last["step"], last["epoch"], last["epoch_step"]) == (6, 1, 2)
    assert not (killed / "final.pt").exists()
    resumed = run_fixture(killed, objective, "--resume", "train.ckpt_every_steps=3", *extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(ref / "final.pt"), load_checkpoint(killed / "final.pt")
    assert a["step"] == 16
    for ckpt in (a, b):  # the only intended difference
        ckpt["config"]["train"].pop("out_dir")
    assert_same(a, b)
    assert losses(ref) == losses(killed)  # same loss at every step, same label updates
    if objective == "sela":
        assert a["label_store"]["updates"] == 3
        assert a["label_store"]["labels"].shape == (3, 37)
    else:  # the mixup memory travels in last.pt (exact resume), not in final.pt (analysis, export)
        assert a["local"]["augment"]["mixup._extra_state"]["memory"] is None
        for run in (ref, killed):
            memory = load_checkpoint(run / "last.pt")["local"]["augment"]["mixup._extra_state"]
            assert memory["filled"] == 8 and memory["memory"].shape == (8, 16, 16)
        assert_same(load_checkpoint(ref / "last.pt")["local"], load_checkpoint(killed / "last.pt")["local"])
