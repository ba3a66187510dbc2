"""hear-sela ablate DIR [--base RECIPE] [--seeds 0,1,2] [--set KEY=VALUE ...] [--tasks-dir TASKS] [--out OUT]:
train every ablation variant of DIR for every seed and write one table (OUT/ablation.md and .csv).

A variant is a YAML file DIR/<name>.yaml holding a mapping of dotted overrides (`sela.confidence_alpha: 0.5`, the
keys as on the command line; an empty mapping is the base recipe itself), applied on top of --base (docs/evaluation.md,
"hear-sela ablate"; the variants shipped: recipes/ablations/overrides/). A relative path value of a path setting (e.g.
`sela.marginals: prior.npy`) is read relative to the variant file when that file exists there. Overrides, later
winning: the base recipe <- the shared data folders (OUT/cache, and OUT/corpus for the synth source, unless the
recipe or --set names them) <- the variant <- --set (so a smaller scale, e.g. `--set train.epochs=2`, reaches every
run) <- train.seed and train.out_dir = OUT/<variant>/seed<seed>.

Each run: `hear-sela train ... --resume` in a subprocess (log OUT/<variant>/seed<s>/train.log), then its scores
(`analysis.ablation.run_scores`), then with --tasks-dir its encoder export through heareval (`evaluation`, the mean
over the dev tasks). OUT/<variant>/seed<s>/run.json records the outcome; a rerun skips finished runs and resumes
unfinished trainings. A failed run is recorded with its error and the others go on; the table is rewritten after
every run and covers every finished run in OUT (so runs with other --seeds or --only add rows). --rescore
recomputes the scores of the finished runs from their checkpoints (e.g. after adding reference labels), without
training or heareval. Exit status 1 if any run failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

from hear_sela.commands.demo import DEMO_THREADS, pin_threads
from hear_sela.config import Config, ConfigError, load_config, load_yaml
from hear_sela.fileio import read_json, write_json

log = logging.getLogger("hear_sela.ablate")

RUN_RECORD = "run.json"
TAIL_LINES = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="folder of variant files (<name>.yaml, each a mapping of dotted overrides)")
    p.add_argument("--base", default="real_sela", help="base recipe: a path or a packaged name (default real_sela)")
    p.add_argument("--seeds", default="0", type=_seeds, help="comma-separated train.seed values (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every run after the variant's (e.g. train.epochs=2); repeatable")
    p.add_argument("--only", default=None, help="comma-separated variant names to run (default: all of DIR)")
    p.add_argument("--tasks-dir", default=None, help="HEAR dev tasks: also score each encoder through heareval")
    p.add_argument("--grid", default="default", choices=["default", "fast", "faster"], help="heareval's grid")
    p.add_argument("--grid-points", type=int, default=None, help="heareval's --grid-points (default 8)")
    p.add_argument("--out", default="runs/ablation", help="output folder; a rerun resumes (default runs/ablation)")
    p.add_argument("--reference-label", default="0", type=_position, metavar="POS|none",
                   help="clips with several reference labels: score NMI/AMI on the label at this position of each "
                        "clip's list (default 0: the corpus script's package); none: NaN for such clips")
    p.add_argument("--rescore", action="store_true",
                   help="recompute the scores of finished runs from their checkpoints (no training, no heareval)")
    p.add_argument("--threads", type=int, default=DEMO_THREADS,
                   help=f"CPU threads per process, pinned so the runs repeat (default {DEMO_THREADS})")


def interrupted_hint(args: argparse.Namespace) -> str:
    return "finished runs are recorded; the same command resumes the rest"


def _position(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--reference-label {text!r}: expected a position (0, 1, ...) or none")
    return int(text)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected distinct integers, e.g. 0,1,2")
    return seeds


# ---------------------------------------------------------------- variants


def _is_path_setting(key: str) -> bool:
    """Whether the dotted config key names a path field (config.path_field)."""
    cls: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if part not in fields:
            return False
        if i == len(parts) - 1:
            return bool(fields[part].metadata.get("path"))
        cls = typing.get_type_hints(cls)[part]
    return False


def _override(key: str, value: Any, folder: Path) -> str:
    """`key=value` as the command line writes it (strings bare where YAML reads them back unchanged)."""
    if isinstance(value, str) and _is_path_setting(key) and not Path(value).is_absolute() and (folder / value).exists():
        value = str((folder / value).resolve())
    if isinstance(value, str) and load_yaml(value) == value:
        return f"{key}={value}"
    return f"{key}={json.dumps(value)}"


def read_variant(path: Path) -> list[str]:
    """A variant file -> its override strings; ConfigError naming the file when it is not a flat mapping."""
    data = load_yaml(path.read_text(), str(path))  # bad YAML: a ConfigError naming the file and line
    if data is None:
        return []
    if not isinstance(data, dict) or not all(isinstance(k, str) and k for k in data):
        raise ConfigError(f"{path}: a variant is a mapping of dotted keys to values, e.g. 'sela.confidence_alpha: 1'")
    return [_override(k, v, path.parent) for k, v in data.items()]


def find_variants(folder: Path, only: str | None) -> dict[str, Path]:
    """name -> file of DIR's variants (sorted by name), restricted to `only` when given."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder of ablation variants")
    files = {p.stem: p for p in sorted(folder.glob("*.yaml"))}
    if not files:
        raise ConfigError(f"{folder}: no variant files (*.yaml) in it")
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        missing = [n for n in names if n not in files]
        if missing:
            raise ConfigError(f"--only {missing}: not in {folder} (variants: {', '.join(files)})")
        files = {n: files[n] for n in names}
    return files


