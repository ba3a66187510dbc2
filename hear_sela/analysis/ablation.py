"""The ablation table (`hear-sela ablate`): what one finished SeLa run scores, and the table over variants x seeds.

Per run, from its final checkpoint (`run_scores`):
- nmi, ami: each head's clip labels (majority vote of its segments, `metrics.majority_vote`) against the clips'
  reference labels (data labels.csv, as `hear-sela analyze` reads them), by the analysis's `score_table`; the mean
  over heads (no head picked by its score: that would leak the reference into the choice). NMI is defined for one
  label per clip: where clips carry several, the label at `label_position` of each clip's list is the reference
  (default 0: the package, as `scripts/make_real_corpus.sh` writes package, folder, category); None = NaN then.
- head_nmi: the mean NMI between the segment labels of every pair of heads (1 = the heads agree; lower = more
  diverse heads).
- churn: the share of labels that changed at each label update (`changed`, logged by the update), the mean over
  the updates after the first (the first replaces SeLa's random initial labels) and the last update's value.
Per variant (`ablation_table`): mean and spread (sample standard deviation over the seeds that finished; 0 for a
single seed) of every number, the count of finished and failed seeds, wall time per run.

Legend: H heads, S segments, C clips.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hear_sela.analysis import metrics as M
from hear_sela.analysis.core import score_table
from hear_sela.analysis.report import markdown_table

METRICS = ("nmi", "ami", "head_nmi", "churn", "churn_last", "downstream", "train_minutes", "eval_minutes")
LABELS = {"nmi": "NMI", "ami": "AMI", "head_nmi": "head-pair NMI", "churn": "churn/update", "churn_last":
          "churn last", "downstream": "HEAR dev mean", "train_minutes": "train min", "eval_minutes": "eval min"}


def mean_pairwise_nmi(labels: np.ndarray) -> float:
    """Mean NMI over the pairs of heads: labels (H, S) -> float; NaN for one head (the label update logs it)."""
    from hear_sela.objectives.label_update import mean_pairwise_nmi as logged  # torch only when a table needs it

    return logged(labels)


def churn(history: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(mean over the updates after the first, last) of the logged share of changed labels; resume relabels of
    changed data are left out. NaN when there is no such update."""
    changed = [float(h["changed"]) for h in history if "changed" in h and not h.get("relabel")]
    later = changed[1:]
    return (float(np.mean(later)) if later else float("nan"), later[-1] if later else float("nan"))


def reference_labels(label_sets: Sequence[tuple[str, ...]], label_position: int | None) -> list[tuple[str, ...]]:
    """Each clip's reference for NMI/AMI: its labels as they are, or, with a position, the label there (the last
    one for a shorter list: a clip listed without folder or category still has a package)."""
    if label_position is None:
        return [tuple(x) for x in label_sets]
    return [(x[min(label_position, len(x) - 1)],) if x else () for x in label_sets]


def clip_scores(labels: np.ndarray, conf: np.ndarray, segment_clip: np.ndarray, label_sets: Sequence[tuple[str, ...]],
                clusters: int, label_position: int | None = 0) -> dict[str, float]:
    """nmi, ami (mean over heads) of the heads' clip labels: labels, conf (H, S) per segment, segment_clip (S,) the
    clip index of each segment, label_sets the C clips' reference labels."""
    clips = [M.majority_vote(lab, segment_clip, len(label_sets), c)[0] for lab, c in zip(labels, conf)]  # H x (C,)
    references = reference_labels(label_sets, label_position)
    if not any(references):
        raise ValueError("no clip of its data has a reference label (data.labels_csv)")
    table = score_table({f"head {h}": lab for h, lab in enumerate(clips)}, references, clusters, "labels")
    return {"nmi": float(table["nmi"].mean()), "ami": float(table["ami"].mean())}


def run_scores(checkpoint: str | Path, label_position: int | None = 0) -> dict[str, float]:
    """nmi, ami, head_nmi, churn, churn_last of a SeLa training checkpoint on its own (cached) training data; none
    for a BYOL-A one (its row then has the downstream score and times only)."""
    from hear_sela.data.prepare import prepare_cache
    from hear_sela.training.state import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    if "label_store" not in ckpt.data:  # BYOL-A (a variant may change train.objective): no labels to score
        return {}
    store = ckpt.label_store
    labels = store.labels.numpy().astype(np.int64)  # (H, S)
    conf = store.confidences.numpy().astype(np.float64)  # (H, S)
    cache = prepare_cache(ckpt.config, progress=False)
    if labels.shape[1] != len(cache):
        raise ValueError(f"{checkpoint}: {labels.shape[1]} labelled segments but the cache has {len(cache)}")
    seg_clip = np.asarray(cache.segment_clip, dtype=np.int64)
    try:
        scores = clip_scores(labels, conf, seg_clip, [tuple(c.labels) for c in cache.clips],
                             int(ckpt.config.sela.clusters), label_position)
    except ValueError as e:
        raise ValueError(f"{checkpoint}: {e}") from None
    mean_churn, last_churn = churn(store.get("history", []))
    return {**scores, "head_nmi": mean_pairwise_nmi(labels), "churn": mean_churn, "churn_last": last_churn}


