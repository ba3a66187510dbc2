"""hear-sela analyze CKPT --out DIR: a SeLa checkpoint's emergent classes against reference labels.

Writes DIR/report.md (tables and plots), metrics.csv, clusters.csv, label_best_cluster.csv, labels.csv (every
segment and head), clip_labels.csv, clips.csv (reference labels, 2-D map), clip_embeddings.npy, summary.json and the
PNG plots; `hear-sela browse` reads them. See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import logging

from hear_sela.analysis.report import markdown_table

log = logging.getLogger("hear_sela.analysis")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="SeLa training checkpoint (.pt) with heads and label store")
    p.add_argument("--out", required=True, help="output folder")
    add_analysis_options(p)


def add_analysis_options(p: argparse.ArgumentParser) -> None:
    """The analysis's own options (shared with `hear-sela browse CKPT`)."""
    p.add_argument("--data", action="append", default=[], metavar="RECIPE|data.key=value",
                   help="analyse other data than the checkpoint's training data: a recipe's data section or "
                        "data.* overrides (repeatable). The frontend and encoder stay the checkpoint's")
    p.add_argument("--labels", metavar="CSV",
                   help="reference labels: CSV with an id column (clip_id/fname/...), 'labels' (comma-separated) "
                        "and optional 'mids' (FSD50K's dev.csv works as is); default: the data's own labels")
    p.add_argument("--head", type=int, default=None, help="head for the per-cluster report (default: the best)")
    p.add_argument("--relabel", action="store_true",
                   help="label with the heads' argmax even where the checkpoint's label store applies")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=CKPT",
                   help="also run k-means on another checkpoint's encoder embeddings (e.g. byola=runs/byol/x.pt)")
    p.add_argument("--batch-size", type=int, default=256, help="segments per encoder forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0, help="k-means, random baseline and 2-D map seed")


def run_analysis(checkpoint: str, out: str, args: argparse.Namespace):
    """`analyze` of `checkpoint` into `out` with the options of `add_analysis_options` -> AnalysisResult."""
    from hear_sela.analysis.core import analyze
    from hear_sela.analysis.sources import inputs_from_checkpoint

    compare = {}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--compare {item!r}: expected NAME=CKPT")
        compare[name] = path
    inputs = inputs_from_checkpoint(checkpoint, data=args.data, labels_csv=args.labels, relabel=args.relabel,
                                    compare=compare, batch_size=args.batch_size, device=args.device, head=args.head)
    return analyze(inputs, out, head=args.head, seed=args.seed)


def main(args: argparse.Namespace) -> int:
    from hear_sela.data.records import DataError

    try:
        result = run_analysis(args.checkpoint, args.out, args)
    except DataError as e:  # a missing or malformed labels CSV, found before any embedding: one line
        log.error("%s", e)
        return 1
    cols = ["method", "reference", "k_used", "largest", "nmi", "ami", "ari", "purity", "tag_mi", "ml_purity",
            "onmi"]
    table = result.metrics[[c for c in cols if c in result.metrics and result.metrics[c].notna().any()]]
    print(markdown_table(table))
    print(f"\nreport: {result.files['report']}")
    return 0
