"""Overhead of the HEAR wrapper: get_scene_embeddings throughput / the raw forward on the same batch (target >= 0.9).

Raw forward = `encoder(frontend(audio))` under no_grad: the same frontend and encoder with nothing around them. The
wrapper adds input checks, chunking and batching; on clips shorter than a chunk it should cost next to nothing.
A second line times a long clip (chunked with overlap vs one pass), where the wrapper trades some recomputation
for bounded memory. On a shared CPU, wall times drift with other jobs; the CPU-time ratio (this process's CPU
seconds) is the steadier number there.

Then, for each HEAR `timestamp_mode`, on one clip of `--ts-seconds` (default 10 minutes), get_timestamp_embeddings'
throughput and peak memory as ratios to the raw forward of the same clip in one pass (targets for the default mode:
speed ratio >= 1 / 1.5 = 0.67, i.e. within 1.5x of the raw forward's time; memory ratio <= 1.5). Peak memory is the
rise over the memory in use before the call: CUDA's peak allocation, or on the CPU the process's peak resident set
(VmHWM, reset through /proc/self/clear_refs before each call), which also counts what the allocator keeps.

    python benchmarks/hear_overhead.py [--model CKPT] [--device cpu|cuda] [--clips 32 --seconds 4]
        [--timestamp-modes windows,frames] [--ts-seconds 600]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import time
from collections.abc import Callable

import torch

import hear_sela
from hear_sela.hear import TIMESTAMP_MODES
from hear_sela.runtime import release_freed_memory


def _time(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def _rss_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in kB (Linux)."""
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)[1])


def _peak_mb(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    """MiB of memory one call of `fn` needs above what is in use before it (its result included)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    release_freed_memory()  # else fn may reuse resident free memory without a fault, and VmHWM would not see it
    before = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
    fn()
    return (_rss_kb("VmHWM") - before) / 1024


def measure(model, audio: torch.Tensor, repeats: int, ts_model=None, warm_up: bool = True,
            memory: bool = False) -> dict[str, float]:
    """Median wall and CPU seconds per batch, raw forward vs get_scene_embeddings (or, given `ts_model`, vs
    get_timestamp_embeddings of that model); with `memory`, each one's peak MiB over one more call."""
    device = audio.device

    def raw() -> torch.Tensor:
        with torch.no_grad():
            return model.encoder(model.frontend(audio).unsqueeze(1))  # (N, D)

    def wrapped() -> torch.Tensor:
        if ts_model is not None:
            return hear_sela.get_timestamp_embeddings(audio, ts_model)[0]  # (N, K, D)
        return hear_sela.get_scene_embeddings(audio, model)  # (N, D)

    if warm_up:
        raw(), wrapped()
    # interleaved, so drifting machine load affects both alike
    runs = [(_time(raw, device), _time(wrapped, device)) for _ in range(repeats)]
    med = statistics.median
    out = {"raw_wall": med(r[0][0] for r in runs), "wrap_wall": med(r[1][0] for r in runs),
           "raw_cpu": med(r[0][1] for r in runs), "wrap_cpu": med(r[1][1] for r in runs)}
    if memory:
        out["raw_mb"], out["wrap_mb"] = _peak_mb(raw, device), _peak_mb(wrapped, device)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="", help="checkpoint or export (default: embedded weights)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--long-seconds", type=float, default=120.0, help="one long clip; 0 to skip")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timestamp-modes", default=",".join(TIMESTAMP_MODES),
                   help="comma-separated HEAR timestamp modes to time on the --ts-seconds clip ('' to skip)")
    p.add_argument("--ts-seconds", type=float, default=600.0, help="the clip the timestamp modes are timed on")
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
    audio = (torch.rand(1, round(args.ts_seconds * model.sample_rate), generator=g) * 2 - 1).to(device)  # (1, S)
    total = args.ts_seconds
    for mode in filter(None, args.timestamp_modes.split(",")):
        ts_model = hear_sela.load_model(args.model, timestamp_mode=mode).to(device)
        # a long clip needs no warm-up call (and one costs as much as a measurement); memory over one more call each
        t = measure(model, audio, args.repeats, ts_model=ts_model, warm_up=total < 60, memory=True)
        cpu = f", CPU-time ratio {t['raw_cpu'] / t['wrap_cpu']:.3f}" if device.type == "cpu" else ""
        print(f"timestamps {mode:15s} 1 x {total} s: raw {total / t['raw_wall']:8.1f} audio-s/s, "
              f"get_timestamp_embeddings {total / t['wrap_wall']:8.1f} audio-s/s, ratio "
              f"{t['raw_wall'] / t['wrap_wall']:.3f}{cpu}; peak memory raw {t['raw_mb']:.0f} MiB, "
              f"get_timestamp_embeddings {t['wrap_mb']:.0f} MiB, ratio {t['wrap_mb'] / max(t['raw_mb'], 1e-9):.3f} "
              f"({math.floor(total * 1000 / ts_model.hop_ms) + 1} timestamps x {ts_model.timestamp_embedding_size})")

if __name__ == "__main__":
    main()
