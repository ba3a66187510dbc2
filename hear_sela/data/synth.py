"""The embedded corpus: a deterministic generator of labelled sound classes that differ in ways that matter for audio.

Classes (SYNTH_CLASSES) and what sets them apart:
  tone_bright / tone_soft / tone_hollow   harmonic tones: sawtooth-like 1/k spectrum, near-sine (geometric roll-off),
                                          odd harmonics only (clarinet-like); random pitch 110-880 Hz
  noise_low / noise_high                  band-limited noise around 150-500 Hz vs 3-5.5 kHz
  chirp_up / chirp_down                   repeated logarithmic sweeps, rising vs falling
  clicks_slow / clicks_fast               periodic resonant click trains, 2-6 Hz vs 12-30 Hz
  am_tone                                 tone with 3-12 Hz amplitude modulation (tremolo)
  fm_vibrato                              harmonic tone with 4.5-8 Hz frequency modulation (vibrato)
  pluck / bell / knock                    decaying impacts: damped harmonic modes (string), inharmonic free-bar modes
                                          with long decay (metal), short low modes (wood); each with a noise burst
  vowel_a / vowel_i                       glottal pulse train (-12 dB/octave) through a cascade of formant resonators
  rain                                    Poisson crackle of short resonant drops over a faint hiss

Two levels:
- `synthesize_clip(name, rng, sample_rate, seconds)`: the sound itself, filling the whole duration (impacts strike at
  t = 0), peak 1, no background. Callers that place events themselves (data/synth_tasks.py) use this.
- `corpus_clip(seed, name, index, ...)`: one corpus clip; the event has a random duration (40-100 % of the clip) and
  onset, sits in background noise of random colour (white to low rumble) at a random SNR (10-30 dB), and gets a
  random peak level (-20..-1 dBFS). Its generator is seeded from (seed, crc32(name), index), so any clip is
  reproducible on its own and adding a class changes no other class's clips.
`write_synth_corpus` writes the corpus as 16-bit WAVs plus labels.csv; the labels are for analysis only.
Legend: S samples.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, chirp, lfilter
from tqdm import tqdm

from hear_sela.data.records import ClipRecord, DataError, write_labels_csv

log = logging.getLogger(__name__)

SYNTH_VERSION = 1  # bump when any generator changes: existing corpora are then rewritten
TABLE_SIZE = 4096  # wavetable length; linear interpolation error stays below -60 dB for the harmonics we use

Generator = Callable[[np.random.Generator, int, int], np.ndarray]  # (rng, sample_rate, n) -> (n,) float64
_GENERATORS: dict[str, Generator] = {}


def _register(name: str) -> Callable[[Generator], Generator]:
    def deco(fn: Generator) -> Generator:
        _GENERATORS[name] = fn
        return fn

    return deco


# ---------------------------------------------------------------- building blocks


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _harmonic_table(amps: np.ndarray) -> np.ndarray:
    """One period of sum_k amps[k-1] * sin(2 pi k x), sampled at TABLE_SIZE points: (TABLE_SIZE,)."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spectrum[1:len(amps) + 1] = -1j * np.asarray(amps) * TABLE_SIZE / 2
    return np.fft.irfft(spectrum, TABLE_SIZE)


def _play(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Read a wavetable at phase `cycles` (S,) in periods, with linear interpolation: (S,)."""
    pos = (cycles % 1.0) * TABLE_SIZE
    i0 = pos.astype(np.int64) % TABLE_SIZE
    frac = pos - np.floor(pos)
    return table[i0] * (1.0 - frac) + table[(i0 + 1) % TABLE_SIZE] * frac


def _n_harmonics(f_top: float, sample_rate: int, cap: int = 96) -> int:
    """Harmonics of a tone whose highest instantaneous f0 is `f_top` that stay below 0.45 * sample_rate."""
    return int(max(1, min(cap, (0.45 * sample_rate) // f_top)))


def _envelope(n: int, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat sustain, linear release, in seconds: (n,)."""
    env = np.ones(n)
    a, r = min(n // 2, int(attack * sample_rate)), min(n // 2, int(release * sample_rate))
    if a:
        env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r:
        env[n - r:] = np.linspace(1.0, 0.0, r)
    return env


def _resonator(x: np.ndarray, freq: float, decay: float, sample_rate: int) -> np.ndarray:
    """Two-pole resonator: each impulse in `x` rings at `freq` Hz, decaying with time constant `decay` s."""
    r = np.exp(-1.0 / (decay * sample_rate))
    theta = 2 * np.pi * freq / sample_rate
    return lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(theta), r * r], x)


