"""CPU allocator: glibc's default malloc vs the thresholds `hear-sela` sets (hear_sela/runtime.py), on real_sela's
encoder. Each setting runs in its own process (glibc reads the variables at start-up), the same seeded work:

  train step    forward + backward + Adam of a (64, 1, 64, 96) crop batch through the encoder and 4 x 100 heads
  label update  a no-grad forward of a (256, 1, 64, 201) batch of full segments (sela.update_batch_size)

and prints seconds per step, the process's user and system CPU seconds, and the ratios default / tuned.

  python benchmarks/cpu_allocator.py [--recipe real_sela] [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from hear_sela.config import load_config
from hear_sela.encoders.registry import build_encoder
from hear_sela.runtime import KEEP_BYTES, MALLOC_VARIABLES


def child(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.recipe)
    enc = build_encoder(cfg)
    d = enc(torch.zeros(2, 1, cfg.frontend.n_mels, cfg.augment.crop_frames)).shape[1]
    heads = torch.nn.Linear(d, cfg.sela.heads * cfg.sela.clusters)
    opt = torch.optim.Adam([*enc.parameters(), *heads.parameters()], lr=1e-3)
    x = torch.randn(cfg.train.batch_size, 1, cfg.frontend.n_mels, cfg.augment.crop_frames)  # (B, 1, F, T)
    y = torch.randint(0, cfg.sela.clusters, (cfg.train.batch_size, cfg.sela.heads))  # (B, H)
    frames = int(cfg.data.segment_seconds * cfg.frontend.sample_rate / cfg.frontend.hop_length) + 1
    seg = torch.randn(cfg.sela.update_batch_size, 1, cfg.frontend.n_mels, frames)  # (N, 1, F, T)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        logits = heads(enc(x)).view(len(x), cfg.sela.heads, cfg.sela.clusters)  # (B, H, K)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t1 = time.perf_counter()
    with torch.no_grad():
        for _ in range(args.update_steps):
            enc(seg)
    t2, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    return {"train_step_s": (t1 - t0) / args.steps, "update_batch_s": (t2 - t1) / args.update_steps,
            "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime}


def run_setting(args: argparse.Namespace, tuned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARIABLES}
    if tuned:
        env.update({var: str(KEEP_BYTES) for var in MALLOC_VARIABLES})
    cmd = [sys.executable, __file__, "--child", "--recipe", args.recipe, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--update-steps", str(args.update_steps), "--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="real_sela")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--update-steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = {"glibc default": run_setting(args, tuned=False), "hear-sela": run_setting(args, tuned=True)}
    print(f"recipe {args.recipe}, {args.threads} threads, {args.steps} train steps, {args.update_steps} update batches")
    print(f"{'allocator':<14} {'train step s':>13} {'update batch s':>15} {'user s':>8} {'sys s':>8}")
    for name, r in rows.items():
        print(f"{name:<14} {r['train_step_s']:>13.3f} {r['update_batch_s']:>15.3f} "
              f"{r['user_s']:>8.1f} {r['sys_s']:>8.1f}")
    a, b = rows["glibc default"], rows["hear-sela"]
    print(f"ratio default / hear-sela: train step {a['train_step_s'] / b['train_step_s']:.2f}x, "
          f"update batch {a['update_batch_s'] / b['update_batch_s']:.2f}x, sys time {a['sys_s'] / b['sys_s']:.2f}x")


if __name__ == "__main__":
    main()
