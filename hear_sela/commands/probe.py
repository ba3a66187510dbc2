"""hear-sela probe WEIGHTS [WEIGHTS ...] --tasks-dir DEV_TASKS: kNN and logistic-regression probes of saved weights
on multiclass scene tasks (the online evaluation's probes, offline), optionally per part of the embedding."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("hear_sela.probe")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", nargs="+", metavar="WEIGHTS",
                   help="an export or checkpoint of ours (or a BYOL-A .pth), untrained:CKPT for that run's init, "
                        "or logmel (the log-mel floor), optionally as LABEL=WEIGHTS")
    p.add_argument("--tasks-dir", required=True, help="folder of HEAR scene tasks (e.g. the dev tasks)")
    p.add_argument("--tasks", nargs="*", default=[], help="task folder names (default: every multiclass scene task)")
    p.add_argument("--max-clips", type=int, default=600, help="seeded subset per task, as the online evaluation "
                                                             "(default 600; 0 = all)")
    p.add_argument("--probes", nargs="+", default=["knn", "logreg"], choices=["knn", "logreg"])
    p.add_argument("--parts", action="store_true", help="also probe each part of the embedding (AudioNTT2022: "
                                                       "the conv map and the MLP output)")
    p.add_argument("--out", default=None, help="CSV of every score (default: print only)")


def main(args: argparse.Namespace) -> int:
    import tempfile

    import pandas as pd

    from hear_sela.analysis.probe import probe_weights, read_tasks, with_means
    from hear_sela.checkpoint import export_untrained

    tasks = read_tasks(args.tasks_dir, args.tasks, args.max_clips)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, item in enumerate(args.weights):
            label, sep, path = item.partition("=")
            label, path = (label, path) if sep and label and path else (None, item)
            if path.startswith("untrained:"):
                src = path.removeprefix("untrained:")
                label = label or f"untrained:{Path(src).stem}"
                path = str(export_untrained(src, Path(tmp) / f"untrained{i}.safetensors"))
            tables.append(probe_weights(label or Path(path).stem, path, tasks, args.probes, args.parts))
    table = pd.concat(tables, ignore_index=True)
    if args.out:
        table.to_csv(args.out, index=False)
        log.info("wrote %s", args.out)
    print(with_means(table).round(3).to_string(index=False))
    print("\nfold-to-fold spread (sample std of the per-fold scores):")
    print(with_means(table, "fold_std").round(3).to_string(index=False))
    return 0
