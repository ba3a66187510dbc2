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
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from hear_sela.data.records import DataError
from hear_sela.evaluation.plots import plot_comparison
from hear_sela.evaluation.specs import ModuleSpec, resolve_specs, slug, untrained_export
from hear_sela.evaluation.tables import comparison_table, count_test_clips, read_task_score, write_comparison
from hear_sela.fileio import read_json, write_json

log = logging.getLogger("hear_sela.evaluate")

WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
STATE_FILE = "evaluate_state.json"
TAIL_LINES = 30


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
        key = slug(spec.alias)
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
    table = comparison_table(state, tasks, [slug(s.alias) for s in specs], metrics, clips)
    write_comparison(table, state, out_dir)
    plot_comparison(table, out_dir / "comparison.png")
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
    logs = out_dir / "logs" / slug(spec.alias)
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
    logs = out_dir / "logs" / slug(spec.alias)
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
