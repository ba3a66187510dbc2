"""Summary table of scripts/gpu_check.sh's logs against the anchors in docs/results/gpu_anchors.md (H100 80GB,
2026-11-23) and the issues' targets. Reads LOGDIR/{gpu_test,sinkhorn,train_throughput,hear_overhead}.{log,rc,seconds}.

    python scripts/gpu_summary.py LOGDIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# gpu_anchors.md, "Realistic logits": fp64 SeLa loop (GPU) and fp32 batched seconds per size
SINKHORN_ANCHORS = {"40,966 x 1000 x 10": (0.92, 0.57), "40,966 x 3000 x 10": (3.46, 2.09),
                    "1,000,000 x 1000 x 10": (18.7, 10.4), "1,000,000 x 3000 x 10": (52.5, 34.4)}
# gpu_anchors.md, "Training and frontend rates": d = 2048 channels_last bf16, clips/s (model-only)
TRAIN_ANCHORS = {"sela": 36_400, "byol": 14_500}
LABEL_UPDATE_ANCHOR_S = 0.9  # forward over all 40,966 clips + solve
SCENE_RATIO_TARGET = 0.9  # hear_overhead.py's docstring: wrapper / raw forward
TIMESTAMP_RATIO_TARGET = 1 / 1.5  # issue 14: the default timestamp mode within 1.5x of the raw forward
SOLVER_METHODS = ("sparse", "dense", "matrix-free")


def _read(logdir: Path, name: str, suffix: str) -> str:
    path = logdir / f"{name}.{suffix}"
    return path.read_text() if path.is_file() else ""


def _status(logdir: Path, name: str) -> str:
    rc = _read(logdir, name, "rc").strip()
    secs = _read(logdir, name, "seconds").strip()
    state = "not run" if not rc else "ok" if rc == "0" else "TIMEOUT" if rc in ("124", "137") else f"rc {rc}"
    return f"{state}, {secs or '?'} s"


def _row(rows: list, check: str, measured: str, target: str, ok: bool | None) -> None:
    rows.append((check, measured, target, "-" if ok is None else "yes" if ok else "NO"))


def summarise(logdir: Path) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    log = _read(logdir, "gpu_test", "log")
    tail = next((line for line in reversed(log.splitlines()) if re.search(r"\d+ (passed|failed|error)", line)), "")
    _row(rows, f"make gpu-test ({_status(logdir, 'gpu_test')})", tail.strip("= ") or "no result", "all pass",
         bool(tail) and "failed" not in tail and "error" not in tail)

    table: dict[tuple[str, str], list[str]] = {}
    for line in _read(logdir, "sinkhorn", "log").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"[\d,]+ x \d+ x \d+", cells[0]):
            table[cells[0], cells[1]] = cells
    for size, (fp64_anchor, fp32_anchor) in SINKHORN_ANCHORS.items():
        ours = [(float(c[2].lstrip("~")), m) for (s, m), c in table.items() if s == size and m in SOLVER_METHODS
                and re.fullmatch(r"~?[\d.]+", c[2])]
        if not ours:
            continue
        best, method = min(ours)
        agree = table[size, method][5]
        _row(rows, f"sinkhorn {size}: fastest solver ({method}), s", f"{best:.2f} (= fp64 {agree} %)",
             f"<= fp32 batched {fp32_anchor} s", best <= fp32_anchor)
        ref = table.get((size, "fp64 loop (torch)"))
        if ref and re.fullmatch(r"~?[\d.]+", ref[2]):
            _row(rows, f"sinkhorn {size}: fp64 loop, s", ref[2], f"anchor {fp64_anchor} s", None)
    _row(rows, f"sinkhorn benchmark ({_status(logdir, 'sinkhorn')})", f"{len(table)} rows", "-", None)

    log = _read(logdir, "train_throughput", "log")
    for name, anchor in TRAIN_ANCHORS.items():
        m = re.search(rf"^{name}\s+([\d.]+)/s\s+([\d.]+)/s", log, re.M)
        if m:
            _row(rows, f"train {name}: model-only / pipeline clips/s", f"{float(m[1]):.0f} / {float(m[2]):.0f}",
                 f"model-only >= {anchor} (d2048 cl bf16)", float(m[1]) >= anchor)
    m = re.search(r"label update: ([\d.]+) s .*?= ([\d.]+) % of wall time", log)
    if m:
        _row(rows, "label update (forward + solve), s", f"{m[1]} ({m[2]} % of a run)",
             f"<= {LABEL_UPDATE_ANCHOR_S} s", float(m[1]) <= LABEL_UPDATE_ANCHOR_S)
    _row(rows, f"train_throughput ({_status(logdir, 'train_throughput')})", "-", "-", None)

    log = _read(logdir, "hear_overhead", "log")
    for m in re.finditer(r"^\s*(\d+) x\s+([\d.]+) s: raw\s+([\d.]+) audio-s/s.*?ratio ([\d.]+)", log, re.M):
        _row(rows, f"HEAR scene, {m[1]} x {m[2]} s: ratio to raw", f"{m[4]} (raw {m[3]} audio-s/s)",
             f">= {SCENE_RATIO_TARGET}", float(m[4]) >= SCENE_RATIO_TARGET)
    default = re.search(r'timestamp_mode: str = "(\w+)"', Path(__file__).resolve().parents[1].joinpath(
        "hear_sela", "hear.py").read_text())
    for m in re.finditer(r"^timestamps (\w+)\s.*?get_timestamp_embeddings\s+([\d.]+) audio-s/s, ratio ([\d.]+)",
                         log, re.M):
        is_default = default is not None and m[1] == default[1]
        _row(rows, f"HEAR timestamps {m[1]}{' (default)' if is_default else ''}: ratio to raw",
             f"{m[3]} ({m[2]} audio-s/s)", f">= {TIMESTAMP_RATIO_TARGET:.2f}" if is_default else "-",
             float(m[3]) >= TIMESTAMP_RATIO_TARGET if is_default else None)
    _row(rows, f"hear_overhead ({_status(logdir, 'hear_overhead')})", "-", "-", None)
    return rows


def main() -> int:
    logdir = Path(sys.argv[1])
    rows = summarise(logdir)
    head = ("check", "measured", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return 1 if any(r[3] == "NO" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
