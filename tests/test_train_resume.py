"""Exact resume: a run SIGKILLed mid-epoch and resumed ends bitwise identical to an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hear_sela.checkpoint import load_checkpoint
from hear_sela.training.loop import train
from hear_sela.training.state import read_checkpoint
from helpers.training import assert_same, cpu_config, memory_cache, run_training_script


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
    died = run_training_script(killed, objective, "--kill-at-save", "8", "train.ckpt_every_steps=3", *extra)
    assert died.returncode == -9, f"expected SIGKILL, got {died.returncode}: {died.stderr[-2000:]}"
    last = load_checkpoint(killed / "last.pt")
    assert (last["step"], last["epoch"], last["epoch_step"]) == (6, 1, 2)
    assert not (killed / "final.pt").exists()
    resumed = run_training_script(killed, objective, "--resume", "train.ckpt_every_steps=3", *extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(ref / "final.pt"), load_checkpoint(killed / "final.pt")
    assert a["step"] == 16
    assert_same(a, b)  # out_dir, the only intended difference, is skipped
    assert losses(ref) == losses(killed)  # same loss at every step, same label updates
    if objective == "sela":
        store = read_checkpoint(ref / "final.pt").label_store
        assert store.updates == 3 and store.labels.shape == (3, 37)
    else:  # the mixup memory travels in last.pt (exact resume), not in final.pt (analysis, export)
        assert read_checkpoint(ref / "final.pt").mixup_memory["memory"] is None
        for run in (ref, killed):
            memory = read_checkpoint(run / "last.pt").mixup_memory
            assert memory["filled"] == 8 and memory["memory"].shape == (8, 16, 16)
        assert_same(read_checkpoint(ref / "last.pt").rank_state, read_checkpoint(killed / "last.pt").rank_state)
