"""hear-sela separate FILE --checkpoint CKPT --out DIR: split a mono recording into two sources with a trained
deep-clustering student of the separation recipe (writes DIR/<stem>_s1.wav and DIR/<stem>_s2.wav)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("hear_sela.separate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="audio file (any format the project's reader decodes; stereo is downmixed)")
    p.add_argument("--checkpoint", required=True, help="student checkpoint (runs/<recipe>/students/<name>.pt)")
    p.add_argument("--out", required=True, help="output folder")


def main(args: argparse.Namespace) -> int:
    import soundfile as sf

    from hear_sela.checkpoint import CheckpointError, load_checkpoint
    from hear_sela.data.audio import AudioError, load_audio
    from hear_sela.separation.student import load_student, separate_mono

    try:
        student = load_student(args.checkpoint)
        sample_rate = int(load_checkpoint(args.checkpoint)["meta"]["sample_rate"])
        x = load_audio(args.file, sample_rate)
    except (CheckpointError, AudioError) as e:
        log.error("%s", e)
        return 1
    est = separate_mono(student, x)  # (2, S)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.file).stem
    for i, s in enumerate(est):
        sf.write(out / f"{stem}_s{i + 1}.wav", s, sample_rate, subtype="FLOAT")
    log.info("wrote %s/%s_s{1,2}.wav (%d Hz, %.2f s)", out, stem, sample_rate, len(x) / sample_rate)
    return 0