def _bandpass_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sample_rate: int) -> np.ndarray:
    """White noise through a Linkwitz-Riley band-pass (two 2nd-order Butterworth high- and low-passes each, 24 dB/oct);
    biquads in b/a form are numerically safe and much cheaper to design than a high-order SOS filter."""
    hp = butter(2, lo, btype="highpass", fs=sample_rate)
    lp = butter(2, min(hi, 0.48 * sample_rate), btype="lowpass", fs=sample_rate)
    x = rng.standard_normal(n)
    for b, a in (hp, hp, lp, lp):
        x = lfilter(b, a, x)
    return x


def _coloured_noise(rng: np.random.Generator, n: int, pole: float) -> np.ndarray:
    """White noise through a one-pole low-pass (pole 0 = white, near 1 = rumble), unit RMS: (n,)."""
    x = lfilter([1.0 - pole], [1.0, -pole], rng.standard_normal(n))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _decaying_modes(rng: np.random.Generator, n: int, sample_rate: int, freqs: np.ndarray, amps: np.ndarray,
                    decays: np.ndarray) -> np.ndarray:
    """Sum of exponentially damped sinusoids (modes), random phases, each cut after 5 time constants (-43 dB): (n,)."""
    out = np.zeros(n)
    for f, a, tau, phase in zip(freqs, amps, decays, rng.uniform(0, 2 * np.pi, len(freqs))):
        if f >= 0.45 * sample_rate:
            continue
        t = np.arange(min(n, int(5 * tau * sample_rate) + 1)) / sample_rate
        out[:len(t)] += a * np.exp(-t / tau) * np.sin(2 * np.pi * f * t + phase)
    return out


def _strike_times(rng: np.random.Generator, n: int, sample_rate: int, count: int, min_gap: float) -> list[int]:
    """`count` strike positions in samples, the first at 0, at least `min_gap` s apart (fewer if they do not fit)."""
    times = [0]
    for _ in range(count - 1):
        t = times[-1] + int((min_gap + rng.exponential(min_gap)) * sample_rate)
        if t >= n:
            break
        times.append(t)
    return times


def _add_impacts(rng: np.random.Generator, n: int, sample_rate: int, times: list[int],
                 render: Callable[[int], np.ndarray]) -> np.ndarray:
    """Place `render(max_len)` at each strike time with a random level: (n,)."""
    out = np.zeros(n)
    for t in times:
        ev = render(n - t) * rng.uniform(0.5, 1.0)
        out[t:t + len(ev)] += ev
    return out


def _noise_burst(rng: np.random.Generator, sample_rate: int, seconds: float, lo: float, hi: float) -> np.ndarray:
    m = max(8, int(seconds * sample_rate))
    return _bandpass_noise(rng, m, lo, hi, sample_rate) * np.exp(-np.arange(m) / (m / 4))


# ---------------------------------------------------------------- the classes


def _tone(rng: np.random.Generator, sample_rate: int, n: int, amps_of: Callable[[np.ndarray], np.ndarray],
          attack: tuple[float, float]) -> np.ndarray:
    f0 = _log_uniform(rng, 110, 880)
    k = np.arange(1, _n_harmonics(f0, sample_rate) + 1)
    cycles = f0 * np.arange(n) / sample_rate
    env = _envelope(n, sample_rate, rng.uniform(*attack), rng.uniform(0.02, 0.2))
    return _play(_harmonic_table(amps_of(k)), cycles) * env


@_register("tone_bright")
def _tone_bright(rng, sample_rate, n):
    return _tone(rng, sample_rate, n, lambda k: 1.0 / k, (0.005, 0.03))


