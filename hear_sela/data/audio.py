"""Decode any common audio file to 16 kHz mono float32, or say precisely why not.

Decoding: soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, AIFF, MP3 where libsndfile >= 1.1 has it). Only a file
whose extension libsndfile does not handle at all (e.g. .m4a) goes to torchaudio.load, which needs torchcodec;
a damaged .wav is reported as damaged, never retried elsewhere.

Resampling: scipy.signal.resample_poly. It works on the numpy array we already have (decoding runs in DataLoader
workers, where a torch round trip would only add tensor copies and torch thread-pool contention), it applies the
exact rational ratio (44.1 kHz -> 16 kHz = 160/441) through a Kaiser-windowed polyphase anti-aliasing FIR, and its
output length is ceil(S * up / down), so one second in is exactly one second out. torchaudio.functional.resample
(windowed sinc) would serve equally well for quality.
Legend: S samples, C channels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

# Extensions libsndfile decodes; a read failure on these is a damaged file, not an unsupported format.
SOUNDFILE_EXTENSIONS: frozenset[str] = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf",
     ".rf64"} | ({".mp3"} if "MP3" in sf.available_formats() else set())
)


class AudioError(ValueError):
    """An audio file is missing, unreadable, damaged, empty or holds non-finite samples."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _read(path: Path) -> tuple[np.ndarray, int]:
    """(S, C) float32 samples and the file's sample rate."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(sr)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
            raise AudioError(path, f"unreadable or corrupt audio ({e})") from None
        sf_error = str(e)
    try:
        import torchaudio

        wav, sr = torchaudio.load(str(path))  # (C, S)
    except Exception as e:  # ImportError (no torchcodec) or any decoder error: report both decoders' reasons
        raise AudioError(path, f"format not readable by soundfile ({sf_error}) nor torchaudio "
                               f"({type(e).__name__}: {e})") from None
    return wav.numpy().T.astype(np.float32, copy=False), int(sr)


def _riff_data_bytes(path: Path) -> tuple[int, int, int] | None:
    """(declared data bytes, bytes present after the data header, block align) of a RIFF/WAVE file, else None.

    libsndfile clamps a data chunk that runs past the end of the file to what is there and reads it without an
    error; the header still says how much there should be. Unknown lengths of streamed WAVs (0, 0xFFFFFFFF) give
    None, as does anything that is not a plain RIFF/WAVE chunk list.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(12)[:4] != b"RIFF":
            return None
        block_align, pos = 0, 12
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(8)
            chunk, length = head[:4], int.from_bytes(head[4:], "little")
            if chunk == b"fmt " and length >= 14:
                block_align = int.from_bytes(f.read(14)[12:14], "little")
            if chunk == b"data":
                if length in (0, 0xFFFFFFFF) or block_align <= 0:
                    return None
                return length, size - pos - 8, block_align
            pos += 8 + length + (length & 1)  # chunks are word-aligned
    return None


def _check_complete(path: Path, frames: int, sr: int) -> None:
    """Raise AudioError when a WAV's header promises more audio than the file holds (a cut-off copy)."""
    found = _riff_data_bytes(path)
    if found is None:
        return
    declared, present, block_align = found
    if present < declared:
        want = declared // block_align
        raise AudioError(path, f"truncated WAV: the header declares {want} frames ({want / sr:.3f} s) but the file "
                               f"holds {frames} ({frames / sr:.3f} s); the copy is incomplete, copy or download it "
                               "again")


def resample(x: np.ndarray, orig_sr: int, sample_rate: int) -> np.ndarray:
    """(S,) at orig_sr -> (ceil(S * sample_rate / orig_sr),) float32 at sample_rate."""
    if orig_sr == sample_rate:
        return x.astype(np.float32, copy=False)
    g = math.gcd(orig_sr, sample_rate)
    return resample_poly(x, sample_rate // g, orig_sr // g).astype(np.float32, copy=False)


def _missing_reason(path: Path) -> str:
    if not path.is_symlink():
        return "file not found"
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        return f"file not found (dangling symlink to {os.readlink(path)})"
    except (RuntimeError, OSError):  # RuntimeError: pathlib's "Symlink loop" before Python 3.13
        return "symlink loop (the link leads back to itself)"
    return "file not found"


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode `path`, downmix to mono (channel mean), resample to `sample_rate`: (S,) float32.

    Raises AudioError naming the file and the problem: missing, not a file, a 0-byte file, unreadable/corrupt, a
    truncated WAV (header longer than the data), empty (0 samples), NaN or infinite samples.
    Digital silence is valid audio and is returned as such.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, _missing_reason(path))
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes): nothing was written to it, or the copy failed")
    try:  # libsndfile reports an unreadable file only as "System error"
        open(path, "rb").close()
    except PermissionError:
        raise AudioError(path, "permission denied (this user may not read it)") from None
    data, sr = _read(path)  # (S, C)
    if sr <= 0:
        raise AudioError(path, f"invalid sample rate {sr}")
    _check_complete(path, data.shape[0], sr)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(path, "empty audio (0 samples)")
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioError(path, f"{int(bad.sum())} non-finite (NaN/inf) sample values")
    mono = data.mean(axis=1)  # (S,)
    return resample(mono, sr, sample_rate)
