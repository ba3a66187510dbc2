"""A log-mel HEAR 2021 module: the floor every learned embedding should beat.

    python -m heareval.embeddings.runner hear_sela.baselines.logmel --tasks-dir TASKS
    hear-sela evaluate ... (module name hear_sela.baselines.logmel)

Features are the project frontend (`hear_sela.frontend.LogMel`) with the default weights' settings
(`FrontendConfig()`: 16 kHz, n_fft 1024, hop 160 = 10 ms, 64 Slaney mels over 60-7800 Hz, log(mel + eps)), left
un-normalised (the default weights' global mean/std is one affine map, which any probe undoes).
- Scene embedding: per mel bin, mean and standard deviation over all frames of the clip: D = 2 * 64 = 128.
- Timestamp embedding: the log-mel frame itself (D = 64), or with `deltas=True` the frame and its first time
  derivative (D = 128, a centred difference over +-2 frames, as torchaudio's compute_deltas), at the frontend hop
  (10 ms); timestamps are the frame centres, t_i = i * 10 ms, i = 0 .. S // 160.
`load_model(model_file_path="")` ignores the path: there are no weights.
Legend: N sounds, S samples, F mel bins, T frames, D embedding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hear_sela.config import FrontendConfig
from hear_sela.frontend import LogMel, deltas


class LogMelBaseline(nn.Module):
    """The frontend, with the attributes HEAR asks for (Python ints)."""

    def __init__(self, deltas: bool = False):
        super().__init__()
        self.frontend = LogMel(FrontendConfig())
        self.deltas = bool(deltas)
        self.sample_rate = int(self.frontend.cfg.sample_rate)
        n_mels = int(self.frontend.cfg.n_mels)
        self.scene_embedding_size = 2 * n_mels
        self.timestamp_embedding_size = (2 if self.deltas else 1) * n_mels
        self.eval()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # (N, S) -> (N, 2F)
        return get_scene_embeddings(audio, self)


def load_model(model_file_path: str = "", deltas: bool = False, **options: Any) -> LogMelBaseline:
    """The baseline; `model_file_path` is ignored (no weights). heareval: `--model-options '{"deltas": true}'`."""
    if options:
        raise ValueError(f"unknown logmel baseline option(s) {sorted(options)}; valid: ['deltas']")
    return LogMelBaseline(deltas=deltas)


def _log_mel(audio: torch.Tensor, model: LogMelBaseline) -> torch.Tensor:
    """(N, S) float audio -> (N, F, T) log-mel on the model's device, T = S // hop + 1."""
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2 or not audio.is_floating_point():
        raise ValueError("audio must be a float tensor of shape (n_sounds, n_samples)")
    device = next(model.frontend.buffers(), audio).device
    with torch.no_grad():
        mel = model.frontend.log_mel(audio.to(device=device, dtype=torch.float32))  # (N, F, T')
    return mel[..., :model.frontend.num_frames(audio.shape[1])]


def get_scene_embeddings(audio: torch.Tensor, model: LogMelBaseline) -> torch.Tensor:
    """(N, S) audio at 16 kHz -> (N, 128) float32: per-bin mean then per-bin std over time."""
    mel = _log_mel(audio, model)  # (N, F, T)
    std = mel.std(dim=-1, unbiased=False)  # (N, F); population std, defined for one frame too
    return torch.cat([mel.mean(dim=-1), std], dim=1).float().to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: LogMelBaseline) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S) audio -> embeddings (N, T, 64 or 128) float32 and timestamps (N, T) in ms at frame centres."""
    mel = _log_mel(audio, model)  # (N, F, T)
    feats = torch.cat([mel, deltas(mel)], dim=1) if model.deltas else mel  # (N, D, T)
    hop_ms = 1000.0 * model.frontend.hop_length / model.sample_rate
    t = feats.shape[-1]
    ts = (torch.arange(t, dtype=torch.float64) * hop_ms).to(torch.float32).expand(len(audio), t)  # (N, T)
    return feats.transpose(1, 2).float().contiguous().to(audio.device), ts.contiguous().to(audio.device)
