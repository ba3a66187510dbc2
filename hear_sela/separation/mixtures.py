"""Two-source stereo mixtures: anechoic far-field two-microphone model, deterministic by seed.

Each source i arrives from azimuth theta_i (broadside = 0) at mics spaced d apart; mic 1 hears it tau_i =
d sin(theta_i) / c later than mic 0 (a fractional delay, applied in the frequency domain on a zero-padded signal so
nothing wraps). Relative level U(0, level_db) dB is split symmetrically (+x/2, -x/2), as wsj0-2mix. The two source
images (2, S) sum exactly to the mixture (2, S); all three are written, as <id>_mix.wav, <id>_s1.wav, <id>_s2.wav
(stereo, float WAV), plus one manifest.json per split with every drawn parameter.
Legend: S samples.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from hear_sela.data.audio import load_audio
from hear_sela.separation.config import MixtureConfig
from hear_sela.separation.sources import voice_of

log = logging.getLogger("hear_sela.separation.mixtures")


@dataclass(frozen=True)
class Mixture:
    """One stereo mixture and its two source images (mic 0 is the channel the student sees)."""

    id: str
    mix: np.ndarray  # (2, S) float32: channels = mics
    sources: np.ndarray  # (2 sources, 2 mics, S) float32; sources.sum(0) == mix
    spacing_m: float
    angles_deg: tuple[float, float]
    voices: tuple[str, str] = ("", "")  # the sources' voices (SourcePool), "" when made from bare signals


def fractional_delay(x: np.ndarray, delay: float) -> np.ndarray:
    """(S,) -> (S,) delayed by `delay` samples (any real number) via a linear phase on a padded FFT."""
    pad = int(np.ceil(abs(delay))) + 32
    n = len(x) + 2 * pad
    spec = np.fft.rfft(np.pad(x.astype(np.float64), pad), n)
    spec *= np.exp(-2j * np.pi * np.fft.rfftfreq(n) * delay)
    return np.fft.irfft(spec, n)[pad:pad + len(x)]


def _crop(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """(S,) -> (length,): a random crop, or zero-padded at a random offset when shorter."""
    if len(x) >= length:
        start = int(rng.integers(0, len(x) - length + 1))
        return x[start:start + length]
    out = np.zeros(length, np.float64)
    start = int(rng.integers(0, length - len(x) + 1))
    out[start:start + len(x)] = x
    return out


def make_mixture(s1: np.ndarray, s2: np.ndarray, cfg: MixtureConfig, rng: np.random.Generator, mid: str) -> Mixture:
    """Spatialise two mono sources (S1,), (S2,) into one stereo mixture with random geometry and levels."""
    length = int(round(cfg.seconds * cfg.sample_rate))
    srcs = [_crop(s, length, rng) for s in (s1, s2)]
    srcs = [s / (np.sqrt(np.mean(s**2)) + 1e-12) for s in srcs]  # unit RMS before the relative level
    level = rng.uniform(0.0, cfg.level_db)
    gains = (10 ** (level / 40), 10 ** (-level / 40))
    spacing = rng.uniform(*cfg.spacing_m)
    while True:
        angles = rng.uniform(-90.0, 90.0, size=2)
        if abs(angles[0] - angles[1]) >= cfg.min_angle_deg:
            break
    images = np.zeros((2, 2, length))
    for i, (s, g, a) in enumerate(zip(srcs, gains, angles)):
        tau = spacing * np.sin(np.deg2rad(a)) / cfg.speed_of_sound * cfg.sample_rate  # samples
        images[i, 0] = g * s
        images[i, 1] = g * fractional_delay(s, tau)
    scale = cfg.peak / (np.abs(images.sum(0)).max() + 1e-12)
    images = (images * scale).astype(np.float32)
    # the mixture is the float32 sum of the float32 images, so sources sum to it exactly
    return Mixture(mid, images[0] + images[1], images, float(spacing), (float(angles[0]), float(angles[1])))


def draw_pair(voices: list[str], rng: np.random.Generator, same_voice: bool = False) -> tuple[int, int]:
    """Indices of two different files whose voices differ (or, with same_voice, match: the harder case that
    wsj0-2mix never has). voices: one per file."""
    by_voice: dict[str, list[int]] = {}
    for i, v in enumerate(voices):
        by_voice.setdefault(v, []).append(i)
    names = sorted(by_voice)
    if same_voice:
        names = [v for v in names if len(by_voice[v]) >= 2]
        if not names:
            raise ValueError("mixtures: same-voice pairs need a voice with at least 2 files")
        i, j = rng.choice(by_voice[names[int(rng.integers(len(names)))]], size=2, replace=False)
        return int(i), int(j)
    if len(names) < 2:
        raise ValueError(f"mixtures: different-voice pairs need at least 2 voices, got {names}")
    a, b = rng.choice(len(names), size=2, replace=False)
    return int(rng.choice(by_voice[names[a]])), int(rng.choice(by_voice[names[b]]))


class SourcePool:
    """Source files and their voices, decoded once on first use (resampled to the mixtures' rate)."""

    def __init__(self, files: list[Path], sample_rate: int):
        if len(files) < 2:
            raise ValueError(f"mixtures: need at least 2 source files, got {len(files)}")
        self.files, self.sample_rate = list(files), sample_rate
        self.voices = [voice_of(p) for p in self.files]
        self._audio: dict[int, np.ndarray] = {}

    def audio(self, i: int) -> np.ndarray:
        if i not in self._audio:
            self._audio[i] = load_audio(self.files[i], self.sample_rate)
        return self._audio[i]

    def mixture(self, cfg: MixtureConfig, rng: np.random.Generator, mid: str, same_voice: bool = False) -> Mixture:
        i, j = draw_pair(self.voices, rng, same_voice)
        return replace(make_mixture(self.audio(i), self.audio(j), cfg, rng, mid),
                       voices=(self.voices[i], self.voices[j]))


SPLIT_STREAM = {"train": 0, "val": 1, "test": 2, "test_same": 3}


def generate_split(files: list[Path] | SourcePool, count: int, cfg: MixtureConfig, split: str, seed: int,
                   same_voice: bool = False) -> list[Mixture]:
    """`count` mixtures of two different voices each (or one voice, with same_voice), drawn by `seed`
    (deterministic, nothing written)."""
    return list(iter_split(files, count, cfg, split, seed, same_voice))


def iter_split(files: list[Path] | SourcePool, count: int, cfg: MixtureConfig, split: str, seed: int,
               same_voice: bool = False) -> Iterator[Mixture]:
    """generate_split one mixture at a time (a 2000-mixture pool does not fit in memory as audio)."""
    pool = files if isinstance(files, SourcePool) else SourcePool(files, cfg.sample_rate)
    rng = np.random.default_rng([seed, SPLIT_STREAM.get(split, 4)])
    for k in range(count):
        yield pool.mixture(cfg, rng, f"{split}_{k:05d}", same_voice)


def write_split(mixtures: list[Mixture], folder: str | Path, sample_rate: int) -> Path:
    """Write <id>_mix.wav, <id>_s1.wav, <id>_s2.wav (stereo float32) and manifest.json; returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in mixtures:
        sf.write(folder / f"{m.id}_mix.wav", m.mix.T, sample_rate, subtype="FLOAT")
        for i in range(2):
            sf.write(folder / f"{m.id}_s{i + 1}.wav", m.sources[i].T, sample_rate, subtype="FLOAT")
        rows.append({"id": m.id, "spacing_m": m.spacing_m, "angles_deg": list(m.angles_deg), "voices": list(m.voices)})
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"sample_rate": sample_rate, "mixtures": rows}, indent=1))
    return manifest


def read_split(folder: str | Path) -> list[Mixture]:
    """Read a split written by write_split (stereo files read as is: no downmix, no resampling)."""
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no mixture manifest (run the mixtures stage first)")
    meta = json.loads(manifest.read_text())
    out = []
    for row in meta["mixtures"]:
        mix = sf.read(folder / f"{row['id']}_mix.wav", dtype="float32", always_2d=True)[0].T  # (2, S)
        srcs = np.stack([sf.read(folder / f"{row['id']}_s{i}.wav", dtype="float32", always_2d=True)[0].T
                         for i in (1, 2)])  # (2, 2, S)
        out.append(Mixture(row["id"], mix, srcs, row["spacing_m"], tuple(row["angles_deg"]),
                           tuple(row.get("voices", ("", "")))))
    return out
