"""Learning curves from the online evaluation (training/online_eval.py): the dev-task scores a run logged in its
`metrics.jsonl` (kind "eval"), as a table and as a figure against the step and against the run's CPU hours, per task
and their mean, several runs side by side. The first point of each run is its untrained initialisation: a run whose
curve never rises above it has not learned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import pandas as pd  # noqa: E402

from hear_sela.data.records import DataError  # noqa: E402

PROBE_STYLE = {"logreg": "-", "knn": "--"}


def read_curves(run: str | Path, label: str | None = None) -> pd.DataFrame:
    """One row per (step, task, probe) of a run's online evaluation: run, step, cpu_hours, task, probe, score.
    `run` is a run folder or its metrics.jsonl. DataError (naming the file) when it logged no evaluation."""
    path = Path(run)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no metrics.jsonl (a training run folder or its metrics.jsonl is expected)")
    name = label or (path.parent.name if path.name == "metrics.jsonl" else path.stem)
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{line_no}: not JSON ({e.msg})") from None
        if record.get("kind") != "eval":
            continue
        for key, value in record.items():
            task, _, probe = key.rpartition("/")
            if task and probe in PROBE_STYLE:
                rows.append({"run": name, "step": int(record["step"]),
                             "cpu_hours": float(record.get("cpu_seconds", float("nan"))) / 3600.0,
                             "task": task, "probe": probe, "score": float(value)})
    if not rows:
        raise DataError(f"{path}: no online evaluation records (train with online_eval.tasks_dir=DEV_TASKS)")
    return pd.DataFrame(rows)


def curve_summary(curves: pd.DataFrame, probe: str = "logreg") -> pd.DataFrame:
    """Per run: the init's mean score (first step), the best and the last, with their steps, and best - init."""
    mean = curves[(curves.task == "mean") & (curves.probe == probe)].sort_values(["run", "step"])
    rows = []
    for run, part in mean.groupby("run", sort=False):
        best = part.loc[part.score.idxmax()]
        rows.append({"run": run, "probe": probe, "init": part.score.iloc[0], "best": best.score,
                     "best_step": int(best.step), "last": part.score.iloc[-1], "last_step": int(part.step.iloc[-1]),
                     "best_minus_init": best.score - part.score.iloc[0]})
    return pd.DataFrame(rows)


def plot_curves(curves: pd.DataFrame, path: str | Path) -> Path:
    """Score against step (top row) and against CPU hours (bottom row), one column per task and the mean; one
    colour per run, solid logistic regression, dashed kNN; each run's init score as a dotted line."""
    tasks = ["mean", *sorted(t for t in curves.task.unique() if t != "mean")]
    runs = list(dict.fromkeys(curves.run))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(2, len(tasks), figsize=(3.2 * len(tasks), 6.0), squeeze=False, sharey="col")
    for col, task in enumerate(tasks):
        for row, x in enumerate(("step", "cpu_hours")):
            ax = axes[row, col]
            for i, run in enumerate(runs):
                for probe, style in PROBE_STYLE.items():
                    part = curves[(curves.run == run) & (curves.task == task) & (curves.probe == probe)]
                    part = part.sort_values("step")
                    if part.empty:
                        continue
                    ax.plot(part[x], part.score, style, color=colours(i % 10), marker=".", markersize=4,
                            label=f"{run} ({probe})" if col == 0 and row == 0 else None)
                    ax.axhline(part.score.iloc[0], color=colours(i % 10), linestyle=":", linewidth=0.8)
            ax.set_xlabel("step" if x == "step" else "CPU hours")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(task if task != "mean" else "mean over tasks")
            if col == 0:
                ax.set_ylabel("dev score (accuracy)")
    fig.legend(loc="lower center", ncol=min(4, 2 * len(runs)), fontsize=8, frameon=False)
    fig.suptitle("online evaluation: frozen-encoder probes (dotted: each run's untrained init)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_curves(runs: Sequence[tuple[str | None, str | Path]], out: str | Path) -> tuple[Path, Path, pd.DataFrame]:
    """Read every (label, run), write the figure `out` and the table beside it (`out` with .csv); returns both paths
    and the per-run summary."""
    curves = pd.concat([read_curves(run, label) for label, run in runs], ignore_index=True)
    out = Path(out)
    figure = plot_curves(curves, out)
    table = out.with_suffix(".csv")
    curves.to_csv(table, index=False)
    probe = "logreg" if (curves.probe == "logreg").any() else "knn"
    return figure, table, curve_summary(curves, probe)
