"""The interface every encoder implements. Legend: B batch, F mel bins, T frames, T' output frames, D features."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Log-mel (B, 1, F, T) -> frame features (B, T', D) -> clip embedding (B, D).

    Subclasses set `embed_dim` (D), `time_stride` (input frames per output frame) and `receptive_field`
    (input frames that one output frame sees, for framing long audio), and implement `forward_features`.
    """

    embed_dim: int
    time_stride: int
    min_frames: int  # shortest input (frames) that yields at least one output frame

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, T', D)
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T', D) -> (B, D)
        """Default clip pooling: mean over time."""
        return feats.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, D)
        return self.forward_head(self.forward_features(x))

    def output_frames(self, num_frames: int) -> int:
        """T' for an input of T frames."""
        return max(num_frames // self.time_stride, 0)