@_register("tone_soft")
def _tone_soft(rng, sample_rate, n):
    ratio = rng.uniform(0.15, 0.35)
    return _tone(rng, sample_rate, n, lambda k: ratio ** (k - 1.0), (0.05, 0.15))


@_register("tone_hollow")
def _tone_hollow(rng, sample_rate, n):
    return _tone(rng, sample_rate, n, lambda k: np.where(k % 2 == 1, 1.0 / k, 0.0), (0.01, 0.06))


def _noise_band(rng, sample_rate, n, centre: tuple[float, float], octaves: tuple[float, float]):
    c = _log_uniform(rng, *centre)
    half = 2 ** (rng.uniform(*octaves) / 2)
    # a slow random level drift (0.5-2 Hz) so the band is not perfectly stationary
    drift = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * np.arange(n) / sample_rate + rng.uniform(0, 6.3))
    return _bandpass_noise(rng, n, c / half, c * half, sample_rate) * drift


@_register("noise_low")
def _noise_low(rng, sample_rate, n):
    return _noise_band(rng, sample_rate, n, (150, 500), (1.0, 2.0))


@_register("noise_high")
def _noise_high(rng, sample_rate, n):
    return _noise_band(rng, sample_rate, n, (3000, 5500), (0.5, 1.0))


def _sweeps(rng, sample_rate, n, rising: bool):
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(n - pos, int(rng.uniform(0.2, 0.8) * sample_rate))
        if length < int(0.05 * sample_rate):
            break
        lo = _log_uniform(rng, 300, 1000)
        hi = min(lo * rng.uniform(3, 6), 6000.0)
        t = np.arange(length) / sample_rate
        f_start, f_end = (lo, hi) if rising else (hi, lo)
        sweep = chirp(t, f0=f_start, t1=t[-1] if length > 1 else 1.0, f1=f_end, method="logarithmic", phi=-90)
        out[pos:pos + length] = sweep * _envelope(length, sample_rate, 0.01, 0.03)
        pos += length + int(rng.uniform(0.0, 0.2) * sample_rate)
    return out


@_register("chirp_up")
def _chirp_up(rng, sample_rate, n):
    return _sweeps(rng, sample_rate, n, rising=True)


@_register("chirp_down")
def _chirp_down(rng, sample_rate, n):
    return _sweeps(rng, sample_rate, n, rising=False)


def _click_train(rng, sample_rate, n, rate: tuple[float, float]):
    period = sample_rate / rng.uniform(*rate)
    times = np.arange(rng.uniform(0, 0.2) * period, n, period)
    times = times + rng.normal(0, 0.03 * period, len(times))  # a little timing jitter
    times = times[(times >= 0) & (times < n)].astype(np.int64)
    impulses = np.zeros(n)
    impulses[times] = rng.uniform(0.7, 1.0, len(times))
    return _resonator(impulses, _log_uniform(rng, 1500, 4000), rng.uniform(0.001, 0.003), sample_rate)


@_register("clicks_slow")
def _clicks_slow(rng, sample_rate, n):
    return _click_train(rng, sample_rate, n, (2.0, 6.0))


@_register("clicks_fast")
def _clicks_fast(rng, sample_rate, n):
    return _click_train(rng, sample_rate, n, (12.0, 30.0))


@_register("am_tone")
def _am_tone(rng, sample_rate, n):
    fc = _log_uniform(rng, 300, 2000)
    t = np.arange(n) / sample_rate
    k = np.arange(1, _n_harmonics(fc, sample_rate, cap=4) + 1)
    carrier = _play(_harmonic_table(0.3 ** (k - 1.0)), fc * t)
    depth = rng.uniform(0.6, 1.0)
    mod = 1.0 - depth * (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(3, 12) * t + rng.uniform(0, 6.3)))
    return carrier * mod * _envelope(n, sample_rate, 0.02, 0.05)


