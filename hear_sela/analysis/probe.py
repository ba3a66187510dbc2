"""Quick dev-task probes of saved weights, the online evaluation's probes run offline (`hear-sela probe`): kNN and
logistic regression on the HEAR scene embedding of exports, checkpoints or an `untrained:` initialisation, per task
and, with `parts`, per part of the embedding (`Encoder.embedding_parts`: for AudioNTT2022 the stacked conv map and
the MLP output), to see at which stage a training keeps or loses information; `logmel` in place of weights probes
the log-mel floor (`hear_sela.baselines.logmel`, the row every table carries). Faster than heareval (no MLP grid),
and exactly the numbers the online evaluation logs for the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hear_sela.config import OnlineEvalConfig
from hear_sela.data.hear_task_read import SceneTaskClips, read_scene_task
from hear_sela.training.online_eval import dev_task_dirs, probe_task_folds, scene_embeddings

LOGMEL = "logmel"  # in place of a weights file: the log-mel floor, hear_sela.baselines.logmel (no parts)


def read_tasks(tasks_dir: str | Path, tasks: Sequence[str] = (), max_clips: int = 600) -> list[SceneTaskClips]:
    """The dev tasks as the online evaluation reads them (the same seeded subset of clips)."""
    cfg = OnlineEvalConfig(tasks_dir=str(tasks_dir), tasks=list(tasks), max_clips=max_clips)
    return [read_scene_task(d, cfg.max_clips, seed=0) for d in dev_task_dirs(cfg)]


def probe_weights(name: str, weights: str | Path, tasks: Sequence[SceneTaskClips], probes: Sequence[str],
                  parts: bool = False) -> pd.DataFrame:
    """Rows (weights, task, part, probe, score, fold_std) for one weights file: score is the mean over the task's
    folds, fold_std their sample standard deviation (NaN with a single fold)."""
    if str(weights) == LOGMEL:
        from hear_sela.baselines import logmel as module
    else:
        from hear_sela import hear as module

    model = module.load_model(str(weights))
    slices = model.encoder.embedding_parts() if parts and hasattr(model, "encoder") else {"all": slice(None)}
    rows = []
    for task in tasks:
        emb = scene_embeddings(model, task.audio, embed=module.get_scene_embeddings)  # (N, D)
        for part, cols in slices.items():
            for probe, folds in probe_task_folds(emb[:, cols], task, list(probes)).items():
                rows.append({"weights": name, "task": task.name, "part": part, "probe": probe,
                             "score": float(np.mean(folds)) if folds else float("nan"),
                             "fold_std": float(np.std(folds, ddof=1)) if len(folds) > 1 else float("nan")})
    return pd.DataFrame(rows)


def with_means(table: pd.DataFrame, values: str = "score") -> pd.DataFrame:
    """Wide: one row per (weights, part, probe), one column per task and their mean (of `values`: the scores, or
    their fold-to-fold spread)."""
    wide = table.pivot_table(index=["weights", "part", "probe"], columns="task", values=values, sort=False)
    wide["mean"] = wide.mean(axis=1)
    return wide.reset_index()