def shared_data(base: str, sets: list[str], out: Path) -> list[str]:
    """Overrides that let all runs share one feature cache (and synth corpus), unless the recipe or --set
    already place them."""
    cfg = load_config(base, sets)
    shared = []
    if cfg.data.cache_dir is None:
        shared.append(f"data.cache_dir={out / 'cache'}")
    if cfg.data.source == "synth" and cfg.data.root is None:
        shared.append(f"data.root={out / 'corpus'}")
    return shared


# ---------------------------------------------------------------- one run


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-TAIL_LINES:]) if path.is_file() else ""


def _downstream(final: Path, run_dir: Path, name: str, args: argparse.Namespace
                ) -> tuple[float, float, dict[str, float]]:
    """(mean official score over the dev tasks, seconds, task -> score): the encoder exported and run through
    heareval. A rerun over the same run_dir/eval resumes evaluate's state, so finished tasks are only read."""
    from hear_sela.checkpoint import export_encoder
    from hear_sela.evaluation.runner import EvalOptions, evaluate_modules
    from hear_sela.evaluation.specs import parse_module_spec
    from hear_sela.evaluation.tables import score_columns

    t0 = time.perf_counter()
    export = run_dir / "encoder.safetensors"
    if not export.is_file() or export.stat().st_mtime < final.stat().st_mtime:
        # (a kept export keeps its mtime, so evaluate's state resumes instead of redoing the module)
        export = export_encoder(final, export)
    spec = parse_module_spec(f"{name}=hear_sela:{export}")
    table = evaluate_modules(args.tasks_dir, [spec], run_dir / "eval",
                             EvalOptions(grid=args.grid, grid_points=args.grid_points, batch=True))
    scores = table[score_columns(table)[0]]  # the one module's column
    mean = float(scores[table["task"] == "mean"].iloc[0])  # NaN when a task failed (see eval/comparison.md)
    per_task = {str(t): float(v) for t, v in zip(table["task"], scores) if t != "mean"}
    return mean, time.perf_counter() - t0, per_task


def run_one(base: str, overrides: list[str], run_dir: Path, seed: int, name: str, args: argparse.Namespace,
            shown: list[str] | None = None) -> dict[str, Any] | None:
    """Train (or resume), score and evaluate one run; returns its record (also written to run_dir/run.json), or
    None under --rescore for a run never started.
    `shown`: the variant's own overrides, for the table. Never raises for a failure of the run itself: the record
    says status 'failed' and why."""
    from hear_sela.analysis.ablation import run_scores

    record_path = run_dir / RUN_RECORD
    full = [*overrides, f"train.seed={seed}", f"train.out_dir={run_dir}"]
    record = read_json(record_path) or {}
    if record and record.get("command_overrides") != full:
        return {**record, "variant": name, "seed": seed, "status": "failed",
                "error": f"{run_dir} holds a run made with other overrides ({record.get('command_overrides')}); "
                         "delete it or use another --out"}
    if args.rescore and record.get("status") != "done":
        return record or None  # --rescore scores finished runs only; a failed one stays as recorded
    run_dir.mkdir(parents=True, exist_ok=True)
    if record.get("status") == "done":
        if args.rescore:
            record.update(run_scores(run_dir / "final.pt", args.reference_label))
            if args.tasks_dir and "task_scores" not in record:  # recorded before per-task scores were kept
                record["downstream"], _, record["task_scores"] = _downstream(run_dir / "final.pt", run_dir,
                                                                             f"{name}-s{seed}", args)
            write_json(record_path, record, indent=2)
        return record
    record.update(variant=name, seed=seed, base=base, overrides=shown or [], command_overrides=full,
                  status="running", error="")
    record.setdefault("train_seconds", 0.0)
    write_json(record_path, record, indent=2)
    cmd = [sys.executable, "-m", "hear_sela.cli", "train", base, *full, "--resume"]
    train_log = run_dir / "train.log"
    log.info("%s seed %d: training (log %s)", name, seed, train_log)
    t0 = time.perf_counter()
    with train_log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    record["train_seconds"] += time.perf_counter() - t0  # summed over attempts (a resumed run's wall time)
    final = run_dir / "final.pt"
    try:
        if done.returncode != 0 or not final.is_file():
            raise RuntimeError(f"training exited {done.returncode} (log {train_log}):\n{_tail(train_log)}")
        record.update(run_scores(final, args.reference_label))
        if args.tasks_dir:
            record["downstream"], record["eval_seconds"], record["task_scores"] = _downstream(
                final, run_dir, f"{name}-s{seed}", args)
    except Exception as e:  # the run failed; the others go on
        record.update(status="failed", error=f"{type(e).__name__}: {e}")
        log.error("%s seed %d failed: %s", name, seed, record["error"].splitlines()[0])
    else:
        record["status"] = "done"
    record["train_minutes"] = record["train_seconds"] / 60
    if "eval_seconds" in record:
        record["eval_minutes"] = record["eval_seconds"] / 60
    write_json(record_path, record, indent=2)
    return record


