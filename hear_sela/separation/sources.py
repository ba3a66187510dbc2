"""Mono speech sources for the separation recipe: espeak-ng synthesis (voices disjoint per split) or a folder.

Synthesised speech is for this recipe only: it is written under SourcesConfig.root (outside the encoder's corpus)
and nothing in hear_sela's encoder training reads it. Sentences are random word strings from the vocabulary below,
drawn from a seeded generator, so the set is reproducible from the config alone.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np

from hear_sela.separation.config import SourcesConfig

log = logging.getLogger("hear_sela.separation.sources")

SPLITS = ("train", "val", "test")

# (ours) common English words covering varied phonemes; the content of the speech does not matter here
_WORDS = (
    "the a one two three four five six seven eight nine ten red green blue yellow black white small large old new "
    "quick slow bright dark early late happy angry quiet loud river mountain garden window kitchen station market "
    "forest village harbour bridge engine signal ticket letter basket pencil candle mirror carpet blanket bottle "
    "doctor teacher farmer sailor driver painter singer player walks runs jumps sings reads writes opens closes "
    "carries throws catches pushes pulls builds breaks finds keeps leaves brings takes gives sends under over "
    "behind beside between through across toward against without during after before because although while "
    "morning evening winter summer spring autumn yesterday tomorrow always never often sometimes quickly slowly "
    "gently loudly softly carefully suddenly finally together apart inside outside above below nearly almost "
)
VOCABULARY = tuple(_WORDS.split())


# the test split's voices also make the same-voice test mixtures
SOURCE_SPLIT = {"train": "train", "val": "val", "test": "test", "test_same": "test"}


def voices(cfg: SourcesConfig, split: str) -> list[str]:
    """The espeak-ng voices (language+variant) of a split: every language with each of the split's variants."""
    variants = {"train": cfg.train_variants, "val": cfg.val_variants, "test": cfg.test_variants}[split]
    return [f"{lang}+{v}" for v in variants for lang in cfg.languages]


def voice_of(path: str | Path) -> str:
    """The voice (speaker) of a source file: its stem up to the last "_" (<voice>_<i>.wav)."""
    stem = Path(path).stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def synthesise(cfg: SourcesConfig, force: bool = False) -> dict[str, list[Path]]:
    """Write <root>/<split>/<voice>_<i>.wav with espeak-ng (its native 22.05 kHz); returns the files per split."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng not found: install it (apt-get install -y espeak-ng) or use sources.kind=folder")
    tr, va, te = set(cfg.train_variants), set(cfg.val_variants), set(cfg.test_variants)
    overlap = tr & va | tr & te | va & te
    if overlap:
        raise ValueError(f"sources: variants {sorted(overlap)} appear in more than one split")
    rng = np.random.default_rng(cfg.seed)
    out: dict[str, list[Path]] = {}
    for split in SPLITS:
        folder = Path(cfg.root) / split
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for voice in voices(cfg, split):
            for i in range(cfg.utterances_per_voice[split]):
                # draw every random value even when the file exists, so the set does not depend on what is on disk
                n = int(rng.integers(cfg.words_per_utterance[0], cfg.words_per_utterance[1] + 1))
                text = " ".join(rng.choice(VOCABULARY, size=n))
                speed = int(rng.integers(cfg.speed_wpm[0], cfg.speed_wpm[1] + 1))
                pitch = int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1))
                path = folder / f"{voice.replace('+', '_')}_{i:03d}.wav"
                if force or not path.exists():
                    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path),
                                    text], check=True, capture_output=True)
                files.append(path)
        out[split] = files
        log.info("sources %s: %d utterances from %d espeak-ng voices", split, len(files), len(voices(cfg, split)))
    return out


def source_files(cfg: SourcesConfig) -> dict[str, list[Path]]:
    """The source files per split: synthesised on first use (espeak) or listed from <root>/<split>/ (folder)."""
    if cfg.kind == "espeak":
        return synthesise(cfg)
    if cfg.kind != "folder":
        raise ValueError(f"sources.kind: unknown kind {cfg.kind!r} (espeak | folder)")
    out = {}
    for split in SPLITS:
        files = sorted((Path(cfg.root) / split).glob("*.wav"))
        if len(files) < 2:
            raise FileNotFoundError(f"{Path(cfg.root) / split}: fewer than 2 .wav sources for split {split}")
        out[split] = files
    return out
