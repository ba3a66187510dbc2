"""hear-sela train RECIPE [key=value ...] [--resume]: train SeLa or BYOL-A (single process or under torchrun)."""

from __future__ import annotations

import argparse
import logging
import os

from hear_sela.config import ConfigError, load_config

log = logging.getLogger("hear_sela.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="YAML recipe: a path, or a packaged recipe's name (hear-sela recipes)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted config overrides, e.g. train.epochs=10 sela.clusters=500")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue <train.out_dir>/last.pt (or the checkpoint given) exactly where it stopped")


def interrupted_hint(args: argparse.Namespace) -> str:
    """After Ctrl-C: where the last checkpoint is and the command that resumes it."""
    import shlex
    from pathlib import Path

    from hear_sela.checkpoint import load_checkpoint

    cfg = load_config(args.recipe, args.overrides)
    last = Path(cfg.train.out_dir) / "last.pt"
    again = shlex.join(["hear-sela", "train", args.recipe, *args.overrides])
    if not last.is_file():
        return (f"no checkpoint written yet in {last.parent} (one is written at each epoch's end, or every "
                f"train.ckpt_every_steps steps); start again with: {again}")
    ckpt = load_checkpoint(last)
    return (f"the last checkpoint is {last} (epoch {ckpt['epoch']}, step {ckpt['step']}); resume with: "
            f"{again} --resume")


def main(args: argparse.Namespace) -> int:
    try:  # before torch and the training code are imported, so a typo is reported at once
        cfg = load_config(args.recipe, args.overrides)
    except ConfigError as e:  # an expected failure (no such recipe, bad key): one line, no traceback
        log.error("%s", e)
        return 1
    from hear_sela import distributed as dist
    from hear_sela.training.loop import train

    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun one rank talks (the process group starts later)
        logging.getLogger().setLevel(logging.WARNING)
    try:
        final = train(cfg, resume=args.resume)
    finally:
        dist.shutdown()
    log.info("final checkpoint: %s", final)
    return 0
