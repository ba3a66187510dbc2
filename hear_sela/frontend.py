"""Log-mel frontend: the one place where audio parameters turn waveforms into features.

Training (feature cache), the label update, the HEAR module and the s3prl upstream all call `LogMel` and
`normalize`, so the features seen at inference are computed and normalised exactly as during training.
Legend: B batch, S samples, F mel bins, T frames.
"""

from __future__ import annotations

import torch
from torch import nn

from hear_sela.config import FrontendConfig


class LogMel(nn.Module):
    """Waveforms (B, S) at `cfg.sample_rate` -> log-mel (B, F, T), optionally normalised.

    Two backends compute the same Slaney-scale, Slaney-normalised mel filterbank on a centred, reflect-padded
    periodic-Hann STFT power spectrum (librosa's convention, which BYOL-A's released weights used): nnAudio (the
    default, as BYOL-A v2) and torchaudio. Frame t is centred on sample t * hop_length.
    """

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        self.cfg = cfg
        win = cfg.win_length or cfg.n_fft
        if cfg.f_max > cfg.sample_rate / 2:
            raise ValueError(f"frontend.f_max={cfg.f_max} is above Nyquist for sample_rate={cfg.sample_rate}")
        if cfg.backend == "nnaudio":
            from nnAudio.features.mel import MelSpectrogram

            self.mel = MelSpectrogram(
                sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=win, n_mels=cfg.n_mels, hop_length=cfg.hop_length,
                window="hann", center=True, pad_mode="reflect", power=2.0, htk=False, fmin=cfg.f_min,
                fmax=cfg.f_max, norm=1, trainable_mel=False, trainable_STFT=False, verbose=False,
            )
        elif cfg.backend == "torchaudio":
            import torchaudio

            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=win, hop_length=cfg.hop_length,
                f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0, center=True, pad_mode="reflect",
                norm="slaney", mel_scale="slaney",
            )
        else:
            raise ValueError(f"frontend.backend must be 'nnaudio' or 'torchaudio', got {cfg.backend!r}")

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.cfg.sample_rate / self.cfg.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for `num_samples` samples (centred STFT)."""
        return num_samples // self.cfg.hop_length + 1

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, S) float waveform -> (B, F, T) un-normalised log-mel."""
        if wav.ndim != 2:
            raise ValueError(f"LogMel expects waveforms of shape (batch, samples), got {tuple(wav.shape)}")
        if wav.shape[-1] < self.cfg.n_fft // 2 + 1:
            # reflect padding needs more samples than half a window; zero-pad very short clips first
            wav = nn.functional.pad(wav, (0, self.cfg.n_fft // 2 + 1 - wav.shape[-1]))
        with torch.autocast(device_type=wav.device.type, enabled=False):
            mel = self.mel(wav.float())  # (B, F, T)
        return torch.log(mel + self.cfg.eps)

    def normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        """Apply the stored normalisation stats (identity when none are set)."""
        return normalize(logmel, self.cfg)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, S) -> (B, F, T) normalised log-mel."""
        return self.normalize(self.log_mel(wav))


def normalize(logmel: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """(..., F, T) un-normalised log-mel -> normalised with `cfg`'s statistics (identity when none are set): the one
    normalisation of the package (cache segments for training and the label update, waveforms at inference)."""
    if cfg.norm_mean is None or cfg.norm_std is None:
        return logmel
    return (logmel - cfg.norm_mean) / cfg.norm_std


def mel_filterbank(cfg: FrontendConfig) -> torch.Tensor:
    """The Slaney mel filterbank both backends use, (n_fft // 2 + 1, F); for tests and plots."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, norm="slaney", mel_scale="slaney"
    )


def deltas(mel: torch.Tensor, width: int = 2) -> torch.Tensor:
    """(N, F, T) -> (N, F, T) centred regression slope over +-`width` frames (edges replicated): the log-mel delta
    features of the baselines and of the `frames_mel` timestamp mode."""
    import torchaudio

    return torchaudio.functional.compute_deltas(mel, win_length=2 * width + 1, mode="replicate")
