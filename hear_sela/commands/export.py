"""hear-sela export CKPT OUT: encoder-only weights plus the resolved config (frontend and its statistics)."""

from __future__ import annotations

import argparse
import logging

from hear_sela.checkpoint import export_encoder, load_encoder_bundle

log = logging.getLogger("hear_sela.export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (.pt) or export")
    p.add_argument("out", help="output file: .safetensors (recommended) or .pt")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")


def main(args: argparse.Namespace) -> int:
    out = export_encoder(args.checkpoint, args.out, half=args.half)
    bundle = load_encoder_bundle(out)  # proves the export loads before we report success
    n = sum(p.numel() for p in bundle.encoder.parameters())
    log.info("wrote %s (%s, %.2f M parameters, objective %s)", out, bundle.config.model.encoder, n / 1e6,
             bundle.objective)
    return 0
