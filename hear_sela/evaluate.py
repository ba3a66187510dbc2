"""Run heareval for several HEAR modules over a folder of tasks and tabulate the official scores.

For every module and task, heareval's two runners run as subprocesses, exactly as heareval documents them:

    python -m heareval.embeddings.runner MODULE [--model CKPT] --tasks-dir TASKS --task TASK --embeddings-dir E
    python -m heareval.predictions.runner E/<MODULE>/<TASK> --grid GRID [--grid-points P]

- Embeddings: heareval names its output folder after the module and its model options, not the checkpoint, so two
  checkpoints of one module would overwrite each other. Each module spec therefore gets its own embeddings root,
  `OUT/embeddings/<alias>/`, and heareval writes `<alias>/<module>/<task>/` beneath it.
- Predictions run with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: torch >= 2.6 loads with weights_only=True, which refuses
  the PyTorch Lightning checkpoints heareval has just written itself (they pickle hyper-parameters). The variable
  only affects that subprocess, and the only files it loads are its own, written moments before into OUT, so no
  foreign pickle is ever unpickled. Our own checkpoints always load with weights_only=True or safetensors.
  The runner's working directory is OUT (its CSV logs go to OUT/logs/).
- Resume: heareval's markers (`.done.embeddings`, `prediction-done.json`) skip finished stages, and our state file
  `OUT/evaluate_state.json` remembers each checkpoint's size and mtime: a changed checkpoint redoes its module.
- Failure isolation: each (module, task) stage is its own subprocess; a failure is logged with the tail of its
  output (full log in OUT/logs/<alias>/<task>.<stage>.log), marked in the state file and the table, and the
  remaining tasks and modules carry on. Failed stages are retried on the next run.
- Runner: `heareval` (the commands above) or `compat` (`python -m hear_sela.heareval_compat embeddings|predictions
  ...`, the same entry points with heareval's CUDA-only checks fixed); `auto` picks compat when CUDA is visible.

Outputs: `comparison.csv` and `comparison.md` (task x module, the task's official metric = heareval's test_score,
the first metric in the task's `evaluation` list, or aggregated_scores.test_score_mean for k-fold tasks; how many
test clips each score rests on; the mean over tasks; and SeLa - BYOL-A when one module of each objective is
present), `comparison.png` (bar plot).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hear_sela.config import Config, ConfigError
from hear_sela.data.records import DataError
from hear_sela.fileio import read_json, write_json

log = logging.getLogger("hear_sela.evaluate")

WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
STATE_FILE = "evaluate_state.json"
DIFF_COLUMN = "SeLa - BYOL-A"
CLIPS_COLUMN = "test clips"
INFO_COLUMNS = ("task", "metric", CLIPS_COLUMN)  # the comparison's columns that are not scores
TAIL_LINES = 30


# ---------------------------------------------------------------- module specs


@dataclass(frozen=True)
class ModuleSpec:
    """One column of the comparison: an importable HEAR module and an optional weights file."""

    alias: str  # column name and embeddings folder name
    module: str
    checkpoint: str | None = None
    objective: str | None = None  # sela | byol | None (for the SeLa - BYOL-A column)
    options: str | None = None  # heareval's --model-options: a JSON object of load_model keywords, canonical form


UNTRAINED = "untrained"  # `untrained:CKPT_OR_RECIPE`: the run's own initialisation, the floor it must beat


def parse_module_spec(text: str) -> ModuleSpec:
    """`[ALIAS=]MODULE[:CKPT]` -> ModuleSpec (alias and objective filled in later by `resolve_specs`).
    `untrained:CKPT_OR_RECIPE` is hear_sela on the untrained initialisation of that run (`untrained_export`)."""
    alias = None
    if "=" in text.split(":", 1)[0]:
        alias, text = text.split("=", 1)
    module, _, ckpt = text.partition(":")
    if module == UNTRAINED:
        if not ckpt:
            raise ValueError(f"--module {text!r}: want untrained:CHECKPOINT (or an export, or a recipe)")
        return ModuleSpec(alias=alias or f"{UNTRAINED}:{Path(ckpt).stem}", module=UNTRAINED, checkpoint=ckpt)
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
        raise ValueError(f"--module {text!r}: {module!r} is not an importable module name")
    if ckpt and not Path(ckpt).exists():
        raise FileNotFoundError(f"--module {text!r}: checkpoint {ckpt} does not exist")
    return ModuleSpec(alias=alias or "", module=module, checkpoint=ckpt or None)


def parse_model_options(text: str) -> tuple[str, str]:
    """`ALIAS=JSON` (`--model-options`) -> (alias, the JSON object in canonical form: sorted keys, no spaces)."""
    alias, sep, raw = text.partition("=")
    try:
        value = json.loads(raw) if sep and alias else None
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-options {text!r}: not JSON after ALIAS= ({e.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"--model-options {text!r}: want ALIAS='{{\"key\": value, ...}}' (a JSON object)")
    return alias, json.dumps(value, sort_keys=True, separators=(",", ":"))


def with_model_options(specs: Sequence[ModuleSpec], options: Sequence[str]) -> list[ModuleSpec]:
    """Attach each `ALIAS=JSON` to the spec of that alias (named with ALIAS=MODULE); an unknown alias is an error."""
    by_alias = dict(parse_model_options(o) for o in options)
    unknown = sorted(set(by_alias) - {s.alias for s in specs})
    if unknown:
        raise ValueError(f"--model-options for {unknown}: no --module of that alias (name it ALIAS=MODULE)")
    return [replace(s, options=by_alias.get(s.alias, s.options)) for s in specs]


def untrained_export(spec: ModuleSpec, folder: Path) -> ModuleSpec:
    """An `untrained:` spec made concrete: an export of the run's initialisation (same config and seed, so the same
    encoder, frontend and normalisation statistics, random weights) written into `folder`, evaluated as hear_sela.
    A recipe (a .yaml path or a packaged recipe's name) takes its statistics from its feature cache. Other specs
    pass through."""
    if spec.module != UNTRAINED:
        return spec
    from hear_sela.checkpoint import export_untrained, write_untrained_export

    src = str(spec.checkpoint)
    out = folder / f"{_slug(spec.alias)}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    if Path(src).suffix in (".yaml", ".yml") or not Path(src).exists():
        write_untrained_export(_recipe_with_statistics(src), out)
    else:
        export_untrained(src, out)
    return replace(spec, module="hear_sela", checkpoint=str(out))


def _recipe_with_statistics(recipe: str) -> Config:
    """A recipe's config with its feature cache's normalisation statistics (what training would use)."""
    from hear_sela.config import load_config
    from hear_sela.data.cache import MANIFEST, FeatureCache
    from hear_sela.data.prepare import cache_dir_of

    cfg = load_config(recipe)
    cache_dir = cache_dir_of(cfg)
    if not (cache_dir / MANIFEST).is_file():
        raise ConfigError(f"untrained:{recipe}: no feature cache at {cache_dir} for its normalisation statistics; "
                          f"build it first (hear-sela prepare {recipe}) or give a checkpoint of the run")
    return replace(cfg, frontend=FeatureCache.open(cache_dir).frontend)


# Imports each module in a fresh interpreter and prints, per module, what stops heareval's embeddings runner from
# using it (it imports the module and calls its load_model); an empty line for one that works.
_IMPORT_PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        problem = "" if hasattr(importlib.import_module(name), "load_model") else "no load_model: not a HEAR module"
    except Exception as e:
        problem = f"{type(e).__name__}: {e}"
    print(problem.replace(chr(10), " "))
"""


def check_importable(modules: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Raise ValueError naming every module of `modules` that heareval's runners could not load, before any work.

    The probe runs as the runners do: this interpreter, `env` (default: this process's), and a working folder
    other than the current one (the runners run in OUT), so a module found only through the current folder fails
    here as it would there."""
    import tempfile

    names = list(dict.fromkeys(modules))
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *names], env=env, cwd=cwd, capture_output=True,
                              text=True, check=False)
    problems = proc.stdout.splitlines()
    if proc.returncode != 0 or len(problems) != len(names):
        raise ValueError(f"could not check the --module names {names}: {proc.stderr.strip()[-500:]}")
    bad = [f"{name} ({problem})" for name, problem in zip(names, problems) if problem]
    if bad:
        raise ValueError(f"--module: {'; '.join(bad)}. Each module must import in {sys.executable} (pip install "
                         "it, or put its folder on PYTHONPATH); hear_sela's own: hear_sela, hear_sela.baselines.logmel")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "module"


def _objective(spec: ModuleSpec) -> str | None:
    """sela / byol from a hear_sela checkpoint's stored config, else from the alias; None if unknown."""
    if spec.checkpoint and spec.module.split(".")[0] == "hear_sela":
        from hear_sela.checkpoint import CheckpointError, load_encoder_bundle

        try:
            return load_encoder_bundle(spec.checkpoint).objective
        except CheckpointError as e:
            log.warning("cannot read the objective of %s: %s", spec.checkpoint, e)
    name = spec.alias.lower()
    return "byol" if "byol" in name else "sela" if "sela" in name else None


def resolve_specs(specs: Sequence[ModuleSpec]) -> list[ModuleSpec]:
    """Fill in default aliases (unique, filesystem-safe) and objectives."""

    def default(s: ModuleSpec, level: int) -> str:
        if s.alias:
            return s.alias
        if not s.checkpoint:
            return s.module
        p = Path(s.checkpoint)
        return f"{s.module}:{'/'.join([*p.parent.parts[-level:], p.stem]) if level else p.stem}"

    for level in range(4):
        aliases = [default(s, level) for s in specs]
        if len(set(aliases)) == len(aliases):
            break
    else:
        raise ValueError(f"module specs {[s.alias or s.module for s in specs]} are not distinguishable: "
                         "name them with ALIAS=MODULE[:CKPT]")
    if len({_slug(a) for a in aliases}) != len(aliases):
        raise ValueError(f"aliases {aliases} collide once made filesystem-safe; choose distinct ALIAS= names")
    named = [replace(s, alias=alias) for s, alias in zip(specs, aliases)]
    return [replace(s, objective=s.objective or _objective(s)) for s in named]


# ---------------------------------------------------------------- running commands


@dataclass
class CommandResult:
    returncode: int
    tail: str  # last lines of the combined output


CommandRunner = Callable[[list[str], dict[str, str], Path, Path], CommandResult]


def run_command(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> CommandResult:
    """Run `cmd`, stdout and stderr to `log_path`; the default CommandRunner."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False)
    lines = log_path.read_text(errors="replace").splitlines()
    return CommandResult(proc.returncode, "\n".join(lines[-TAIL_LINES:]))


@dataclass
class EvalOptions:
    grid: str = "default"  # heareval predictions grid: default | fast | faster
    grid_points: int | None = None  # heareval default 8
    runner: str = "auto"  # heareval | compat | auto
    cpu: bool = False  # hide CUDA from the runners
    batch: bool = False  # first one runner call per module and stage for all pending tasks (see _run_batched)
    # heareval's predictions runner leaves every grid point's probe checkpoint (~180 MB per task and module on the
    # dev tasks); once the task is scored they are removed unless kept
    keep_probe_checkpoints: bool = False


def _entry(stage: str, runner: str) -> list[str]:
    if runner == "auto":
        import torch

        runner = "compat" if torch.cuda.is_available() else "heareval"
    if runner == "compat":
        return [sys.executable, "-m", "hear_sela.heareval_compat", stage]
    if runner == "heareval":
        return [sys.executable, "-m", f"heareval.{stage}.runner"]
    raise ValueError(f"runner {runner!r} must be heareval, compat or auto")


# ---------------------------------------------------------------- state


def _weights_fingerprint(spec: ModuleSpec) -> str | None:
    if not spec.checkpoint:
        return None
    st = Path(spec.checkpoint).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


@dataclass
class TaskState:
    status: str = "pending"  # pending | done | failed
    stage: str = ""  # the stage that failed (embeddings | predictions | scores)
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    task_dir: str = ""  # heareval's embeddings folder of this task


def _read_eval_state(path: Path) -> dict:
    state = read_json(path, advice="delete it to start over")
    return {"modules": {}} if state is None else state


def _write_eval_state(path: Path, state: dict) -> None:
    write_json(path, state, indent=2)


# ---------------------------------------------------------------- the loop


def list_tasks(tasks_dir: Path, names: Sequence[str] | None = None) -> list[str]:
    """The task folders under `tasks_dir` (or those `names`d), sorted, each checked by `validate_task` before
    heareval sees it. Of the folder's own listing, one that is not a valid task is skipped and named with the
    reason; a named task that is not valid, or a folder with none, raises DataError."""
    from hear_sela.data.task_validate import validate_task

    if not tasks_dir.is_dir():
        raise DataError(f"tasks folder not found: {tasks_dir} (--tasks-dir: a folder of HEAR task folders)")
    if names:
        for name in names:
            validate_task(tasks_dir / name, own=False)
        return sorted(names)
    tasks, skipped = [], []
    for folder in sorted(p for p in tasks_dir.iterdir() if p.is_dir()):
        try:
            validate_task(folder, own=False)
            tasks.append(folder.name)
        except (ValueError, KeyError, OSError, RuntimeError) as e:  # DataError; a malformed JSON, CSV or WAV
            skipped.append(f"{folder.name} ({e})")
            log.warning("skipping %s: not a valid HEAR task (%s)", folder, e)
    if not tasks:
        raise DataError(f"no valid HEAR tasks in {tasks_dir}" + (f"; skipped: {'; '.join(skipped)}" if skipped
                                                                 else " (it is empty)"))
    return tasks


def _find_task_dir(emb_root: Path, task: str) -> Path | None:
    hits = sorted(p for p in emb_root.glob(f"*/{task}") if p.is_dir())
    return hits[0] if hits else None


def evaluate_modules(tasks_dir: str | Path, specs: Sequence[ModuleSpec], out_dir: str | Path,
                     options: EvalOptions | None = None, tasks: Sequence[str] | None = None,
                     runner: CommandRunner = run_command) -> pd.DataFrame:
    """Run (or resume) every module on every task, then write the comparison. Returns the comparison table."""
    options = options or EvalOptions()
    tasks_dir, out_dir = Path(tasks_dir).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = list_tasks(tasks_dir, tasks)
    specs = resolve_specs([untrained_export(s, out_dir / "untrained") for s in specs])
    state_path = out_dir / STATE_FILE
    state = _read_eval_state(state_path)
    env = dict(os.environ)
    if options.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    for spec in specs:
        key = _slug(spec.alias)
        emb_root = out_dir / "embeddings" / key
        entry = state["modules"].get(key, {})
        fp = _weights_fingerprint(spec)
        if (entry.get("fingerprint") != fp or entry.get("module") != spec.module
                or entry.get("options") != spec.options):
            if emb_root.exists():
                log.info("%s: checkpoint, module or options changed since the last run; recomputing", spec.alias)
                shutil.rmtree(emb_root)
            entry = {"tasks": {}}
        entry.update(alias=spec.alias, module=spec.module, checkpoint=spec.checkpoint, fingerprint=fp,
                     objective=spec.objective, options=spec.options)
        state["modules"][key] = entry
        if options.batch:
            _run_batched(spec, tasks, tasks_dir, emb_root, out_dir, options, env, runner)
        for task in tasks:
            ts = TaskState(**entry["tasks"].get(task, {}))
            _run_task(spec, task, tasks_dir, emb_root, out_dir, ts, options, env, runner)
            entry["tasks"][task] = asdict(ts)
            _write_eval_state(state_path, state)
    meta = {t: json.loads((tasks_dir / t / "task_metadata.json").read_text()) for t in tasks}
    metrics = {t: m["evaluation"][0] for t, m in meta.items()}
    clips = {t: count_test_clips(tasks_dir / t, m) for t, m in meta.items()}
    table = comparison_table(state, tasks, [_slug(s.alias) for s in specs], metrics, clips)
    write_comparison(table, out_dir)
    return table


def _model_args(spec: ModuleSpec) -> list[str]:
    """The embeddings runner's --model and --model-options for `spec`."""
    return ((["--model", str(Path(spec.checkpoint).resolve())] if spec.checkpoint else [])
            + (["--model-options", spec.options] if spec.options else []))


def _run_batched(spec: ModuleSpec, tasks: Sequence[str], tasks_dir: Path, emb_root: Path, out_dir: Path,
                 options: EvalOptions, env: dict[str, str], runner: CommandRunner) -> None:
    """Saves the runners' start-up (importing tensorflow, torch, the module; ~10 s each) by doing all pending tasks
    of a module in one call per stage: `--task all` when every entry of the tasks folder is pending, and one
    predictions call over all embedded tasks. The outcome is not recorded here: the per-task pass that follows
    finds the finished tasks by heareval's markers and redoes the rest one by one, which isolates a failure."""
    logs = out_dir / "logs" / _slug(spec.alias)
    pending = [t for t in tasks if not ((d := _find_task_dir(emb_root, t)) and (d / ".done.embeddings").exists())]
    every = sorted(p.name for p in tasks_dir.iterdir())  # heareval's "all" takes every entry of the folder
    if len(pending) > 1 and sorted(pending) == every:
        cmd = [*_entry("embeddings", options.runner), spec.module]
        cmd += _model_args(spec)
        cmd += ["--tasks-dir", str(tasks_dir), "--task", "all", "--embeddings-dir", str(emb_root)]
        log.info("%s: embeddings for all %d tasks in one call", spec.alias, len(pending))
        runner(cmd, env, out_dir, logs / "all.embeddings.log")
    dirs = [d for t in tasks if (d := _find_task_dir(emb_root, t)) and (d / ".done.embeddings").exists()
            and not (d / "prediction-done.json").exists()]
    if len(dirs) > 1:
        cmd = [*_entry("predictions", options.runner), *map(str, dirs), "--grid", options.grid]
        if options.grid_points:
            cmd += ["--grid-points", str(options.grid_points)]
        log.info("%s: predictions for %d tasks in one call", spec.alias, len(dirs))
        runner(cmd, {**env, WEIGHTS_ONLY_ENV: "1"}, out_dir, logs / "all.predictions.log")


def _run_task(spec: ModuleSpec, task: str, tasks_dir: Path, emb_root: Path, out_dir: Path, ts: TaskState,
              options: EvalOptions, env: dict[str, str], runner: CommandRunner) -> None:
    """Bring one (module, task) to done, or record where it failed. Never raises for a runner failure."""
    logs = out_dir / "logs" / _slug(spec.alias)
    task_dir = _find_task_dir(emb_root, task)
    if task_dir is None or not (task_dir / ".done.embeddings").exists():
        cmd = [*_entry("embeddings", options.runner), spec.module]
        cmd += _model_args(spec)
        cmd += ["--tasks-dir", str(tasks_dir), "--task", task, "--embeddings-dir", str(emb_root)]
        if not _stage(ts, "embeddings", cmd, env, out_dir, logs / f"{task}.embeddings.log", runner, spec.alias, task):
            return
        task_dir = _find_task_dir(emb_root, task)
        if task_dir is None or not (task_dir / ".done.embeddings").exists():
            _fail(ts, "embeddings", f"heareval finished but wrote no {emb_root}/*/{task}/.done.embeddings",
                  spec.alias, task)
            return
    ts.task_dir = str(task_dir)
    if not (task_dir / "prediction-done.json").exists():
        cmd = [*_entry("predictions", options.runner), str(task_dir), "--grid", options.grid]
        if options.grid_points:
            cmd += ["--grid-points", str(options.grid_points)]
        pred_env = {**env, WEIGHTS_ONLY_ENV: "1"}
        if not _stage(ts, "predictions", cmd, pred_env, out_dir, logs / f"{task}.predictions.log", runner,
                      spec.alias, task):
            return
    try:
        read_task_score(task_dir)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(ts, "scores", str(e), spec.alias, task)
        return
    ts.status, ts.stage, ts.error = "done", "", ""
    if not options.keep_probe_checkpoints:
        remove_probe_checkpoints(task_dir)


def remove_probe_checkpoints(task_dir: str | Path) -> int:
    """Delete the probe checkpoints (*.ckpt) heareval's predictions runner wrote under a scored task's folder
    (lightning_logs/version_*/checkpoints/); their metrics.csv and hparams stay, and so do the predictions and
    scores. Returns the bytes freed."""
    freed = 0
    for ckpt in Path(task_dir).glob("lightning_logs/*/checkpoints/*.ckpt"):
        freed += ckpt.stat().st_size
        ckpt.unlink()
    if freed:
        log.debug("%s: removed %.0f MB of probe checkpoints", task_dir, freed / 1e6)
    return freed


def _stage(ts: TaskState, stage: str, cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path,
           runner: CommandRunner, alias: str, task: str) -> bool:
    log.info("%s / %s: %s", alias, task, stage)
    t0 = time.perf_counter()
    result = runner(cmd, env, cwd, log_path)
    ts.seconds[stage] = round(time.perf_counter() - t0, 2)
    if result.returncode != 0:
        _fail(ts, stage, f"exit {result.returncode}; log {log_path}\n{result.tail}", alias, task)
        return False
    return True


def _fail(ts: TaskState, stage: str, error: str, alias: str, task: str) -> None:
    ts.status, ts.stage, ts.error = "failed", stage, error
    log.error("%s / %s: %s failed: %s", alias, task, stage, error)


# ---------------------------------------------------------------- scores and tables


def read_task_score(task_dir: str | Path) -> tuple[float, str, str]:
    """(official score, metric name, score mode max|min) from heareval's test.predicted-scores.json."""
    task_dir = Path(task_dir)
    path = task_dir / "test.predicted-scores.json"
    scores = json.loads(path.read_text())
    if "test" in scores:
        value = scores["test"]["test_score"]
    elif "aggregated_scores" in scores:
        value = scores["aggregated_scores"]["test_score_mean"]
    else:
        raise KeyError(f"{path}: neither 'test' nor 'aggregated_scores' present (keys {sorted(scores)})")
    metric = "?"
    meta = task_dir / "task_metadata.json"
    if meta.is_file():
        metric = json.loads(meta.read_text())["evaluation"][0]
    return float(value), metric, str(scores.get("score_mode", "max"))


def count_test_clips(task_dir: str | Path, meta: dict) -> str:
    """How many clips a task's test score rests on, from its split files (`meta`: its task_metadata.json): '12'
    (the test split), or '240 (5 folds)' for a k-fold task (each clip is tested once, in its fold; the score is the
    mean over folds). '' when the split files are not there."""
    task_dir = Path(task_dir)
    kfold = meta.get("split_mode") != "trainvaltest"
    names = (meta.get("splits") or sorted(p.stem for p in task_dir.glob("fold*.json"))) if kfold else ["test"]
    files = [task_dir / f"{n}.json" for n in names]
    if not files or not all(f.is_file() for f in files):
        return ""
    n = sum(len(json.loads(f.read_text())) for f in files)  # each split file maps clip -> labels (or events)
    return f"{n} ({len(files)} folds)" if kfold else str(n)


def comparison_table(state: dict, tasks: Sequence[str], keys: Sequence[str],
                     metrics: dict[str, str] | None = None, clips: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows: tasks then 'mean'; columns: metric, test clips, one per module alias, and SeLa - BYOL-A when
    computable. Failed or missing cells are NaN; their reasons stay in the state file and comparison.md."""
    modules = [state["modules"][k] for k in keys]
    rows = []
    for task in tasks:
        row: dict[str, object] = {"task": task, "metric": (metrics or {}).get(task, ""),
                                  CLIPS_COLUMN: (clips or {}).get(task, "")}
        for m in modules:
            ts = m["tasks"].get(task, {})
            value = np.nan
            if ts.get("status") == "done":
                value, metric, _ = read_task_score(ts["task_dir"])
                row["metric"] = metric
            row[m["alias"]] = value
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*INFO_COLUMNS, *[m["alias"] for m in modules]])
    sela = [m["alias"] for m in modules if m.get("objective") == "sela"]
    byol = [m["alias"] for m in modules if m.get("objective") == "byol"]
    if sela and byol:
        table[DIFF_COLUMN] = table[sela[0]] - table[byol[0]]
    mean = {"task": "mean", "metric": "(mean over tasks)", CLIPS_COLUMN: ""}
    for col in score_columns(table):
        mean[col] = table[col].mean() if table[col].notna().all() else np.nan
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def score_columns(table: pd.DataFrame) -> list[str]:
    """The comparison's score columns: one per module, then SeLa - BYOL-A when present."""
    return [c for c in table.columns if c not in INFO_COLUMNS]


def failures(state: dict) -> list[tuple[str, str, str, str]]:
    """(alias, task, stage, error) of every failed cell."""
    return [(m["alias"], task, ts["stage"], ts["error"]) for m in state["modules"].values()
            for task, ts in m["tasks"].items() if ts.get("status") == "failed"]


def write_comparison(table: pd.DataFrame, out_dir: Path) -> None:
    """comparison.csv, comparison.md (with a failures section) and comparison.png."""
    from hear_sela.analysis.report import markdown_table

    state = _read_eval_state(out_dir / STATE_FILE)
    table.to_csv(out_dir / "comparison.csv", index=False, float_format="%.6g")
    lines = ["# HEAR evaluation: official test score per task", "",
             "Each cell is heareval's `test_score` (the task's first `evaluation` metric), or the mean over folds for "
             "k-fold tasks; blank = failed (see below). Mean = over tasks, only when every task succeeded. Test "
             "clips: how many clips each score rests on (k-fold: all folds together, each clip tested once).", ""]
    modules = [m for m in state["modules"].values() if m["alias"] in table.columns]
    lines += [f"- `{m['alias']}`: module `{m['module']}`" + (f", checkpoint `{m['checkpoint']}`" if m["checkpoint"]
                                                             else "") + (f", objective {m['objective']}"
                                                                         if m.get("objective") else "")
              for m in modules]
    lines += ["", markdown_table(table, na="failed"), ""]
    fails = [f for f in failures(state) if f[0] in table.columns]
    if fails:
        lines += ["## Failures", ""]
        for alias, task, stage, error in fails:
            tail = "\n".join(error.splitlines()[-8:])
            lines += [f"- `{alias}` / `{task}`: {stage} failed", "", "```", tail, "```", ""]
    (out_dir / "comparison.md").write_text("\n".join(lines) + "\n")
    _bar_plot(table, out_dir / "comparison.png")


def _bar_plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in score_columns(table) if c != DIFF_COLUMN]
    rows = table[table["task"] != "mean"]
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(cols))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(rows) + 2) + 1.6, 3.8), layout="constrained")
    for i, col in enumerate(cols):
        bars = ax.bar(x + (i - (len(cols) - 1) / 2) * width, rows[col].fillna(0.0), width, label=col)
        ax.bar_label(bars, labels=["failed" if np.isnan(v) else f"{v:.2f}" for v in rows[col]], fontsize=6,
                     padding=1)
    ax.set_xticks(x, [f"{t}\n({m})" for t, m in zip(rows["task"], rows["metric"])], fontsize=7)
    ax.set_ylabel("official test score")
    ax.set_ylim(0, 1.08 * max(1e-9, float(np.nanmax(rows[cols].to_numpy(dtype=float), initial=0.0))))
    ax.set_title("HEAR tasks: official score per module")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
