"""torchrun-style DDP on CPU (gloo): two ranks train in lockstep, and a sharded label update equals one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.training import ROOT, TRAINING_SCRIPT, cpu_config, one_label_update

pytestmark = [pytest.mark.distributed, pytest.mark.integration]  # gloo process groups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, *args: str, timeout: float = 240) -> None:
    """Start `world` ranks of the fixture script with torchrun's environment variables; all must succeed."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, str(TRAINING_SCRIPT), *args], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=timeout) for p in procs]
    for rank, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{err[-3000:]}"


def test_two_rank_training_stays_in_lockstep(tmp_path: Path):
    launch(2, str(tmp_path), "sela", "--dump-rank-state", "train.epochs=2")
    r0, r1 = (torch.load(tmp_path / f"rank{r}_state.pt", weights_only=True) for r in range(2))
    for k, v in r0["net"].items():
        assert torch.equal(v, r1["net"][k]), f"{k} differs between ranks"
    assert torch.equal(r0["labels"], r1["labels"])  # every rank holds the whole label store
    ckpt = torch.load(tmp_path / "final.pt", weights_only=True)
    # global batch 8 = 4 per rank; 37 segments over 2 ranks: DistributedSampler gives 19 per rank = 4 batches
    assert ckpt["step"] == 8 and ckpt["world_size"] == 2
    assert (tmp_path / "last.rank1.step8.pt").is_file()  # rank 1's RNG and mixup memory, for exact resume
    for k, v in ckpt["encoder"].items():
        assert torch.equal(v, r0["net"][f"encoder.{k}"])


def test_sharded_label_update_equals_single_process(tmp_path: Path):
    # 37 segments (odd): DistributedSampler would pad rank 1 with a duplicate; the shards must not
    launch(2, str(tmp_path), "sela", "--labels-only")
    sharded = torch.load(tmp_path / "labels.pt", weights_only=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = one_label_update(cpu_config(tmp_path / "single")).state_dict()
    finally:
        torch.set_num_threads(threads)
    assert sharded["labels"].shape == (3, 37)
    assert torch.equal(sharded["labels"], single["labels"])
    torch.testing.assert_close(sharded["confidences"], single["confidences"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sharded["duals"]["log_r"], single["duals"]["log_r"], rtol=1e-6, atol=1e-6)
    # the update was a real one: labels moved away from the shuffled i % K initialisation
    from hear_sela.objectives.label_store import LabelStore

    assert not torch.equal(single["labels"], LabelStore.initial(3, 37, 6, seed=0).labels)


def test_online_evaluation_under_ddp_runs_on_rank_zero_and_keeps_lockstep(tmp_path: Path):
    """Rank 0 probes while rank 1 waits at the next collective: the run finishes, the ranks stay equal, and the
    curve has each point once."""
    import json

    from hear_sela.data.synth_tasks import write_hear_tasks

    write_hear_tasks(tmp_path / "tasks", seed=0, size=30, n_classes=3)
    run = tmp_path / "run"
    launch(2, str(run), "sela", "--dump-rank-state", "train.epochs=2", f"online_eval.tasks_dir={tmp_path / 'tasks'}",
           "online_eval.every_steps=4", "online_eval.max_clips=18")
    r0, r1 = (torch.load(run / f"rank{r}_state.pt", weights_only=True) for r in range(2))
    for k, v in r0["net"].items():
        assert torch.equal(v, r1["net"][k]), f"{k} differs between ranks"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [0, 4, 8]
