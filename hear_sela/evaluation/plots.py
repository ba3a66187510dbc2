"""comparison.png of `hear-sela evaluate`: one group of bars per task, one bar per module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hear_sela.evaluation.tables import DIFF_COLUMN, score_columns


def plot_comparison(table: pd.DataFrame, path: Path) -> None:
    """Bars of every module's score per task (the SeLa - BYOL-A column left out); a failed cell is a labelled 0."""
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