@_register("fm_vibrato")
def _fm_vibrato(rng, sample_rate, n):
    f0 = _log_uniform(rng, 200, 700)
    depth = rng.uniform(0.02, 0.06)  # +-0.35..1 semitone
    t = np.arange(n) / sample_rate
    f_inst = f0 * (1.0 + depth * np.sin(2 * np.pi * rng.uniform(4.5, 8.0) * t + rng.uniform(0, 6.3)))
    cycles = np.cumsum(f_inst) / sample_rate
    k = np.arange(1, _n_harmonics(f0 * (1 + depth), sample_rate, cap=40) + 1)
    return _play(_harmonic_table(k**-1.5), cycles) * _envelope(n, sample_rate, 0.03, 0.1)


@_register("pluck")
def _pluck(rng, sample_rate, n):
    def render(max_len: int) -> np.ndarray:
        f0 = _log_uniform(rng, 100, 600)
        tau = rng.uniform(0.3, 1.0)
        m = min(max_len, int(5 * tau * sample_rate))
        k = np.arange(1, _n_harmonics(f0, sample_rate, cap=20) + 1)
        where = rng.uniform(0.1, 0.3)  # pluck position along the string shapes the spectrum
        amps = np.abs(np.sin(np.pi * k * where)) / k**1.5
        body = _decaying_modes(rng, m, sample_rate, f0 * k * (1 + 1e-4 * k**2), amps, tau / (1 + 0.4 * (k - 1)))
        burst = _noise_burst(rng, sample_rate, 0.005, 1000, 6000)[:m]
        body[:len(burst)] += 0.3 * burst * np.abs(body).max()
        return body

    return _add_impacts(rng, n, sample_rate, _strike_times(rng, n, sample_rate, int(rng.integers(1, 5)), 0.3), render)


@_register("bell")
def _bell(rng, sample_rate, n):
    ratios = np.array([1.0, 2.756, 5.404, 8.933, 13.344])  # free-free bar modes

    def render(max_len: int) -> np.ndarray:
        f1 = _log_uniform(rng, 300, 1200)
        tau = rng.uniform(0.8, 2.5)
        m = min(max_len, int(4 * tau * sample_rate))
        freqs = f1 * ratios * rng.uniform(0.99, 1.01, len(ratios))
        amps = np.array([1.0, 0.6, 0.4, 0.25, 0.15]) * rng.uniform(0.6, 1.0, len(ratios))
        body = _decaying_modes(rng, m, sample_rate, freqs, amps, tau / (1 + 0.5 * np.arange(len(ratios))))
        burst = _noise_burst(rng, sample_rate, 0.003, 2000, 7000)[:m]
        body[:len(burst)] += 0.2 * burst * np.abs(body).max()
        return body

    return _add_impacts(rng, n, sample_rate, _strike_times(rng, n, sample_rate, int(rng.integers(1, 4)), 0.6), render)


@_register("knock")
def _knock(rng, sample_rate, n):
    f1 = _log_uniform(rng, 150, 500)  # one object knocked several times

    def render(max_len: int) -> np.ndarray:
        tau = rng.uniform(0.015, 0.05)
        m = min(max_len, int(6 * tau * sample_rate))
        freqs = f1 * np.array([1.0, 2.3, 3.9]) * rng.uniform(0.98, 1.02, 3)
        body = _decaying_modes(rng, m, sample_rate, freqs, np.array([1.0, 0.5, 0.25]), tau * np.array([1, .7, .5]))
        burst = _noise_burst(rng, sample_rate, 0.01, 200, 3000)[:m]
        body[:len(burst)] += 0.5 * burst * np.abs(body).max()
        return body

    return _add_impacts(rng, n, sample_rate, _strike_times(rng, n, sample_rate, int(rng.integers(2, 7)), 0.08),
                        render)


def _vowel(rng, sample_rate, n, formants: tuple[float, ...], bandwidths: tuple[float, ...]):
    f0 = _log_uniform(rng, 90, 250)
    t = np.arange(n) / sample_rate
    # natural-sounding pitch: slow vibrato plus a little random drift
    drift = np.cumsum(rng.normal(0, 1, n)) / np.sqrt(n) * 0.01
    f_inst = f0 * (1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 6) * t) + drift)
    k = np.arange(1, _n_harmonics(f0 * 1.05, sample_rate) + 1)
    glottal = _play(_harmonic_table(1.0 / k**2), np.cumsum(f_inst) / sample_rate)  # -12 dB/octave source
    scale = rng.uniform(0.9, 1.15)  # vocal-tract length varies between "speakers"
    out = glottal
    for f, b in zip(formants, bandwidths):
        out = _resonator(out, f * scale, 1.0 / (np.pi * b), sample_rate)
    return out * _envelope(n, sample_rate, 0.03, 0.08)


