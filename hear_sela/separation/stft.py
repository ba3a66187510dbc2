"""The one STFT of the separation recipe: Hann window n_fft, hop, centred, unnormalised (so the paper's absolute
-10 dB gate means one fixed thing). Legend: S samples, F = n_fft // 2 + 1 bins, T frames.
"""

from __future__ import annotations

import numpy as np
import torch


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(..., S) real -> (..., F, T) complex64."""
    t = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    lead = t.shape[:-1]
    spec = torch.stft(t.reshape(-1, t.shape[-1]), n_fft, hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:]).numpy()


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """(..., F, T) complex -> (..., length) float32; inverts stft exactly for the same parameters."""
    t = torch.as_tensor(np.ascontiguousarray(spec), dtype=torch.complex64)
    lead = t.shape[:-2]
    out = torch.istft(t.reshape(-1, *t.shape[-2:]), n_fft, hop, window=torch.hann_window(n_fft), center=True,
                      length=length)
    return out.reshape(*lead, length).numpy()


def log_db(spec: np.ndarray) -> np.ndarray:
    """(..., F, T) complex -> 20 log10 |X| in dB (paper Eq. 2), floored at -200 dB."""
    return 20.0 * np.log10(np.maximum(np.abs(spec), 1e-10))
