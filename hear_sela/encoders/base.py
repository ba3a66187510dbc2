"""The interface every encoder implements. Legend: B batch, F mel bins, T frames, T' output frames, D features."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Log-mel (B, 1, F, T) -> frame features (B, T', D) -> clip embedding (B, D).

    Subclasses take `n_mels` (F) in their constructor, set `embed_dim` (D), `time_stride` (input frames per output
    frame) and `min_frames`, and implement `forward_features`; `intermediate_stages` names the stage modules whose
    maps the s3prl upstream exposes.
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

    def intermediate_stages(self) -> tuple[list[nn.Module], str]:
        """The stage modules whose outputs (B, C, F', T') are intermediate features, in forward order, and how a
        map becomes frames (B, T', D_k): "flatten" (channels x mel bins, as audiontt's head) or "mean" (over mel
        bins). Modules rather than tensors (timm's forward_intermediates returns tensors) because the s3prl upstream
        hooks them to mask each clip's padding stage by stage. Default: none."""
        return [], "mean"

    def embedding_parts(self) -> dict[str, slice]:
        """Named slices of the embedding's D dimensions that come from different stages (probed apart by
        `hear-sela probe --parts`). Default: one part, the whole embedding."""
        return {"all": slice(0, self.embed_dim)}

    def output_frames(self, num_frames: int) -> int:
        """T' for an input of T frames."""
        return max(num_frames // self.time_stride, 0)