@_register("vowel_a")
def _vowel_a(rng, sample_rate, n):
    return _vowel(rng, sample_rate, n, (730.0, 1090.0, 2440.0), (90.0, 110.0, 170.0))


@_register("vowel_i")
def _vowel_i(rng, sample_rate, n):
    return _vowel(rng, sample_rate, n, (270.0, 2290.0, 3010.0), (60.0, 100.0, 170.0))


@_register("rain")
def _rain(rng, sample_rate, n):
    rate = _log_uniform(rng, 100, 600)  # drops per second
    out = np.zeros(n)
    for _ in range(4):  # four families of drop resonances
        impulses = np.zeros(n)
        idx = rng.integers(0, n, rng.poisson(rate * n / sample_rate / 4))
        np.add.at(impulses, idx, rng.exponential(1.0, len(idx)) ** 2)
        out += _resonator(impulses, _log_uniform(rng, 1500, 6000), rng.uniform(0.002, 0.008), sample_rate)
    hiss = _bandpass_noise(rng, n, 2000, 7500, sample_rate)
    return out / (np.abs(out).max() + 1e-12) + 0.05 * hiss / (np.abs(hiss).max() + 1e-12)


SYNTH_CLASSES: list[str] = list(_GENERATORS)


# ---------------------------------------------------------------- clips and corpora


