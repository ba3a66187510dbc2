"""Benchmark of hear_sela.sinkhorn.solve_labels against SeLa's float64 loop, POT and the memory-bandwidth floor.

Every method sees the same "realistic logits" (docs/results/gpu_anchors.md): features F (N × 512) from 200 random
centres, clip = 0.6·centre + 0.8·noise; per head W (K × 512) ~ N(0, 1); logits = 2.5 · F Wᵀ / √512; λ = 25,
tolerance 0.1 (SeLa's rule, checked every 10 iterations).

Rows per size (N × K × H):
- sparse / dense (stored logits), matrix-free (features + weights, logits never stored), ω=1 (SeLa's exact
  iterate sequence, no over-relaxation), warm (after the heads move so that ~10 % of the labels change: cold vs
  warm-started from the previous duals, same solver);
- fp64 loop: SeLa's loop in torch float64 on the same device, heads one after another (one head at N >= 1M,
  then × H, marked ~); numpy fp64 and POT (ot.sinkhorn, "sinkhorn_log" and "sinkhorn", float64, run for the fp64
  loop's iteration count) at the first size only, one head × H.
Columns: seconds; iterations (min-max over heads); peak device memory (CUDA); % labels equal to the fp64 loop's;
cluster sizes min-max over heads; × fp64 = fp64 loop time / this time; × floor = this time / the dense two-read floor
(fp64 loop iterations × 2 reads of the H·N·K float32 kernel / measured copy bandwidth), for matrix-free rows also
/ the GEMM floor (logit passes × 2·N·D·H·K flops / measured GEMM rate).

  python benchmarks/sinkhorn.py --device cuda          # FSD50K-scale sizes, ~10 min on an H100
  python benchmarks/sinkhorn.py --device cpu           # scaled-down sizes, a few minutes
  python benchmarks/sinkhorn.py --quick                # smoke test
  python benchmarks/sinkhorn.py --dtypes               # float32 vs float64, dense and matrix-free (one head)

--dtypes prints its own table (DTYPE_SIZES, N x K[:kernels], one head): the dense kernel (stored logits) and the
matrix-free kernel (recomputed per chunk from features, kernel="dense") in float32 and float64, tolerance 0.1;
columns: seconds, iterations, final error, converged, seconds / float64's seconds in the same run, % labels equal
to float64's, notes. Each line is capped at --max-iters and at about --line-seconds (its cost per iteration is
probed first: a 6- minus a 2-iteration solve); a line that stops at a cap says so in its notes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sinkhorn_reference import sela_reference  # noqa: E402

from hear_sela.sinkhorn import solve_labels  # noqa: E402

D = 512
LAMB, TOL = 25.0, 0.1
GPU_SIZES = "40966x1000x10,40966x3000x10,200000x1000x10,200000x3000x10,1000000x1000x10,1000000x3000x10,2000000x3000x10"
CPU_SIZES = "4000x100x2,10000x300x2,40966x1000x2"
QUICK_SIZES = "4000x100x2"
DTYPE_SIZES = "50000x100,100000x100,50000x1000:matrix-free"  # realistic N: FSD50K-scale segment counts


def realistic(n: int, k: int, heads: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) and head weights (H, K, D) with the 2.5/√D scale folded in, float32 on `device`."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    centres = torch.randn(200, D, generator=g)
    which = torch.randint(0, 200, (n,), generator=g)
    feats = torch.empty(n, D, device=device)
    for s in range(0, n, 1 << 18):  # build in slices: N × D noise at 2M rows is 4 GB
        e = min(s + (1 << 18), n)
        feats[s:e] = (0.6 * centres[which[s:e]] + 0.8 * torch.randn(e - s, D, generator=g)).to(device)
    weights = (torch.randn(heads, k, D, generator=g) * (2.5 / math.sqrt(D))).to(device)
    return feats, weights


def logits_of(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """# (N, D), (H, K, D) -> (H, N, K), exact float32 products"""
    out = torch.empty(weights.shape[0], feats.shape[0], weights.shape[1], device=feats.device)
    for h in range(weights.shape[0]):
        torch.matmul(feats, weights[h].T, out=out[h])
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device: torch.device) -> float:
    """Bytes moved per second (read + write) by a large copy."""
    n = (1 << 28) if device.type == "cuda" else (1 << 25)
    a, b = torch.empty(n, device=device), torch.empty(n, device=device)
    a.fill_(1.0)
    b.copy_(a)
    sync(device)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * 4 * n / best


