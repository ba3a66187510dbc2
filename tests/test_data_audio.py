"""load_audio: formats, rates, channels, resampling quality, and every bad-input case raising AudioError by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from hear_sela.data.audio import SOUNDFILE_EXTENSIONS, AudioError, load_audio


def _tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize("ext,sr,channels,subtype", [
    ("wav", 16000, 1, "PCM_16"),
    ("wav", 8000, 1, "PCM_16"),
    ("flac", 44100, 2, "PCM_24"),
    ("ogg", 22050, 1, "VORBIS"),
    ("wav", 48000, 2, "FLOAT"),
    pytest.param("mp3", 44100, 1, None, marks=pytest.mark.skipif(
        ".mp3" not in SOUNDFILE_EXTENSIONS, reason="this libsndfile has no MP3 support")),
])
def test_formats_rates_channels(tmp_path, ext, sr, channels, subtype):
    seconds = 1.5
    mono = _tone(440.0, sr, seconds)
    data = np.stack([mono, mono], axis=1) if channels == 2 else mono
    path = tmp_path / f"x.{ext}"
    sf.write(path, data, sr, subtype=subtype)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    expected_len = math.ceil(len(mono) * 16000 / sr)
    if ext == "mp3":  # encoder delay/padding
        assert abs(len(out) - expected_len) <= 0.02 * expected_len
    else:
        assert len(out) == expected_len
    assert abs(_peak_hz(out) - 440.0) < 2.0
    assert 0.4 < np.abs(out).max() < 0.6  # amplitude survives decoding, downmix and resampling


def test_downmix_is_the_channel_mean(tmp_path):
    left = _tone(440.0, 16000, 1.0, amp=0.8)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), left / 2, atol=1e-7)


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    """A 12 kHz tone at 44.1 kHz must not alias into the 16 kHz output (it would land at 4 kHz)."""
    path = tmp_path / "hi.wav"
    x = _tone(1000.0, 44100, 1.0, 0.3) + _tone(12000.0, 44100, 1.0, 0.3)
    sf.write(path, x, 44100, subtype="FLOAT")
    out = load_audio(path)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    kept = spectrum[np.abs(freqs - 1000) < 20].max()
    alias = spectrum[np.abs(freqs - 4000) < 20].max()
    assert alias < 1e-3 * kept


def test_other_sample_rate_argument(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, _tone(300.0, 16000, 1.0), 16000)
    out = load_audio(path, sample_rate=8000)
    assert len(out) == 8000 and abs(_peak_hz(out, 8000) - 300.0) < 2.0


def test_silence_is_valid(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    assert np.array_equal(load_audio(path), np.zeros(1600, dtype=np.float32))


def _bad(tmp_path, case: str):
    """Make a bad input of kind `case`; returns (path, a phrase the error must contain)."""
    if case == "missing":
        return tmp_path / "nope.wav", "not found"
    if case == "dangling_symlink":
        path = tmp_path / "link.wav"
        path.symlink_to(tmp_path / "gone.wav")
        return path, "not found"
    if case == "directory":
        path = tmp_path / "dir.wav"
        path.mkdir()
        return path, "not a regular file"
    if case == "corrupt":
        path = tmp_path / "corrupt.wav"
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(0).bytes(200))
        return path, "corrupt"
    if case == "zero_bytes":
        path = tmp_path / "zero.flac"
        path.write_bytes(b"")
        return path, "empty file (0 bytes)"
    if case == "zero_bytes_wav":
        path = tmp_path / "zero.wav"
        path.write_bytes(b"")
        return path, "empty file (0 bytes)"
    if case.startswith("truncated"):  # a copy cut off mid-file: the header still says 1 s
        path = tmp_path / "cut.wav"
        sf.write(path, _tone(440.0, 16000, 1.0), 16000, subtype="FLOAT" if case.endswith("float") else "PCM_16")
        path.write_bytes(path.read_bytes()[:-6001])
        return path, "truncated WAV: the header declares 16000 frames (1.000 s)"
    if case == "empty":
        path = tmp_path / "empty.wav"
        sf.write(path, np.zeros(0, dtype=np.float32), 16000)
        return path, "empty"
    if case in ("nan", "inf"):
        path = tmp_path / f"{case}.wav"
        x = _tone(440.0, 16000, 0.5)
        x[100] = np.nan if case == "nan" else np.inf
        sf.write(path, x, 16000, subtype="FLOAT")
        return path, "non-finite"
    if case == "unsupported_format":
        path = tmp_path / "clip.m4a"
        path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
        return path, "torchaudio"
    raise AssertionError(case)


BAD_CASES = ["missing", "dangling_symlink", "directory", "corrupt", "zero_bytes", "zero_bytes_wav", "truncated_pcm16",
             "truncated_float", "empty", "nan", "inf", "unsupported_format"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_inputs_raise_audio_error_naming_file_and_problem(tmp_path, case):
    path, phrase = _bad(tmp_path, case)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert isinstance(e.value, ValueError)
    assert e.value.path == str(path) and str(path) in str(e.value)
    assert phrase in e.value.reason
    assert "\n" not in str(e.value)  # one line


def test_complete_wavs_with_extra_chunks_are_not_called_truncated(tmp_path):
    # a LIST chunk after the data and an odd-length chunk before it (word-padded) are normal WAV layouts
    path = tmp_path / "tagged.wav"
    sf.write(path, _tone(440.0, 16000, 0.5), 16000, subtype="PCM_24")
    raw = path.read_bytes()
    odd = b"junk" + (3).to_bytes(4, "little") + b"abc\x00"
    tail = b"LIST" + (4).to_bytes(4, "little") + b"INFO"
    body = raw[12:36] + odd + raw[36:] + tail  # fmt chunk, odd chunk, data chunk, LIST chunk
    whole = b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body
    path.write_bytes(whole)
    assert len(load_audio(path)) == 8000
    path.write_bytes(whole[:-3000])  # the same layout cut off: the header is walked past the odd chunk
    with pytest.raises(AudioError, match="truncated WAV: the header declares 8000 frames"):
        load_audio(path)


def test_an_unreadable_file_is_called_permission_denied(tmp_path, monkeypatch):
    """libsndfile says only "System error" for a file this user may not read; we say what it is."""
    import builtins
    import os

    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: refuse the open as the kernel would for another user
        real_open = builtins.open

        def guarded(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(path):
                raise PermissionError(13, "Permission denied", os.fspath(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(AudioError, match=r"locked.wav: permission denied"):
        load_audio(path)
