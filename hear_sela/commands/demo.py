"""hear-sela demo [--out runs/demo] [--quick]: the project's main job on the embedded corpus (target: about 10 minutes
on an idle 2-core CPU, nearly all of it in the two trainings of recipes/demo.yaml; --quick: a smoke run).

Stages (each recorded in OUT/demo_state.json when it finishes; a rerun skips finished stages, and an interrupted
training resumes from its last checkpoint):
  1. data        the embedded synth corpus (OUT/corpus) and its feature cache (OUT/cache)
  2. train_sela  SeLa from recipes/demo.yaml (OUT/sela)
  3. train_byol  BYOL-A from the same recipe with only train.objective changed: same encoder, frontend, data,
                 augmentation, optimiser, epochs and batch size (OUT/byol)
  4. analyze     SeLa's emergent classes vs the generating classes, with k-means baselines on the trained SeLa
                 encoder, the untrained encoder, the BYOL-A encoder and mean log-mel, and a random labeling
                 (OUT/analysis/report.md)
  5. hear_tasks  three small HEAR tasks (scene multiclass, scene multilabel, events) (OUT/hear_tasks)
  6. export      encoder-only exports of both checkpoints (OUT/exports/{sela,byola}.safetensors)
  7. evaluate    heareval, hear_sela:SELA_EXPORT vs hear_sela:BYOL_EXPORT (OUT/evaluation/comparison.md)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hear_sela.fileio import read_json, write_json

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("hear_sela.demo")

STAGES = ("data", "train_sela", "train_byol", "analyze", "hear_tasks", "export", "evaluate")
# --quick: a smaller corpus and budget, for a smoke run (the numbers mean little)
QUICK_OVERRIDES = ["data.synth.clips_per_class=8", "train.epochs=2"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder; rerunning resumes (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="tiny corpus and budget: a smoke run of every stage")
    p.add_argument("--recipe", default=None, help="training recipe: a path or a packaged recipe's name (default: demo)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to both trainings (so they stay comparable)")
    p.add_argument("--grid", default=None, choices=["default", "fast", "faster"],
                   help="heareval predictions grid (default: fast; faster with --quick)")
    p.add_argument("--hear-size", type=int, default=None, help="clips per HEAR task (default 60; 30 with --quick)")
    p.add_argument("--threads", type=int, default=DEMO_THREADS,
                   help=f"CPU threads per process, pinned so the numbers repeat (default {DEMO_THREADS})")


# Intra-op threads of every demo process (trainings, analysis, heareval's runners). A CPU reduction sums in an order
# that depends on the thread count: one SeLa training step of the demo model gives bitwise-equal gradients run
# twice at one thread count, but gradients differing by up to 6e-7 between 1 and 2 threads, which 15 epochs of
# training and label updates grow into other clusters. Pinned, the run repeats on machines with the same CPU kind
# and torch build, whatever their core count or OMP_NUM_THREADS.
DEMO_THREADS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(n: int) -> None:
    """Use `n` intra-op threads here and in every subprocess started from now on."""
    import torch

    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    torch.set_num_threads(n)


def numerics_fingerprint() -> dict[str, str | int]:
    """What the demo's trained numbers depend on besides the seed: the CPU (its instruction set picks oneDNN's and
    MKL's kernels: on this project's machine, capping oneDNN at AVX2 changed a 24-step demo training's weights and
    labels), the torch build and the thread count. The same values give bitwise-equal runs, also under load (the
    README's "Repeatability")."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:  # not Linux
        pass
    return {"cpu": cpu, "isa": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def default_recipe() -> Path:
    """recipes/demo.yaml: the packaged copy of an installed wheel, or the source tree's (hear_sela/resources.py)."""
    from hear_sela.resources import resolve_recipe

    return resolve_recipe("demo")


class DemoState:
    """OUT/demo_state.json: finished stages, their outputs and seconds, and the settings they were made with."""

    def __init__(self, out: Path, settings: dict):
        self.path = out / "demo_state.json"
        self.data = read_json(self.path) or {"settings": settings, "stages": {}}
        if self.data["settings"] != settings:
            raise SystemExit(f"{out} holds a demo run made with other settings ({self.data['settings']}); "
                             f"use another --out or delete {self.path}")

    def done(self, stage: str) -> bool:
        return stage in self.data["stages"]

    def get(self, stage: str) -> dict:
        return self.data["stages"][stage]

    def finish(self, stage: str, seconds: float, **outputs: object) -> None:
        self.data["stages"][stage] = {"seconds": round(seconds, 1), **outputs}
        write_json(self.path, self.data, indent=2)


def _overrides(out: Path, args: argparse.Namespace) -> list[str]:
    """Overrides shared by both trainings: where the corpus and cache live, plus --quick and --set."""
    return [f"data.root={out / 'corpus'}", f"data.cache_dir={out / 'cache'}",
            *(QUICK_OVERRIDES if args.quick else []), *args.set]


def _train(recipe: Path, overrides: list[str], run_dir: Path) -> Path:
    """`hear-sela train RECIPE ... --resume` in a subprocess (its progress goes to this terminal): continues
    run_dir/last.pt when an earlier demo was interrupted, returns run_dir/final.pt."""
    cmd = [sys.executable, "-m", "hear_sela.cli", "train", str(recipe), *overrides, f"train.out_dir={run_dir}",
           "--resume"]
    log.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    final = run_dir / "final.pt"
    if not final.is_file():
        raise FileNotFoundError(f"training finished without writing {final}")
    return final


def check_training_configs(recipe: Path, overrides: list[str], out: Path) -> None:
    """Both trainings' configs, parsed and checked before torch is imported or any stage runs: a --set typo is
    a ConfigError (one line) in a second, not after the corpus is written."""
    from hear_sela.config import load_config

    for objective in ("sela", "byol"):
        load_config(recipe, [*overrides, f"train.objective={objective}", f"train.out_dir={out / objective}"])


def main(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from hear_sela.resources import resolve_recipe

    recipe = resolve_recipe(args.recipe).resolve() if args.recipe else default_recipe()
    grid = args.grid or ("faster" if args.quick else "fast")
    hear_size = args.hear_size or (30 if args.quick else 60)
    overrides = _overrides(out, args)
    check_training_configs(recipe, overrides, out)
    pin_threads(args.threads)
    settings = {"recipe": str(recipe), "quick": args.quick, "set": args.set, "grid": grid, "hear_size": hear_size,
                "threads": args.threads}
    state = DemoState(out, settings)
    state.data["machine"] = numerics_fingerprint()
    t_start = time.perf_counter()

    def stage(name: str, fn) -> dict:
        if state.done(name):
            log.info("[%s] already done", name)
            return state.get(name)
        log.info("[%s] ...", name)
        t0 = time.perf_counter()
        outputs = fn()
        state.finish(name, time.perf_counter() - t0, **outputs)
        log.info("[%s] done in %.0f s", name, time.perf_counter() - t0)
        return state.get(name)

    def data() -> dict:
        from hear_sela.config import load_config
        from hear_sela.data.prepare import prepare_cache

        cache = prepare_cache(load_config(recipe, [*overrides, f"train.out_dir={out / 'sela'}"]))
        return {"segments": len(cache), "clips": len(cache.clips)}

    stage("data", data)
    sela = Path(stage("train_sela", lambda: {"checkpoint": str(_train(recipe, overrides, out / "sela"))})
                ["checkpoint"])
    byol = Path(stage("train_byol", lambda: {"checkpoint": str(
        _train(recipe, [*overrides, "train.objective=byol"], out / "byol"))})["checkpoint"])

    def analyze() -> dict:
        from hear_sela.analysis.core import analyze as run_analysis
        from hear_sela.analysis.sources import inputs_from_checkpoint

        inputs = inputs_from_checkpoint(sela, compare={"BYOL-A": str(byol)})
        result = run_analysis(inputs, out / "analysis")
        return {"report": str(result.files["report"]), "heatmap": str(result.files["heatmap"]),
                "map": str(result.files.get("map", "")), "summary": str(result.files["summary"])}

    analysis = stage("analyze", analyze)

    def hear_tasks() -> dict:
        from hear_sela.data.synth_tasks import write_hear_tasks

        dirs = write_hear_tasks(out / "hear_tasks", seed=0, size=hear_size)
        return {"tasks": [d.name for d in dirs]}

    stage("hear_tasks", hear_tasks)

    def export() -> dict:
        from hear_sela.checkpoint import export_encoder

        return {"sela": str(export_encoder(sela, out / "exports" / "sela.safetensors")),
                "byola": str(export_encoder(byol, out / "exports" / "byola.safetensors"))}

    exports = stage("export", export)

    def evaluate() -> dict:
        from hear_sela.evaluation.runner import EvalOptions, evaluate_modules
        from hear_sela.evaluation.specs import parse_module_spec
        from hear_sela.evaluation.tables import score_columns

        specs = [parse_module_spec(f"sela=hear_sela:{exports['sela']}"),
                 parse_module_spec(f"byola=hear_sela:{exports['byola']}")]
        table = evaluate_modules(out / "hear_tasks", specs, out / "evaluation",
                                 EvalOptions(grid=grid, grid_points=2 if args.quick else 4, batch=True))
        failed = int(table[score_columns(table)].isna().to_numpy().sum())
        return {"comparison": str(out / "evaluation" / "comparison.md"), "failed_cells": failed}

    evaluation = stage("evaluate", evaluate)
    print_summary(out, analysis, evaluation, time.perf_counter() - t_start)
    return 0 if evaluation["failed_cells"] == 0 else 1


def clustering_summary(summary: dict) -> pd.DataFrame:
    """The demo's clustering rows from the analysis summary: the report head, the mean over every head, then the
    k-means and random baselines. The report head is the best by its score against the generating classes (an
    optimistic pick, four tries to the baselines' one), so the mean over heads stands beside it."""
    import pandas as pd

    m = pd.DataFrame(summary["metrics"])
    m = m[m["reference"] == "labels"].set_index("method")
    cols = ["k_used", "nmi", "ami", "ari", "purity"]
    heads = [x for x in m.index if x.startswith("SeLa head ")]
    mean = m.loc[heads, cols].mean().rename(f"SeLa heads 0-{len(heads) - 1}: mean")
    base = [x for x in m.index if x.startswith("k-means") or x.startswith("random")]
    rows = pd.concat([m.loc[[f"SeLa head {summary['report_head']}"], cols].rename(
        index=lambda x: f"{x} (best by {summary.get('primary_metric', 'nmi')})"), mean.to_frame().T, m.loc[base, cols]])
    rows["k_used"] = rows["k_used"].round().astype(int)  # the heads' mean rounded
    return rows.rename_axis("method").reset_index()


def print_summary(out: Path, analysis: dict, evaluation: dict, seconds: float) -> None:
    """The short tables the demo ends with: clustering against the generating classes, and heareval's scores."""
    import pandas as pd

    from hear_sela.analysis.report import markdown_table
    from hear_sela.evaluation.tables import CLIPS_COLUMN

    print("\n== SeLa's emergent classes vs the generating classes (clip level) ==")
    print(markdown_table(clustering_summary(json.loads(Path(analysis["summary"]).read_text()))))
    print("\n== HEAR tasks through heareval (official test score) ==")
    scores = pd.read_csv(out / "evaluation" / "comparison.csv", dtype={CLIPS_COLUMN: str})
    if CLIPS_COLUMN in scores:  # a count, not a number to format; blank on the mean row, not a failure
        scores[CLIPS_COLUMN] = scores[CLIPS_COLUMN].fillna("")
    print(markdown_table(scores, na="failed"))
    print(f"\nanalysis report: {analysis['report']}")
    print(f"plots:           {analysis['heatmap']}, {analysis['map']}")
    print(f"comparison:      {evaluation['comparison']} (+ comparison.csv, comparison.png)")
    print(f"labels export:   {Path(analysis['report']).parent / 'labels.csv'}")
    fp = numerics_fingerprint()
    print(f"total {seconds / 60:.1f} min this run (finished stages are skipped on a rerun)")
    print(f"these numbers repeat exactly, also under load, on the same CPU kind, torch and threads ({fp['cpu']}, "
          f"{fp['isa']}, torch {fp['torch']}, {fp['threads']} threads); on another CPU kind the trained rows move "
          "by about the spread over seeds (README, 'Repeatability')")