def gemm_rate(device: torch.device, k: int, heads: int) -> float:
    """Flop/s of the matrix-free path's GEMM shape at full float32 precision."""
    rows = 8192 if device.type == "cuda" else 1024
    f = torch.randn(heads, rows, D, device=device)
    w = torch.randn(heads, D, k, device=device)
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        torch.bmm(f, w)
        sync(device)
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            torch.bmm(f, w)
            sync(device)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_float32_matmul_precision(old)
    return 2 * heads * rows * D * k / best


class Table:
    def __init__(self):
        self.rows: list[list[str]] = []
        self.head = ["N x K x H", "method", "seconds", "iters", "peak GiB", "= fp64 %", "sizes", "x fp64",
                     "x floor", "notes"]

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])
        print(" | ".join(self.rows[-1]), flush=True)

    def render(self) -> str:
        widths = [max(len(r[i]) for r in [self.head, *self.rows]) for i in range(len(self.head))]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(self.head, widths)) + " |"
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in self.rows]
        return "\n".join([line, sep, *body])


def iters_str(it) -> str:
    it = np.asarray(it)
    return f"{it.min()}" if it.min() == it.max() else f"{it.min()}-{it.max()}"


def sizes_str(labels: torch.Tensor, k: int) -> str:
    counts = torch.stack([torch.bincount(lab, minlength=k) for lab in labels])
    return f"{counts.min().item()}-{counts.max().item()}"


