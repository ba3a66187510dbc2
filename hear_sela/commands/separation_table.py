"""hear-sela separation-table RECIPE [key=value ...]: run the bootstrapped-separation experiment (Seetharaman et
al. 2019) end to end and write OUT/table.md (the paper's Table 1 with its numbers beside ours) and OUT/results.json.
A rerun reuses the mixtures and the students trained from the same settings."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("hear_sela.separation_table")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML, e.g. recipes/separation/cpu.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. student.epochs=2")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hear_sela.config import ConfigError
    from hear_sela.separation.config import load_separation_config
    from hear_sela.separation.experiment import run_experiment

    try:
        cfg = load_separation_config(args.recipe, args.overrides)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    run_experiment(cfg)
    table = Path(cfg.out_dir) / "table.md"
    print(table.read_text())
    log.info("wrote %s and %s", table, table.with_name("results.json"))
    return 0
