"""Overhead of the HEAR wrapper: get_scene_embeddings throughput / the raw forward on the same batch (target >= 0.9).

Raw forward = `encoder(frontend(audio))` under no_grad: the same frontend and encoder with nothing around them. The
wrapper adds input checks, chunking and batching; on clips shorter than a chunk it should cost next to nothing.
A second line times a long clip (chunked with overlap vs one pass), where the wrapper trades some recomputation
for bounded memory. On a shared CPU, wall times drift with other jobs; the CPU-time ratio (this process's CPU
seconds) is the steadier number there.

Then, for each HEAR `timestamp_mode`, get_timestamp_embeddings' throughput and its ratio to the same raw forward
(target for the default mode: >= 1 / 1.5 = 0.67, i.e. within 1.5x of the raw forward).

    python benchmarks/hear_overhead.py [--model CKPT] [--device cpu|cuda] [--clips 32 --seconds 4]
        [--timestamp-modes windows,frames]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import hear_sela
from hear_sela.hear import TIMESTAMP_MODES


def _time(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(model, audio: torch.Tensor, repeats: int, ts_model=None) -> dict[str, float]:
    """Median wall and CPU seconds per batch, raw forward vs get_scene_embeddings (or, given `ts_model`, vs
    get_timestamp_embeddings of that model)."""
    device = audio.device

    def raw() -> torch.Tensor:
        with torch.no_grad():
            return model.encoder(model.frontend(audio).unsqueeze(1))  # (N, D)

    def wrapped() -> torch.Tensor:
        if ts_model is not None:
            return hear_sela.get_timestamp_embeddings(audio, ts_model)[0]  # (N, K, D)
        return hear_sela.get_scene_embeddings(audio, model)  # (N, D)

    raw(), wrapped()  # warm-up
    # interleaved, so drifting machine load affects both alike
    runs = [(_time(raw, device), _time(wrapped, device)) for _ in range(repeats)]
    med = statistics.median
    return {"raw_wall": med(r[0][0] for r in runs), "wrap_wall": med(r[1][0] for r in runs),
            "raw_cpu": med(r[0][1] for r in runs), "wrap_cpu": med(r[1][1] for r in runs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="", help="checkpoint or export (default: embedded weights)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--long-seconds", type=float, default=120.0, help="one long clip; 0 to skip")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timestamp-modes", default=",".join(TIMESTAMP_MODES),
                   help="comma-separated HEAR timestamp modes to time on the short clips ('' to skip)")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.set_grad_enabled(False)
    model = hear_sela.load_model(args.model).to(device)
    g = torch.Generator().manual_seed(0)
    name = f"{model.encoder.__class__.__name__} ({model.source.split('/')[-1]})"
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"threads {torch.get_num_threads()}, model {name}")
    cases = [(args.clips, args.seconds)] + ([(1, args.long_seconds)] if args.long_seconds > 0 else [])
    for n, seconds in cases:
        audio = (torch.rand(n, round(seconds * model.sample_rate), generator=g) * 2 - 1).to(device)  # (N, S)
        t = measure(model, audio, args.repeats)
        total = n * seconds
        cpu = f", CPU-time ratio {t['raw_cpu'] / t['wrap_cpu']:.3f}" if device.type == "cpu" else ""
        print(f"{n:3d} x {seconds:6.1f} s: raw {total / t['raw_wall']:8.1f} audio-s/s, get_scene_embeddings "
              f"{total / t['wrap_wall']:8.1f} audio-s/s, ratio {t['raw_wall'] / t['wrap_wall']:.3f}{cpu}")
    audio = (torch.rand(args.clips, round(args.seconds * model.sample_rate), generator=g) * 2 - 1).to(device)
    total = args.clips * args.seconds
    for mode in filter(None, args.timestamp_modes.split(",")):
        ts_model = hear_sela.load_model(args.model, timestamp_mode=mode).to(device)
        t = measure(model, audio, args.repeats, ts_model=ts_model)
        cpu = f", CPU-time ratio {t['raw_cpu'] / t['wrap_cpu']:.3f}" if device.type == "cpu" else ""
        print(f"timestamps {mode:15s} {args.clips} x {args.seconds} s: raw {total / t['raw_wall']:8.1f} audio-s/s, "
              f"get_timestamp_embeddings {total / t['wrap_wall']:8.1f} audio-s/s, ratio "
              f"{t['raw_wall'] / t['wrap_wall']:.3f}{cpu}")

if __name__ == "__main__":
    main()