def peak_gib(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "-"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_size(n: int, k: int, h: int, device: torch.device, first: bool, table: Table, bandwidth: float,
             gemm: float, memory: float) -> None:
    name = f"{n:,} x {k} x {h}"
    feats, weights = realistic(n, k, h, device)
    stored_bytes = 4 * h * n * k
    store = stored_bytes <= 0.55 * memory  # else matrix-free only
    big = n >= 1_000_000  # keep the GPU run near 10 minutes: no w=1 rows here
    logits = logits_of(feats, weights) if store else None

    # The yardstick: SeLa's float64 loop, heads one after another (one head at large N, then x H).
    ref_heads = h if n * k <= 2e8 else 1
    dash = ["-"] * 3
    ref_labels, t_ref, floor = None, None, None
    if 8 * n * k * 1.1 + (0 if store else 4 * n * k) <= 0.9 * memory - (stored_bytes if store else 0):
        logits0 = logits[:ref_heads] if store else logits_of(feats, weights[:ref_heads])
        reset_peak(device)
        ref = sela_reference(logits0, LAMB, tol=TOL, backend="torch", device=str(device))
        del logits0
        ref_labels = torch.as_tensor(ref.labels, device=device)
        t_ref = ref.seconds * h / ref_heads
        approx = "" if ref_heads == h else "~"
        floor = ref.iterations.mean() * 2 * stored_bytes / bandwidth
        table.add(name, "fp64 loop (torch)", f"{approx}{t_ref:.2f}", iters_str(ref.iterations), peak_gib(device),
                  "100", sizes_str(ref_labels, k), "1.0", f"{t_ref / floor:.2f}",
                  f"{ref_heads} head(s) run" + (", x H" if approx else ""))
    else:
        table.add(name, "fp64 loop (torch)", *dash, "-", "-", "-", "-", "skipped: its float64 P does not fit")

    def report(method: str, res, notes: str = "", gemm_floor: float | None = None) -> None:
        agree = "-" if ref_labels is None else f"{(res.labels[:ref_heads] == ref_labels).double().mean() * 100:.4g}"
        vs_floor = "-" if floor is None else f"{res.seconds / floor:.2f}"
        if gemm_floor is not None:
            vs_floor += f" / {res.seconds / gemm_floor:.2f} gemm"
        table.add(name, method, f"{res.seconds:.2f}", iters_str(res.iterations), peak_gib(device), agree,
                  sizes_str(res.labels, k), "-" if t_ref is None else f"{t_ref / res.seconds:.1f}", vs_floor,
                  f"{res.kernel} {res.density:.2%} kept, {res.rebuilds} builds" + (f", {notes}" if notes else ""))

    before = None
    if store:
        reset_peak(device)
        before = solve_labels(logits, kernel="sparse")
        report("sparse", before)
        if 2 * stored_bytes <= 0.8 * memory:
            reset_peak(device)
            report("dense", solve_labels(logits, kernel="dense"))
        if not big:
            reset_peak(device)
            report("sparse, w=1", solve_labels(logits, overrelax=1.0), "SeLa's iterates")
    del logits
    reset_peak(device)
    free = solve_labels(features=feats, weights=weights)
    report("matrix-free", free, f"{free.passes} logit passes", free.passes * 2 * n * D * h * k / gemm)
    before = before or free

    # Warm start: the heads move so that ~10 % of the labels change, as between two label updates.
    g = torch.Generator(device="cpu").manual_seed(1)
    moved = weights + 0.1 * weights.std() * torch.randn(weights.shape, generator=g).to(device)
    kw = {"logits": logits_of(feats, moved)} if store else {"features": feats, "weights": moved}
    reset_peak(device)
    cold = solve_labels(**kw)
    table.add(name, "moved: cold", f"{cold.seconds:.2f}", iters_str(cold.iterations), peak_gib(device), "-",
              sizes_str(cold.labels, k), "-", "-",
              f"{(cold.labels != before.labels).float().mean().item() * 100:.1f} % of labels moved")
    plain = None
    if not big:
        reset_peak(device)
        plain = solve_labels(**kw, overrelax=1.0)
        table.add(name, "moved: cold, w=1", f"{plain.seconds:.2f}", iters_str(plain.iterations), peak_gib(device),
                  "-", sizes_str(plain.labels, k), "-", "-", "SeLa's iterates")
    reset_peak(device)
    warm = solve_labels(**kw, warm_start=before.duals)
    note = (f"{(warm.labels == cold.labels).float().mean().item() * 100:.3f} % = cold labels; iterations "
            f"{warm.iterations.sum() / cold.iterations.sum():.2f} of cold")
    if plain is not None:
        note += f", {warm.iterations.sum() / plain.iterations.sum():.2f} of w=1 cold"
    table.add(name, "moved: warm", f"{warm.seconds:.2f}", iters_str(warm.iterations), peak_gib(device), "-",
              sizes_str(warm.labels, k), "-", "-", note)
    del kw, cold, plain, warm, before, free

    if first and ref_labels is not None:  # numpy and POT: one head, the fp64 loop's iteration count, x H
        x = logits_of(feats, weights[:1]).cpu()
        ref_np = sela_reference(x.numpy(), LAMB, tol=TOL)
        agree = (torch.as_tensor(ref_np.labels[0]) == ref_labels[0].cpu()).float().mean().item() * 100
        t_np = ref_np.seconds * h
        table.add(name, "fp64 numpy", f"~{t_np:.2f}", iters_str(ref_np.iterations), "-", f"{agree:.4g}", "-",
                  f"{t_ref / t_np:.2f}", f"{t_np / floor:.2f}", "1 head run, x H, CPU")
        pot(name, x.to(device), int(ref_np.iterations[0]), ref_labels[0], h, t_ref, floor, table, device)


def pot(name: str, logits: torch.Tensor, iters: int, ref_labels: torch.Tensor, h: int, t_ref: float, floor: float,
        table: Table, device: torch.device) -> None:
    """POT on SeLa's problem: cost −log softmax, reg = 1/λ, so exp(−M/reg) = p^λ; rows = samples."""
    # POT would otherwise import JAX (which takes 75 % of GPU memory), TensorFlow and CuPy as backends.
    for backend in ("JAX", "TENSORFLOW", "CUPY"):
        os.environ.setdefault(f"POT_BACKEND_DISABLE_{backend}", "1")
    try:
        import ot
    except ImportError:
        table.add(name, "POT", "-", "-", "-", "-", "-", "-", "-", "POT not installed")
        return
    m = -torch.log_softmax(logits[0].double(), dim=1)  # (N, K)
    n, k = m.shape
    a = torch.full((n,), 1.0 / n, dtype=torch.float64, device=device)
    b = torch.full((k,), 1.0 / k, dtype=torch.float64, device=device)
    for method in ("sinkhorn_log", "sinkhorn"):
        reset_peak(device)
        sync(device)
        t = time.perf_counter()
        plan = ot.sinkhorn(a, b, m, 1.0 / LAMB, method=method, numItermax=iters, stopThr=0.0, warn=False)
        sync(device)
        seconds = (time.perf_counter() - t) * h
        finite = bool(torch.isfinite(plan).all())
        labels = plan.nan_to_num(-1.0).argmax(1)
        agree = (labels == ref_labels).float().mean().item() * 100
        table.add(name, f"POT {method}", f"~{seconds:.2f}", iters, peak_gib(device), f"{agree:.4g}",
                  sizes_str(labels[None], k), f"{t_ref / seconds:.2f}", f"{seconds / floor:.2f}",
                  "1 head run, x H" + ("" if finite else ", plan has NaN/inf"))


def dtype_sweep(sizes: str, device: torch.device, max_iters: int, kernels: str = "dense,matrix-free",
                line_seconds: float = 300.0) -> None:
    """float32 vs float64 on the dense and the matrix-free kernel, one head; see the module docstring."""
    head = ("| N x K | kernel | dtype | seconds | iters | error | converged | x fp64 time | = fp64 labels % | notes |")
    rows = []
    for spec in sizes.split(","):
        shape, _, only = spec.partition(":")
        n, k = (int(v) for v in shape.lower().split("x"))
        wanted = [kn for kn in kernels.split(",") if not only or kn in only.split("+")]
        feats, weights = realistic(n, k, 1, device)
        logits = logits_of(feats, weights) if "dense" in wanted else None
        for kernel in wanted:
            inputs = {"logits": logits} if kernel == "dense" else {"features": feats, "weights": weights}
            runs = {}
            for dtype in (torch.float64, torch.float32):
                with warnings.catch_warnings():  # tol 0 runs the probes' iterations; float32's floor is moot
                    warnings.simplefilter("ignore", UserWarning)
                    short, long = (solve_labels(**inputs, kernel="dense", dtype=dtype, tol=0.0, max_iters=m).seconds
                                   for m in (2, 6))
                per_iter = max(long - short, 1e-9) / 4  # the difference leaves out the set-up and the first build
                cap = min(max_iters, max(10, int(line_seconds / per_iter)))
                res = solve_labels(**inputs, kernel="dense", dtype=dtype, tol=TOL, max_iters=cap)
                runs[dtype] = res, cap
            ref = runs[torch.float64][0]
            for dtype, (res, cap) in runs.items():
                agree = (res.labels == ref.labels).double().mean().item() * 100
                capped = not bool(res.converged.all())
                note = ("" if not capped else f"stopped at the cap of {cap} iterations"
                        + (f" (~{line_seconds:.0f} s budget)" if cap < max_iters else ""))
                rows.append(f"| {n:,} x {k} | {kernel} ({res.kernel}) | {str(dtype)[6:]} | {res.seconds:.2f} | "
                            f"{res.iterations.max().item()} | {res.error.max().item():.3g} | "
                            f"{'yes' if not capped else 'no'} | {res.seconds / ref.seconds:.2f} | {agree:.4g} | "
                            f"{note} |")
                print(rows[-1], flush=True)
        del feats, weights, logits
    print()
    print(f"# float32 vs float64, lambda {LAMB}, tol {TOL}, max_iters {max_iters}, ~{line_seconds:.0f} s per line, "
          f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    print(head)
    print("|" + "---|" * 10)
    print("\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", default=None, help="comma-separated NxKxH (default depends on the device)")
    ap.add_argument("--quick", action="store_true", help=f"smoke test at {QUICK_SIZES}")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--dtypes", action="store_true", help="float32 vs float64 table instead (sizes NxK)")
    ap.add_argument("--max-iters", type=int, default=2000, help="solver cap for --dtypes")
    ap.add_argument("--kernels", default="dense,matrix-free", help="kernels for --dtypes")
    ap.add_argument("--line-seconds", type=float, default=300.0, help="time cap of one --dtypes line (about)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dtypes:
        dtype_sweep(args.sizes or DTYPE_SIZES, device, args.max_iters, args.kernels, args.line_seconds)
        return
    sizes = args.sizes or (QUICK_SIZES if args.quick else GPU_SIZES if device.type == "cuda" else CPU_SIZES)
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in sizes.split(",")]

    t0 = time.perf_counter()
    bandwidth = copy_bandwidth(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
        memory = 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # leave room for the rest
    print(f"# {name}, torch {torch.__version__}, copy bandwidth {bandwidth / 1e9:.1f} GB/s, lambda {LAMB}, "
          f"tol {TOL}", flush=True)
    solve_labels(torch.randn(1, 256, 16, device=device))  # warm up kernels and handles
    table = Table()
    for i, (n, k, h) in enumerate(shapes):
        gemm = gemm_rate(device, k, h)
        run_size(n, k, h, device, i == 0, table, bandwidth, gemm, memory)
    print()
    print(f"# {name}, torch {torch.__version__}, copy bandwidth {bandwidth / 1e9:.1f} GB/s, "
          f"fp32 GEMM {gemm / 1e12:.2f} TFLOP/s, total {time.perf_counter() - t0:.0f} s")
    print(table.render())


if __name__ == "__main__":
    main()
