"""Tiny in-memory feature caches and CPU-sized configs for the training tests, and a script the multi-process tests
start (`python tests/helpers/training.py ...`). Distinct from conftest's fixtures `tiny_cache` / `tiny_config`, which
build a real synth corpus and its feature cache on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from hear_sela import distributed as dist
from hear_sela.commands.demo import THREAD_VARIABLES
from hear_sela.config import Config, FrontendConfig, config_from_dict
from hear_sela.data.cache import FeatureCache
from hear_sela.data.records import ClipRecord

ROOT = Path(__file__).resolve().parents[2]  # the repository
TRAINING_SCRIPT = Path(__file__).resolve()  # this file, run as a script by the multi-process tests (`_main`)


def memory_cache(n: int = 37, n_mels: int = 16, frames: int = 24, classes: int = 3, seed: int = 0,
               root: str | Path = "/nonexistent") -> FeatureCache:
    """A FeatureCache over random float16 log-mel segments in memory: class c has a bright band at its own mel
    rows, so the problem is separable. Segment i belongs to clip i // 2, of class (i // 2) % classes."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(-6.0, 1.0, size=(n, n_mels, frames)).astype(np.float32)
    cls = (np.arange(n) // 2) % classes
    band = n_mels // classes
    for i, c in enumerate(cls):
        feats[i, c * band:(c + 1) * band] += 4.0
    n_clips = (n + 1) // 2
    clips = [ClipRecord(f"clip{j}", f"clip{j}.wav", (f"class{j % classes}",)) for j in range(n_clips)]
    seg_clip = np.arange(n, dtype=np.int64) // 2
    mean, std = float(feats.mean()), float(feats.std())
    frontend = FrontendConfig(n_mels=n_mels, norm_mean=mean, norm_std=std)
    return FeatureCache(Path(root), {}, feats.astype(np.float16), seg_clip, (np.arange(n) % 2) * 1.5,
                        np.full(n, frames), clips, mean, std, frontend)


def cpu_config(out_dir: str | Path, objective: str = "sela", **over) -> Config:
    """A CPU-sized config: audiontt with 4 channels and d = 32, 3 heads x 6 clusters, crops of 16 frames."""
    data = {
        "name": "tiny",
        "frontend": {"n_mels": 16},
        "data": {"num_workers": 0},
        "model": {"encoder": "audiontt", "encoder_kwargs": {"d": 32, "channels": 4}},
        "augment": {"crop_frames": 16, "mixup_memory": 8, "specaugment": True, "time_mask_width": 4,
                    "freq_mask_width": 3, "linear_fader": True, "random_gain": True},
        "sela": {"heads": 3, "clusters": 6, "lamb": 10.0, "tol": 1e-3, "update_epochs": [0, 1, 3],
                 "update_batch_size": 8},
        "byol": {"projection_hidden": 16, "projection_dim": 8},
        "optim": {"lr": 0.05},
        "train": {"objective": objective, "epochs": 4, "batch_size": 8, "out_dir": str(out_dir), "device": "cpu",
                  "log_every": 1, "seed": 0},
    }
    for key, value in over.items():  # "train.epochs"-style keys
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    return config_from_dict(data, source="tests/helpers/training.py")


def run_training_script(out_dir: Path, objective: str, *args: str) -> subprocess.CompletedProcess:
    """This file as a script (see `_main`) in a fresh interpreter, single-threaded, from the repository's hear_sela."""
    # every thread variable torch reads (OpenMP and MKL): an MKL_NUM_THREADS=2 left by an earlier test (the demo
    # pins its threads for its subprocesses) changes the subprocess's reduction order, so its bits
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           **dict.fromkeys(THREAD_VARIABLES, "1")}
    return subprocess.run([sys.executable, str(TRAINING_SCRIPT), str(out_dir), objective, *args], env=env,
                          capture_output=True, text=True, timeout=240)


RUN_SPECIFIC = ("out_dir",)  # config keys that name the run's own folder: two runs of one config differ only there


def assert_same(a, b, where: str = "") -> None:
    """Bitwise equality of nested checkpoint contents (tensors, dicts, lists, plain values), apart from wall-clock
    timings and the run's own folder."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            # wall-clock timings of label updates legitimately differ, and so does each run's folder
            if not str(k).endswith("seconds") and k not in RUN_SPECIFIC:
                assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _main() -> None:
    """`python tests/helpers/training.py OUT_DIR OBJECTIVE [--kill-at-save STEP] [--resume] [key=value ...]`: train
    the tiny config; with --kill-at-save the process SIGKILLs itself when asked to checkpoint step STEP, before
    writing it (so the newest checkpoint on disk is an earlier one and the steps after it are lost)."""
    import argparse
    import os
    import signal

    import yaml

    import hear_sela.training.loop as train_mod

    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("objective")
    p.add_argument("--kill-at-save", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--labels-only", action="store_true", help="one label update from the seeded initial weights")
    p.add_argument("--dump-rank-state", action="store_true", help="each rank saves its weights and labels")
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args()
    if args.kill_at_save is not None:
        import hear_sela.training.state as ckpt_mod

        original = ckpt_mod.save_checkpoint

        def save_or_die(path, state):
            if state.get("step") == args.kill_at_save:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, state)

        ckpt_mod.save_checkpoint = save_or_die
    over = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    cfg = cpu_config(args.out_dir, args.objective, **over)
    if args.labels_only:
        store = one_label_update(cfg)
        if dist.is_main():
            torch.save(store.state_dict(), Path(args.out_dir) / "labels.pt")
        dist.shutdown()
        return
    seen = {}
    if args.dump_rank_state:  # every rank calls save_state with its live objective: keep a handle on it
        original_save = train_mod.save_state

        def save_and_remember(path, cfg_, objective, *rest, **kwargs):
            seen["objective"] = objective
            return original_save(path, cfg_, objective, *rest, **kwargs)

        train_mod.save_state = save_and_remember
    train_mod.train(cfg, resume="auto" if args.resume else None, cache=memory_cache())
    if args.dump_rank_state:
        objective = seen["objective"]
        state = {"net": objective.net.state_dict(), "labels": objective.store.labels.clone()}
        torch.save(state, Path(args.out_dir) / f"rank{dist.rank()}_state.pt")
    dist.shutdown()


def one_label_update(cfg: Config):
    """The first label update of `cfg` on the tiny cache from the seeded initial weights; sharded under torchrun."""
    import dataclasses

    from hear_sela.objectives.base import RunContext
    from hear_sela.training.state import build_objective

    dist.init_from_env()
    cache = memory_cache()
    cfg = dataclasses.replace(cfg, frontend=cache.frontend, sela=dataclasses.replace(cfg.sela, update_batch_size=5))
    objective = build_objective(cfg, len(cache), torch.device("cpu"))
    objective.update_labels(RunContext(cfg=cfg, device=torch.device("cpu"), features=cache.features))
    return objective.store


if __name__ == "__main__":
    _main()
