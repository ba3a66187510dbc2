"""hear-sela import-byola FILE.pth OUT.safetensors: a published BYOL-A AudioNTT2020 state dict (nttcslab/byol-a,
evaluation-only licence: keep it and the export local) as our export, with BYOL-A's frontend and AudioSet
normalisation, for `hear-sela evaluate --module byola_pub=hear_sela:OUT` and s3prl `-k OUT`."""

from __future__ import annotations

import argparse
import logging

from hear_sela.checkpoint import load_encoder_bundle

log = logging.getLogger("hear_sela.import_byola")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="BYOL-A state dict, e.g. AudioNTT2020-BYOLA-64x96d512.pth")
    p.add_argument("out", help="output export: .safetensors (recommended) or .pt")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")


def main(args: argparse.Namespace) -> int:
    from hear_sela.byola_import import import_byola

    # a CheckpointError (missing file, other keys) is an expected failure: cli.main prints it as one line, exit 1
    out = import_byola(args.weights, args.out, half=args.half)
    bundle = load_encoder_bundle(out)  # proves the export loads before we report success
    n = sum(p.numel() for p in bundle.encoder.parameters())
    fe = bundle.config.frontend
    log.info("wrote %s (audiontt d=%d, %.2f M parameters; frontend %d Hz, n_fft %d, hop %d, %d mels, %g-%g Hz, "
             "norm %.7g / %.7g)", out, bundle.encoder.embed_dim, n / 1e6, fe.sample_rate, fe.n_fft, fe.hop_length,
             fe.n_mels, fe.f_min, fe.f_max, fe.norm_mean, fe.norm_std)
    return 0
