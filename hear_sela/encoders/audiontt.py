"""The BYOL-A encoders (nttcslab/byol-a), written from their descriptions.

AudioNTT2020 (v1, byol_a/models.py): 3 blocks [Conv3x3 64ch, BN, ReLU, MaxPool 2x2], then per output frame the
(64 x F/8) map is flattened and passed through FC(512 -> d) + ReLU + Dropout 0.3 + FC(d -> d) + ReLU. Clip embedding =
max over time + mean over time (summed, not concatenated), as BYOL-A.

AudioNTT2022 (v2, v2/byol_a2/models.py; Niizumi et al., TASLP 2023): 2 conv blocks, so the flattened map keeps F/4
mel positions, and each frame's output is that map *stacked with* the MLP's output: d = C * F/4 + MLP width. The
stacked conv part is why v2 keeps pitch: the MLP, trained by any clip-level objective, learns what clips of one
source share and drops where on the frequency axis a note sits (measured on the real corpus: SeLa's final features
score 0.24 on the pitch dev task, the same run's pooled second conv map 0.72; docs/results/real_sound.md).
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


def _conv_stack(channels: int, layers: int) -> nn.Sequential:
    """`layers` conv blocks, 1 -> channels -> ... -> channels; each halves F and T."""
    return nn.Sequential(_conv_block(1, channels), *(_conv_block(channels, channels) for _ in range(layers - 1)))


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """BYOL-A's per-frame MLP: FC + ReLU + Dropout + FC + ReLU (indices 0 and 3 hold the weights, as published)."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out), nn.ReLU(inplace=True))


class _ByolaEncoder(Encoder):
    """What both BYOL-A encoders share: the conv stages `features` (s3prl sees each map flattened, channel-major,
    as the MLP does) and the clip pooling, max over time + mean over time."""

    features: nn.Sequential

    def intermediate_stages(self) -> tuple[list[nn.Module], str]:
        return list(self.features), "flatten"

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T', D) -> (B, D)
        return feats.max(dim=1).values + feats.mean(dim=1)


class AudioNTT2020(_ByolaEncoder):
    time_stride = 8
    min_frames = 8

    def __init__(self, n_mels: int = 64, d: int = 2048, channels: int = 64, dropout: float = 0.3):
        super().__init__()
        if n_mels % 8:
            raise ValueError(f"audiontt needs n_mels divisible by 8, got {n_mels}")
        self.embed_dim = d
        self.features = _conv_stack(channels, 3)
        self.fc = _mlp(channels * (n_mels // 8), d, d, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, T/8, D)
        x = self.features(x)  # (B, C, F/8, T/8)
        x = rearrange(x, "b c f t -> b t (c f)")  # (B, T/8, C*F/8)
        return self.fc(x)  # (B, T/8, D)


@register_encoder
def audiontt(n_mels: int = 64, d: int = 2048, **kw) -> AudioNTT2020:
    """BYOL-A v1 encoder, d = 2048 (config.yaml feature_d)."""
    return AudioNTT2020(n_mels=n_mels, d=d, **kw)


@register_encoder
def audiontt_d512(n_mels: int = 64, **kw) -> AudioNTT2020:
    """BYOL-A v1 encoder, d = 512 (the small variant of the BYOL-A paper)."""
    return AudioNTT2020(n_mels=n_mels, d=512, **kw)


class AudioNTT2022(_ByolaEncoder):
    def __init__(self, n_mels: int = 64, d: int = 3072, channels: int = 64, mlp_hidden: int = 2048,
                 conv_layers: int = 2, dropout: float = 0.3):
        super().__init__()
        if n_mels % 2**conv_layers:
            raise ValueError(f"audiontt2022 with {conv_layers} conv layers needs n_mels divisible by "
                             f"{2**conv_layers}, got {n_mels}")
        conv_d = channels * (n_mels // 2**conv_layers)
        if d <= conv_d:
            raise ValueError(f"audiontt2022: d={d} must exceed the stacked conv width {conv_d} "
                             f"(channels x n_mels / {2**conv_layers}); the MLP gets d - {conv_d}")
        self.embed_dim = d
        self.time_stride = 2**conv_layers
        self.min_frames = self.time_stride
        self.features = _conv_stack(channels, conv_layers)
        self.fc = _mlp(conv_d, mlp_hidden, d - conv_d, dropout)
        self.conv_d = conv_d

    def embedding_parts(self) -> dict[str, slice]:
        """The stacked conv map's dimensions and the MLP's (forward_features concatenates them)."""
        d = self.embed_dim
        return {"all": slice(0, d), "conv": slice(0, self.conv_d), "mlp": slice(self.conv_d, d)}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, T/4, D)
        x = rearrange(self.features(x), "b c f t -> b t (c f)")  # (B, T/4, C*F/4)
        return torch.cat([x, self.fc(x)], dim=-1)  # (B, T/4, C*F/4 + MLP width)


@register_encoder
def audiontt2022(n_mels: int = 64, d: int = 3072, **kw) -> AudioNTT2022:
    """BYOL-A v2 encoder, d = 3072 (config_v2.yaml: 1024 stacked conv + 2048 MLP)."""
    return AudioNTT2022(n_mels=n_mels, d=d, **kw)
