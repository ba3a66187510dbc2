"""The comparison of `hear-sela evaluate`: official scores read back from heareval's folders, one table of task x
module (with the test clips each score rests on, the mean over tasks and SeLa - BYOL-A), comparison.csv and .md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

DIFF_COLUMN = "SeLa - BYOL-A"
CLIPS_COLUMN = "test clips"
INFO_COLUMNS = ("task", "metric", CLIPS_COLUMN)  # the comparison's columns that are not scores


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


def write_comparison(table: pd.DataFrame, state: dict, out_dir: Path) -> None:
    """comparison.csv and comparison.md (with a failures section); `state` is the runner's evaluate_state.json."""
    from hear_sela.analysis.report import markdown_table

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
