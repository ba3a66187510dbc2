"""soundfile stand-ins for the torchaudio audio I/O that s3prl 0.4.18's downstreams call and torchaudio >= 2.9 lost.

- `apply_effects_file` / `apply_effects_tensor` (torchaudio.sox_effects, removed with sox in torchaudio 2.9): only
  the effects s3prl's loaders use, `channels 1` (average of the channels, as sox), `rate R` (torchaudio's sinc
  resampler; sox's own resampler differs slightly) and `gain dB` (a plain gain, clipped to [-1, 1] as sox's integer
  chain does). Any other effect raises NotImplementedError naming it.
- `load` (torchaudio.load now decodes with torchcodec): soundfile, float32 in [-1, 1], as torchaudio's default.
Legend: C channels, S samples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import soundfile as sf
import torch
import torchaudio.functional as AF

SUPPORTED_EFFECTS = ("channels", "rate", "gain")


def _apply(wav: torch.Tensor, sample_rate: int, effects: Sequence[Sequence[str]]) -> tuple[torch.Tensor, int]:
    """(C, S) float32 -> (C', S') float32, new sample rate."""
    for effect in effects:
        name, *params = [str(p) for p in effect]
        if name == "channels" and len(params) == 1:
            n = int(params[0])
            if n == 1:
                wav = wav.mean(dim=0, keepdim=True)
            elif n != wav.shape[0]:
                raise NotImplementedError(f"sox effect 'channels {n}' on {wav.shape[0]}-channel audio: only "
                                          "downmixing to 1 channel is available without sox")
        elif name == "rate" and len(params) == 1:
            rate = int(float(params[0]))
            if rate != sample_rate:
                wav, sample_rate = AF.resample(wav, sample_rate, rate), rate
        elif name == "gain" and len(params) == 1 and not params[0].startswith("-n"):
            wav = (wav * 10.0 ** (float(params[0]) / 20.0)).clamp(-1.0, 1.0)
        else:
            raise NotImplementedError(f"sox effect {list(effect)} is not available: torchaudio >= 2.9 removed sox, and "
                                      f"hear_sela's stand-in supports only {SUPPORTED_EFFECTS} (one parameter each)")
    return wav, sample_rate


def apply_effects_tensor(tensor: torch.Tensor, sample_rate: int, effects: Sequence[Sequence[str]],
                         channels_first: bool = True) -> tuple[torch.Tensor, int]:
    """torchaudio.sox_effects.apply_effects_tensor for the effects above; tensor (C, S) (or (S, C))."""
    wav = tensor.float() if channels_first else tensor.float().T
    out, rate = _apply(wav, sample_rate, effects)
    return (out if channels_first else out.T), rate


def apply_effects_file(path: str | os.PathLike, effects: Sequence[Sequence[str]], normalize: bool = True,
                       channels_first: bool = True, format: str | None = None) -> tuple[torch.Tensor, int]:
    """torchaudio.sox_effects.apply_effects_file for the effects above -> ((C, S) float32, sample rate)."""
    wav, rate = load(path, normalize=normalize, format=format)  # (C, S)
    out, rate = _apply(wav, rate, effects)
    return (out if channels_first else out.T), rate


def load(uri: str | os.PathLike, frame_offset: int = 0, num_frames: int = -1, normalize: bool = True,
         channels_first: bool = True, format: str | None = None, buffer_size: int = 4096,
         backend: str | None = None) -> tuple[torch.Tensor, int]:
    """torchaudio.load with soundfile -> ((C, S) float32 in [-1, 1], sample rate)."""
    if not normalize:
        raise NotImplementedError(f"{uri}: integer samples (normalize=False) are not available without torchcodec")
    try:
        data, rate = sf.read(os.fspath(uri), start=frame_offset, frames=num_frames, dtype="float32", always_2d=True,
                             format=format)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise RuntimeError(f"{uri}: cannot decode audio with soundfile ({e})") from None
    wav = torch.from_numpy(data)  # (S, C)
    return (wav.T.contiguous() if channels_first else wav), int(rate)
