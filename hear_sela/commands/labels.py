"""hear-sela labels CKPT [--out labels.csv]: re-run a label update from a SeLa checkpoint on its feature cache and
write one row per (head, segment) in the labels.csv format of `hear-sela analyze` (data/segment_labels.py): clip_id,
segment, start_s, head, label, confidence."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("hear_sela.labels")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="SeLa training checkpoint (.pt)")
    p.add_argument("--out", default="labels.csv", help="output CSV (default labels.csv)")
    p.add_argument("--cache", default=None, help="feature cache directory (default: the checkpoint's)")
    p.add_argument("--stored", action="store_true",
                   help="write the labels stored in the checkpoint instead of solving afresh")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")


def main(args: argparse.Namespace) -> int:
    from hear_sela import distributed as dist
    from hear_sela.training.relabel import relabel_checkpoint, write_store_labels

    try:
        store, cache = relabel_checkpoint(args.checkpoint, cache_dir=args.cache, device=args.device,
                                          solve=not args.stored)
        out = write_store_labels(Path(args.out), store, cache)
    finally:
        dist.shutdown()
    log.info("wrote %s: %d segments x %d heads", out, store.labels.shape[1], store.labels.shape[0])
    return 0
