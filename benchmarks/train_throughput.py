"""Training throughput: SeLa vs BYOL-A with the same encoder and batch size, the data pipeline alone, and the label
update's share of an epoch under the 25-update schedule. Synthetic data, written once as a float16 memmap feature
cache so the pipeline reads what training reads.

Measured (clips/s, after warm-up, device synchronised):
  model-only    a fixed on-device batch of crops through the loop's `optimiser_step` (forward, backward,
                clipping, optimiser and scheduler step, + EMA for BYOL-A)
  pipeline      the loop's own training step (training.loop.train_step): memmap read by a DataLoader
                (workers, pinned memory), host-to-device copy, per-sample augmentation on the device,
                forward/backward/step
  data only     the same without the model (read + copy + augmentation)
  label update  forward over every segment (full length, eval) + Sinkhorn solve, seconds
and printed as ratios: pipeline / model-only per objective, and the label update's share of the wall time of a
200-epoch run with the audio SeLa code's 25 updates.

  python benchmarks/train_throughput.py                       # CUDA: FSD50K-sized (40,966 x 3 s segments)
  python benchmarks/train_throughput.py --device cpu --quick  # a scaled-down run for CPUs
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hear_sela.augment import build_augment
from hear_sela.config import Config, config_from_dict
from hear_sela.data.segments import SegmentDataset, make_loader
from hear_sela.objectives.base import RunContext
from hear_sela.objectives.sela import label_update_steps
from hear_sela.training.data import EpochBatches
from hear_sela.training.loop import optimiser_step, train_step
from hear_sela.training.optim import build_optimizer, build_scheduler
from hear_sela.training.state import build_objective


def bench_config(args: argparse.Namespace, objective: str) -> Config:
    return config_from_dict({
        "frontend": {"norm_mean": -5.0, "norm_std": 2.0},  # the synthetic cache's statistics
        "model": {"encoder": args.encoder},
        "sela": {"heads": args.heads, "clusters": args.clusters, "update_batch_size": args.update_batch_size},
        "data": {"num_workers": args.workers},
        "train": {"objective": objective, "batch_size": args.batch_size, "amp": args.amp,
                  "channels_last": args.channels_last},
    }, source="benchmarks/train_throughput.py")


def write_cache(path: Path, n: int, n_mels: int, frames: int, seed: int = 0) -> np.memmap:
    """Random log-mel-like float16 segments (N, F, T) on disk, written in blocks."""
    feats = np.memmap(path, dtype=np.float16, mode="w+", shape=(n, n_mels, frames))
    rng = np.random.default_rng(seed)
    for i in range(0, n, 4096):
        feats[i:i + 4096] = rng.normal(-5, 2, size=(min(4096, n - i), n_mels, frames)).astype(np.float16)
    feats.flush()
    return np.memmap(path, dtype=np.float16, mode="r", shape=(n, n_mels, frames))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of fn(i) after `warmup` calls."""
    for i in range(warmup):
        fn(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        fn(warmup + i)
    sync(device)
    return (time.perf_counter() - t0) / steps


def setup(cfg: Config, n: int, device: torch.device):
    objective = build_objective(cfg, n, device)
    if cfg.train.channels_last and device.type == "cuda":
        objective.to_channels_last()
    objective.train(True)
    augment = build_augment(cfg.augment, cfg.frontend).to(device)
    opt = build_optimizer(cfg.optim, objective.net.parameters())
    sched = build_scheduler(opt, cfg.optim, 1000, 1000)
    return objective, augment, opt, sched


def measure(args: argparse.Namespace, objective_name: str, feats: np.ndarray, device: torch.device) -> dict:
    cfg = bench_config(args, objective_name)
    n, bs = len(feats), cfg.train.batch_size
    objective, augment, opt, sched = setup(cfg, n, device)
    amp = cfg.train.amp and device.type == "cuda"
    gen = torch.Generator(device=device).manual_seed(0)
    out = {}

    # model only: augmented crops prepared once, on the device
    idx = torch.randint(0, n, (bs,), device=device)
    views = augment(torch.from_numpy(np.array(feats[:bs])).to(device), gen, objective.views).unsqueeze(2)

    def model_step(_: int) -> None:
        optimiser_step(objective, opt, sched, idx, views, device, amp, cfg.optim.clip_grad)

    out["model"] = bs / timed(model_step, args.steps, args.warmup, device)

    # the whole pipeline, and the data path alone, over the memmap cache
    def batches():
        loader = make_loader(SegmentDataset(feats), EpochBatches(n, bs, seed=0, epoch=0), args.workers,
                             pin_memory=device.type == "cuda")
        while True:
            yield from loader

    it = batches()

    def pipeline_step(i: int) -> None:
        b_idx, seg = next(it)
        gen.manual_seed(i)
        train_step(objective, augment, opt, sched, b_idx, seg, gen, device, amp, cfg.optim.clip_grad)

    out["pipeline"] = bs / timed(pipeline_step, args.steps, args.warmup, device)

    def data_step(i: int) -> None:
        _, seg = next(it)
        gen.manual_seed(i)
        augment(seg.to(device, non_blocking=True), gen, objective.views)

    out["data"] = bs / timed(data_step, args.steps, args.warmup, device)

    if objective_name == "sela":  # one label update over every segment (forward + solve)
        sync(device)
        t0 = time.perf_counter()
        stats = objective.update_labels(RunContext(cfg=cfg, device=device, features=feats, amp=amp,
                                                   channels_last=cfg.train.channels_last and device.type == "cuda"))
        sync(device)
        out["update_s"] = time.perf_counter() - t0
        out["solve_s"] = stats["solver_seconds"]
        out["solver_iterations"] = stats["solver_iterations"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="CPU-sized: few segments, small encoder and heads")
    p.add_argument("--encoder", default=None, help="default audiontt (d = 2048); --quick: audiontt_d512")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 (BYOL-A's); --quick: 32")
    p.add_argument("--segments", type=int, default=None, help="default 40,966 (FSD50K dev); --quick: 512")
    p.add_argument("--frames", type=int, default=301, help="frames per cached segment (3 s at hop 160)")
    p.add_argument("--heads", type=int, default=None, help="default 10; --quick: 3")
    p.add_argument("--clusters", type=int, default=None, help="default 1000; --quick: 64")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50; --quick: 4)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 8; --quick: 0)")
    p.add_argument("--update-batch-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=200, help="run length for the label update's share")
    p.add_argument("--no-amp", dest="amp", action="store_false")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    args = p.parse_args()
    q = args.quick
    defaults = {"encoder": ("audiontt", "audiontt_d512"), "batch_size": (256, 32), "segments": (40966, 512),
                "heads": (10, 3), "clusters": (1000, 64), "steps": (50, 4), "warmup": (10, 1), "workers": (8, 0),
                "update_batch_size": (1024, 64)}
    for k, (full, quick) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, quick if q else full)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"torch {torch.__version__}, encoder {args.encoder}, batch {args.batch_size}, {args.heads} x "
          f"{args.clusters} heads, {args.segments} segments x 64 x {args.frames} (float16 memmap), "
          f"amp {args.amp and device.type == 'cuda'}, channels_last {args.channels_last and device.type == 'cuda'}, "
          f"{args.workers} workers")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        feats = write_cache(Path(tmp) / "features.f16", args.segments, 64, args.frames)
        print(f"wrote the synthetic cache in {time.perf_counter() - t0:.1f} s")
        res = {name: measure(args, name, feats, device) for name in ("sela", "byol")}
    print()
    print(f"{'objective':10} {'model-only':>12} {'pipeline':>12} {'data only':>12} {'pipeline/model':>15}")
    for name, r in res.items():
        print(f"{name:10} {r['model']:10.0f}/s {r['pipeline']:10.0f}/s {r['data']:10.0f}/s "
              f"{r['pipeline'] / r['model']:15.2f}")
    s, b = res["sela"], res["byol"]
    print(f"\nSeLa / BYOL-A clips/s: model-only {s['model'] / b['model']:.2f}, pipeline "
          f"{s['pipeline'] / b['pipeline']:.2f}")
    # the label update's share of a run: epochs at the pipeline rate, updates as scheduled
    cfg = bench_config(args, "sela")
    n_upd = len(label_update_steps(cfg.sela, args.epochs, 1, args.segments, args.batch_size))
    epoch_s = args.segments / s["pipeline"]
    share = n_upd * s["update_s"] / (n_upd * s["update_s"] + args.epochs * epoch_s)
    print(f"label update: {s['update_s']:.2f} s (solve {s['solve_s']:.2f} s, {s['solver_iterations']:.0f} "
          f"iterations) vs an epoch of {epoch_s:.2f} s = {s['update_s'] / epoch_s:.2f} epochs; {n_upd} updates in "
          f"{args.epochs} epochs = {100 * share:.1f} % of wall time")


if __name__ == "__main__":
    main()
