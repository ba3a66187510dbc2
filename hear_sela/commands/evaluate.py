"""hear-sela evaluate --tasks-dir D --module [ALIAS=]NAME[:CKPT] ... --out O: heareval for several modules."""

from __future__ import annotations

import argparse
import logging

from hear_sela.analysis.report import markdown_table
from hear_sela.evaluation.runner import EvalOptions, evaluate_modules
from hear_sela.evaluation.specs import UNTRAINED, check_importable, parse_module_spec, with_model_options
from hear_sela.evaluation.tables import score_columns

log = logging.getLogger("hear_sela.evaluate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks-dir", required=True, help="folder of HEAR tasks (heareval's --tasks-dir)")
    p.add_argument("--module", action="append", required=True, metavar="[ALIAS=]NAME[:CKPT]",
                   help="a HEAR module to evaluate, with optional weights; repeat for each module. E.g. "
                        "sela=hear_sela:runs/sela.safetensors, byola=hear_sela:runs/byol.safetensors, "
                        "hear_sela.baselines.logmel")
    p.add_argument("--model-options", action="append", default=[], metavar="ALIAS=JSON",
                   help="heareval's --model-options (load_model keywords) for the module of that alias; repeatable. "
                        "E.g. --module ctx=hear_sela --model-options 'ctx={\"timestamp_mode\": \"frames_context\"}'")
    p.add_argument("--out", required=True, help="output folder (embeddings, logs, comparison.*); reruns resume")
    p.add_argument("--task", action="append", help="only these task names (default: every task in --tasks-dir)")
    p.add_argument("--grid", default="default", choices=["default", "fast", "faster"],
                   help="heareval's predictions grid; fast/faster for quick looks, default for reported numbers")
    p.add_argument("--grid-points", type=int, default=None, help="heareval's --grid-points (default 8)")
    p.add_argument("--runner", default="auto", choices=["auto", "heareval", "compat"],
                   help="heareval: its own entry points; compat: hear_sela.heareval_compat (CUDA fixes); "
                        "auto: compat when CUDA is visible")
    p.add_argument("--cpu", action="store_true", help="hide CUDA from heareval's runners")
    p.add_argument("--batch", action="store_true",
                   help="one runner call per module and stage for all pending tasks (saves ~10 s start-up per "
                        "task); a failing batch falls back to one call per task")
    p.add_argument("--keep-probe-checkpoints", action="store_true",
                   help="keep heareval's probe checkpoints (lightning_logs/*/checkpoints/*.ckpt, ~180 MB per task "
                        "and module on 5-fold tasks); by default they are deleted once the task is scored")


def main(args: argparse.Namespace) -> int:
    try:  # every module checked before any work: a wrong name fails in seconds, not after the first tasks
        specs = with_model_options([parse_module_spec(m) for m in args.module], args.model_options)
        check_importable(["hear_sela" if s.module == UNTRAINED else s.module for s in specs])
    except (ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 1
    options = EvalOptions(grid=args.grid, grid_points=args.grid_points, runner=args.runner, cpu=args.cpu,
                          batch=args.batch, keep_probe_checkpoints=args.keep_probe_checkpoints)
    table = evaluate_modules(args.tasks_dir, specs, args.out, options, tasks=args.task)
    print(markdown_table(table, na="failed"))
    print(f"\nwrote {args.out}/comparison.md, comparison.csv, comparison.png")
    failed = table[score_columns(table)].isna().to_numpy().any()
    return 1 if failed else 0
