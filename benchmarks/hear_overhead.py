"""Overhead of the HEAR wrapper: get_scene_embeddings throughput / the raw forward on the same batch (target >= 0.9).

Raw forward = `encoder(frontend(audio))` under no_grad: the same frontend and encoder with nothing around them. The
wrapper adds input checks, chunking and batching; on clips shorter than a chunk it should cost next to nothing.
A second line times a long clip (chunked with overlap vs one pass), where the wrapper trades some recomputation
for bounded memory.

    python benchmarks/hear_overhead.py [--model CKPT] [--device cpu|cuda] [--clips 32 --seconds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import hear_sela


def _time(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    """Median seconds per call, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(model, audio: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(raw seconds, wrapper seconds) per batch."""
    device = audio.device

    def raw() -> torch.Tensor:
        with torch.no_grad():
            return model.encoder(model.frontend(audio).unsqueeze(1))  # (N, D)

    def wrapped() -> torch.Tensor:
        return hear_sela.get_scene_embeddings(audio, model)  # (N, D)

    # interleave the two so drifting machine load affects both alike
    raw_t, wrap_t = [], []
    for _ in range(repeats):
        raw_t.append(_time(raw, device, 1))
        wrap_t.append(_time(wrapped, device, 1))
    return statistics.median(raw_t), statistics.median(wrap_t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="", help="checkpoint or export (default: embedded weights)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--long-seconds", type=float, default=120.0, help="one long clip; 0 to skip")
    p.add_argument("--repeats", type=int, default=5)
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
        raw, wrapped = measure(model, audio, args.repeats)
        total = n * seconds
        print(f"{n:3d} x {seconds:6.1f} s: raw {total / raw:8.1f} audio-s/s, get_scene_embeddings "
              f"{total / wrapped:8.1f} audio-s/s, ratio {raw / wrapped:.3f}")


if __name__ == "__main__":
    main()