# ---------------------------------------------------------------- the command


def _header(args: argparse.Namespace, base: str, seeds: list[int]) -> list[str]:
    import torch

    return ["# Ablation", "",
            f"- base recipe: `{base}`; variants: `{args.dir}`; seeds: {','.join(map(str, seeds))}",
            f"- --set (every run): `{' '.join(args.set) or '(none)'}`",
            f"- downstream: {'heareval on ' + args.tasks_dir + ', grid ' + args.grid if args.tasks_dir else 'off'}"
            f"{f', {args.grid_points} grid points' if args.tasks_dir and args.grid_points else ''}",
            f"- machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
            f"{args.threads} threads per process, torch {torch.__version__}, "
            f"{'CUDA' if torch.cuda.is_available() else 'no CUDA'}",
            "- NMI/AMI: mean over heads of the clip labels vs the reference labels; head-pair NMI: mean NMI between "
            "the heads' segment labels; churn: share of labels changed per label update (after the first); ± = "
            "sample std over seeds; minutes = wall time per run"]


def recorded_runs(out: Path, names: list[str]) -> list[dict[str, Any]]:
    """The run records already in OUT for these variants (every seed), so that a run with other --seeds or --only
    adds rows to the table instead of replacing it."""
    found = []
    for name in names:
        for path in sorted((out / name).glob(f"seed*/{RUN_RECORD}")):
            record = read_json(path)
            if record and record.get("status") in ("done", "failed"):
                found.append(record)
    return found


def _write_table(records: list[dict[str, Any]], out: Path, args: argparse.Namespace, base: str) -> dict[str, Path]:
    """The table over this invocation's records and every other finished one in OUT for DIR's variants."""
    from hear_sela.analysis.ablation import write_ablation_table

    names = list(find_variants(Path(args.dir), None))
    mine = {(r["variant"], r["seed"]) for r in records}
    everything = [*records, *(r for r in recorded_runs(out, names) if (r["variant"], r["seed"]) not in mine)]
    seeds = sorted({r["seed"] for r in everything})
    shown = [n for n in names if any(r["variant"] == n for r in everything)]  # variants never run: no row
    return write_ablation_table(everything, out, _header(args, base, seeds), shown)


def main(args: argparse.Namespace) -> int:
    from hear_sela.resources import resolve_recipe

    out = Path(args.out).resolve()
    try:
        base = str(resolve_recipe(args.base).resolve())
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    variants = find_variants(Path(args.dir), args.only)
    pin_threads(args.threads)
    shared = shared_data(base, args.set, out)
    records = []
    for name, path in variants.items():
        try:
            own = read_variant(path)
            overrides = [*shared, *own, *args.set]
            load_config(base, overrides)  # a bad key fails here, naming the variant file
        except ConfigError as e:
            error = f"{path}: {e}"
            log.error("%s", error)
            records += [{"variant": name, "seed": s, "status": "failed", "error": error, "overrides": []}
                        for s in args.seeds]
            continue
        for seed in args.seeds:
            record = run_one(base, overrides, out / name / f"seed{seed}", seed, name, args, own)
            if record is not None:
                records.append(record)
                _write_table(records, out, args, base)
    files = _write_table(records, out, args, base)
    print(files["md"].read_text())
    print(f"wrote {files['md']} and {files['csv']}")
    return 0 if all(r["status"] == "done" for r in records) else 1