def _peak_normalise(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    m = np.abs(x).max()
    if not np.isfinite(m) or m == 0:
        raise ValueError(f"synth produced an unusable signal (peak {m})")
    return x * (peak / m)


def synthesize_clip(class_name: str, rng: np.random.Generator, sample_rate: int = 16000,
                    seconds: float = 1.0) -> np.ndarray:
    """The sound of `class_name` filling `seconds` (impacts strike at t = 0): (round(seconds * sr),) float32, peak 1.

    Class parameters (pitch, rates, formant scaling, ...) are drawn from `rng`. No background noise, no onset.
    """
    if class_name not in _GENERATORS:
        raise ValueError(f"unknown synth class {class_name!r}; classes: {', '.join(SYNTH_CLASSES)}")
    n = round(seconds * sample_rate)
    if n < 1:
        raise ValueError(f"seconds={seconds} gives no samples at {sample_rate} Hz")
    return _peak_normalise(_GENERATORS[class_name](rng, sample_rate, n)).astype(np.float32)


def clip_rng(seed: int, class_name: str, index: int) -> np.random.Generator:
    """The generator of corpus clip (seed, class, index); independent of every other clip and class."""
    return np.random.default_rng([seed, zlib.crc32(class_name.encode()), index])


def corpus_clip(seed: int, class_name: str, index: int, sample_rate: int = 16000, seconds: float = 4.0) -> np.ndarray:
    """One corpus clip: the event at a random onset and duration, in background noise, at a random level: (S,)."""
    rng = clip_rng(seed, class_name, index)
    n = round(seconds * sample_rate)
    dur = max(0.3, rng.uniform(0.4, 1.0) * seconds)
    event = synthesize_clip(class_name, rng, sample_rate, min(dur, seconds)).astype(np.float64)
    fade = min(len(event) // 2, int(0.005 * sample_rate))  # cut edges without a click
    event[:fade] *= np.linspace(0, 1, fade, endpoint=False)
    event[len(event) - fade:] *= np.linspace(1, 0, fade)
    start = int(rng.uniform(0, n - len(event) + 1))
    x = np.zeros(n)
    x[start:start + len(event)] = event
    snr_db = rng.uniform(10, 30)
    event_rms = np.sqrt(np.mean(event**2))
    x += _coloured_noise(rng, n, rng.uniform(0.0, 0.98)) * event_rms / 10 ** (snr_db / 20)
    return _peak_normalise(x, 10 ** (rng.uniform(-20, -1) / 20)).astype(np.float32)


def corpus_clip_id(class_name: str, index: int) -> str:
    return f"{class_name}/{class_name}_{index:04d}"


def iter_corpus(clips_per_class: int = 40, clip_seconds: float = 4.0, seed: int = 0,
                classes: list[str] | None = None, sample_rate: int = 16000) -> Iterator[tuple[str, str, np.ndarray]]:
    """In-memory corpus: (clip_id, class_name, audio (S,) float32), class by class."""
    for name in _check_classes(classes):
        for i in range(clips_per_class):
            yield corpus_clip_id(name, i), name, corpus_clip(seed, name, i, sample_rate, clip_seconds)


def _check_classes(classes: list[str] | None) -> list[str]:
    classes = list(classes if classes else SYNTH_CLASSES)
    unknown = [c for c in classes if c not in _GENERATORS]
    if unknown:
        raise ValueError(f"unknown synth class(es) {unknown}; classes: {', '.join(SYNTH_CLASSES)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"synth classes repeat: {classes}")
    return classes


def write_synth_corpus(out_dir: str | Path, clips_per_class: int = 40, clip_seconds: float = 4.0, seed: int = 0,
                 classes: list[str] | None = None, sample_rate: int = 16000,
                 progress: bool = True) -> list[ClipRecord]:
    """Write the corpus as <out_dir>/<class>/<class>_<i>.wav (16-bit PCM) + labels.csv (fname,labels) + corpus.json.

    Returns the records sorted by clip id (as `scan_folder(out_dir, out_dir / "labels.csv")` would).

    Idempotent: an existing corpus with the same parameters (corpus.json) is reused without rewriting; one with
    other parameters is replaced (only its own files are removed). A non-empty folder that is not a synth corpus
    is refused.
    """
    out_dir = Path(out_dir)
    classes = _check_classes(classes)
    if clips_per_class < 1 or clip_seconds <= 0:
        raise ValueError(f"clips_per_class={clips_per_class} and clip_seconds={clip_seconds} must be positive")
    params = {"version": SYNTH_VERSION, "seed": seed, "clips_per_class": clips_per_class,
              "clip_seconds": clip_seconds, "sample_rate": sample_rate, "classes": classes}
    # sorted by clip id, the order scan_folder gives, so the corpus read either way makes the same cache
    records = sorted((ClipRecord(corpus_clip_id(c, i), str(out_dir / f"{corpus_clip_id(c, i)}.wav"), (c,))
                      for c in classes for i in range(clips_per_class)), key=lambda r: r.clip_id)
    meta_path = out_dir / "corpus.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old == params and all(Path(r.path).is_file() for r in records):
            return records
        log.info("synth corpus in %s has other parameters or missing files; rewriting it", out_dir)
        _remove_corpus(out_dir, old)
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir} is not empty and holds no synth corpus (corpus.json); refusing to write into it")
    for r in tqdm(records, desc=f"synth corpus -> {out_dir}", unit="clip", disable=not progress):
        Path(r.path).parent.mkdir(parents=True, exist_ok=True)
        audio = corpus_clip(seed, r.labels[0], int(r.clip_id.rsplit("_", 1)[1]), sample_rate, clip_seconds)
        sf.write(r.path, audio, sample_rate, subtype="PCM_16")
    write_labels_csv(out_dir / "labels.csv", records)
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(params, indent=1))
    tmp.replace(meta_path)  # written last: its presence means the corpus is complete
    return records


def _remove_corpus(out_dir: Path, params: dict) -> None:
    """Delete the files of a previously written corpus (described by its corpus.json), nothing else."""
    (out_dir / "corpus.json").unlink(missing_ok=True)
    for c in params.get("classes", []):
        if not isinstance(c, str) or "/" in c or "\\" in c or c.startswith("."):
            continue  # never follow a damaged corpus.json outside out_dir
        for i in range(int(params.get("clips_per_class", 0))):
            (out_dir / f"{corpus_clip_id(c, i)}.wav").unlink(missing_ok=True)
        if (out_dir / c).is_dir() and not any((out_dir / c).iterdir()):
            (out_dir / c).rmdir()
