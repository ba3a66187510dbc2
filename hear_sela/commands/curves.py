"""hear-sela curves RUN [RUN ...] --out FIG.png: the online evaluation's dev scores of one or more training runs
against the step and against CPU hours, per task and their mean (and FIG.csv with every point)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("hear_sela.curves")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a training run folder (or its metrics.jsonl), optionally as LABEL=PATH")
    p.add_argument("--out", default="curves.png", help="figure to write (default curves.png; the table beside it "
                                                      "as .csv)")


def parse_run(text: str) -> tuple[str | None, str]:
    """LABEL=PATH or PATH."""
    label, sep, path = text.partition("=")
    return (label, path) if sep and label and path else (None, text)


def main(args: argparse.Namespace) -> int:
    from hear_sela.analysis.curves import write_curves

    figure, table, summary = write_curves([parse_run(r) for r in args.runs], args.out)
    for row in summary.itertuples():
        print(f"{row.run}: mean {row.probe} init {row.init:.3f}, best {row.best:.3f} at step {row.best_step} "
              f"({row.best_minus_init:+.3f}), last {row.last:.3f} at step {row.last_step}")
    log.info("wrote %s and %s", figure, table)
    return 0
