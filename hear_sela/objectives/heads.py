"""SeLa's heads: H linear classifiers on the clip embedding as one batched module.

Legend: B batch, H heads, K clusters, N segments, D embedding dimension.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class MultiHead(nn.Module):
    """H linear classifiers (D -> K) as one batched matmul, each with its own dropout mask on its input
    (the audio SeLa code: 10 x [Dropout 0.2, Linear(512 -> 1000)], weights N(0, 0.02), biases 0)."""

    def __init__(self, dim: int, heads: int, clusters: int, dropout: float = 0.2, init_std: float = 0.02):
        super().__init__()
        self.heads, self.clusters, self.dropout = heads, clusters, dropout
        self.weight = nn.Parameter(torch.randn(heads, clusters, dim) * init_std)  # (H, K, D)
        self.bias = nn.Parameter(torch.zeros(heads, clusters))  # (H, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, H, K)
        if self.training and self.dropout > 0:
            xh = x.unsqueeze(1).expand(-1, self.heads, -1)  # (B, H, D)
            xh = F.dropout(xh, self.dropout, training=True)  # independent masks per head
            return torch.einsum("bhd,hkd->bhk", xh, self.weight) + self.bias
        return torch.einsum("bd,hkd->bhk", x, self.weight) + self.bias

    @torch.no_grad()
    def logit_chunks(self, emb: torch.Tensor, chunk: int = 65536, index: torch.Tensor | None = None
                     ) -> Iterator[torch.Tensor]:
        """Logits of every head (or of the heads `index` (H',) only), dropout off, block by block of rows:
        emb (N, D) -> yields (H, n <= chunk, K) float32 (one empty block when N = 0)."""
        w, b = self.weight.float(), self.bias.float()  # (H, K, D), (H, K)
        if index is not None:
            w, b = w[index], b[index]
        for i in range(0, max(emb.shape[0], 1), chunk):
            yield torch.einsum("nd,hkd->hnk", emb[i:i + chunk], w) + b[:, None, :]

    @torch.no_grad()
    def logits(self, emb: torch.Tensor, chunk: int = 65536, index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every head (or of the heads `index` (H',) only), dropout off: emb (N, D) -> (H, N, K) float32,
        computed in chunks of rows."""
        heads = self.heads if index is None else len(index)
        out = torch.empty(heads, emb.shape[0], self.clusters, device=emb.device)
        for i, block in zip(range(0, max(emb.shape[0], 1), chunk), self.logit_chunks(emb, chunk, index)):
            out[:, i:i + chunk] = block
        return out

    def extra_repr(self) -> str:
        return f"heads={self.heads}, clusters={self.clusters}, dim={self.weight.shape[-1]}, dropout={self.dropout}"