def ablation_table(records: Sequence[dict[str, Any]], variants: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant from run records (dicts: variant, seed, status 'done' | 'failed', overrides, and the
    METRICS of done runs). Columns: variant, overrides, seeds_done, seeds_failed, then <metric>_mean and
    <metric>_std for each metric some run has. `variants`: the row order (default: first appearance)."""
    order = list(variants) if variants is not None else list(dict.fromkeys(r["variant"] for r in records))
    present = [m for m in METRICS if any(m in r and r.get("status") == "done" for r in records)]
    rows = []
    for name in order:
        runs = [r for r in records if r["variant"] == name]
        done = [r for r in runs if r.get("status") == "done"]
        row: dict[str, Any] = {"variant": name, "overrides": " ".join(runs[0].get("overrides", [])) if runs else "",
                               "seeds_done": len(done), "seeds_failed": len(runs) - len(done)}
        for m in present:
            row.update(_mean_std(m, [r[m] for r in done if r.get(m) is not None and np.isfinite(r[m])]))
        rows.append(row)
    return pd.DataFrame(rows)


def task_table(records: Sequence[dict[str, Any]], variants: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant with per-task HEAR scores (records' `task_scores`, task -> score): columns variant,
    seeds, then <task>_mean and <task>_std (sample std over seeds; 0 for one). Empty when no run has them."""
    order = list(variants) if variants is not None else list(dict.fromkeys(r["variant"] for r in records))
    done = [r for r in records if r.get("status") == "done" and r.get("task_scores")]
    tasks = sorted({t for r in done for t in r["task_scores"]})
    rows = []
    for name in order:
        mine = [r["task_scores"] for r in done if r["variant"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"variant": name, "seeds": len(mine)}
        for t in tasks:
            row.update(_mean_std(t, [s[t] for s in mine if t in s]))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(name: str, values: Sequence[float]) -> dict[str, float]:
    """{name_mean, name_std}: the mean and sample standard deviation over seeds (0 for one value, NaN for none)."""
    v = np.asarray(values, dtype=np.float64)
    return {f"{name}_mean": float(v.mean()) if len(v) else np.nan,
            f"{name}_std": float(v.std(ddof=1)) if len(v) > 1 else (0.0 if len(v) else np.nan)}


def _mean_pm(table: pd.DataFrame, name: str, fmt: str) -> list[str]:
    """The column `name` as 'mean ± spread' cells from <name>_mean / <name>_std ('-' without a value; the spread
    left out when 0: one seed)."""
    return ["-" if not np.isfinite(m) else f"{m:{fmt}}" + (f" ± {s:{fmt}}" if np.isfinite(s) and s > 0 else "")
            for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"])]


def _last_line(text: str | None) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1] if lines else "(no error recorded)"


def table_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, each metric as 'mean ± spread' (the spread left out when 0: one seed)."""
    shown = pd.DataFrame({"variant": table["variant"],
                          "seeds": [f"{d}" + (f" ({f} failed)" if f else "") for d, f in
                                    zip(table["seeds_done"], table["seeds_failed"])]})
    for m in METRICS:
        if f"{m}_mean" in table:
            fmt = ".1f" if m.endswith("minutes") else ".3f"
            shown[LABELS[m]] = _mean_pm(table, m, fmt)
    shown["overrides"] = [_short_paths(o) for o in table["overrides"].fillna("")]
    return markdown_table(shown)


def _short_paths(overrides: str) -> str:
    """Absolute path values (ablate resolves a variant's relative paths) shown by file name, as the variant file
    writes them: the full path stays in ablation.csv."""
    return re.sub(r"=/\S*/([^/\s]+)", r"=\1", overrides)


def write_ablation_table(records: Sequence[dict[str, Any]], out_dir: str | Path, header: Sequence[str] = (),
                         variants: Sequence[str] | None = None) -> dict[str, Path]:
    """ablation.csv (numbers), ablation_tasks.csv (per-task HEAR scores, when there are any) and ablation.md (header
    lines, the table, the per-task table, then each failed run's error)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = ablation_table(records, variants)
    files = {"csv": out_dir / "ablation.csv", "md": out_dir / "ablation.md"}
    table.to_csv(files["csv"], index=False, float_format="%.6g")
    lines = [*header, "", table_markdown(table), ""]
    tasks = task_table(records, variants)
    if len(tasks):
        files["tasks_csv"] = out_dir / "ablation_tasks.csv"
        tasks.to_csv(files["tasks_csv"], index=False, float_format="%.6g")
        names = [c[:-5] for c in tasks.columns if c.endswith("_mean")]
        shown = pd.DataFrame({"variant": tasks["variant"], "seeds": tasks["seeds"].astype(str)})
        for t in names:
            shown[t] = _mean_pm(tasks, t, ".3f")
        lines += ["HEAR dev tasks, per task (official score; ± = sample std over seeds):", "",
                  markdown_table(shown), ""]
    failed = [r for r in records if r.get("status") != "done"]
    if failed:
        lines += ["Failed runs:", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {_last_line(r.get('error'))}" for r in failed]
    files["md"].write_text("\n".join(lines) + "\n")
    return files
