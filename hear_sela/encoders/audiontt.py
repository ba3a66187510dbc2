"""AudioNTT2020: the BYOL-A v1 encoder (nttcslab/byol-a, byol_a/models.py), written from its description.

3 blocks [Conv3x3 64ch, BN, ReLU, MaxPool 2x2], then per output frame the (64 x F/8) map is flattened and passed
through FC(512 -> d) + ReLU + Dropout 0.3 + FC(d -> d) + ReLU. Clip embedding = max over time + mean over time
(summed, not concatenated), as BYOL-A.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from hear_sela.encoders.base import Encoder
from hear_sela.encoders.registry import register_encoder


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)
    )


class AudioNTT2020(Encoder):
    time_stride = 8
    min_frames = 8

    def __init__(self, n_mels: int = 64, d: int = 2048, channels: int = 64, dropout: float = 0.3):
        super().__init__()
        if n_mels % 8:
            raise ValueError(f"audiontt needs n_mels divisible by 8, got {n_mels}")
        self.embed_dim = d
        self.features = nn.Sequential(_conv_block(1, channels), _conv_block(channels, channels),
                                      _conv_block(channels, channels))
        self.fc = nn.Sequential(
            nn.Linear(channels * (n_mels // 8), d), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(d, d), nn.ReLU(inplace=True),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, T/8, D)
        x = self.features(x)  # (B, C, F/8, T/8)
        x = rearrange(x, "b c f t -> b t (c f)")  # (B, T/8, C*F/8)
        return self.fc(x)  # (B, T/8, D)

    def intermediate_stages(self) -> tuple[list[nn.Module], str]:
        return list(self.features), "flatten"

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T', D) -> (B, D)
        return feats.max(dim=1).values + feats.mean(dim=1)


@register_encoder
def audiontt(n_mels: int = 64, d: int = 2048, **kw) -> AudioNTT2020:
    """BYOL-A v1 encoder, d = 2048 (config.yaml feature_d)."""
    return AudioNTT2020(n_mels=n_mels, d=d, **kw)


@register_encoder
def audiontt_d512(n_mels: int = 64, **kw) -> AudioNTT2020:
    """BYOL-A v1 encoder, d = 512 (the small variant of the BYOL-A paper)."""
    return AudioNTT2020(n_mels=n_mels, d=512, **kw)
