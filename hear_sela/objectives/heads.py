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
    (the audio SeLa code: 10 x [Dropout 0.2, Linear(512 -> 1000)], weights N(0, 0.02), biases 0).

    With `projector` = (hidden, out) the heads sit on a shared MLP projector, Linear(D, hidden) BN ReLU
    Linear(hidden, out), as SwAV's prototypes and BYOL-A's loss do, instead of on the embedding itself: the
    clustering objective then shapes the projector's output, and the embedding exported for downstream use is the
    encoder's, one layer further from the cluster logits (the SimCLR/BYOL finding that the layer before the
    projection head keeps more information)."""

    def __init__(self, dim: int, heads: int, clusters: int, dropout: float = 0.2, init_std: float = 0.02,
                 projector: tuple[int, int] | None = None):
        super().__init__()
        self.heads, self.clusters, self.dropout = heads, clusters, dropout
        self.projector = None
        if projector:
            hidden, dim_out = projector
            self.projector = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                           nn.Linear(hidden, dim_out))
            dim = dim_out
        self.weight = nn.Parameter(torch.randn(heads, clusters, dim) * init_std)  # (H, K, D')
        self.bias = nn.Parameter(torch.zeros(heads, clusters))  # (H, K)

    def project(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, D'): the heads' input
        return x if self.projector is None else self.projector(x)

    @torch.no_grad()
    def project_all(self, emb: torch.Tensor, chunk: int = 65536) -> torch.Tensor:  # (N, D) -> (N, D') float32
        """The heads' input for every row, block by block (the label update's matrix-free solver reads it)."""
        if self.projector is None:
            return emb
        return torch.cat([self.projector(emb[i:i + chunk].float()) for i in range(0, max(emb.shape[0], 1), chunk)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, H, K)
        x = self.project(x)
        if self.training and self.dropout > 0:
            xh = x.unsqueeze(1).expand(-1, self.heads, -1)  # (B, H, D)
            xh = F.dropout(xh, self.dropout, training=True)  # independent masks per head
            return torch.einsum("bhd,hkd->bhk", xh, self.weight) + self.bias
        return torch.einsum("bd,hkd->bhk", x, self.weight) + self.bias

    @torch.no_grad()
    def logit_chunks(self, emb: torch.Tensor, chunk: int = 65536, index: torch.Tensor | None = None,
                     projected: bool = False) -> Iterator[torch.Tensor]:
        """Logits of every head (or of the heads `index` (H',) only), dropout off, block by block of rows:
        emb (N, D) (or, projected=True, the heads' input (N, D') already) -> yields (H, n <= chunk, K) float32 (one
        empty block when N = 0)."""
        w, b = self.weight.float(), self.bias.float()  # (H, K, D'), (H, K)
        if index is not None:
            w, b = w[index], b[index]
        for i in range(0, max(emb.shape[0], 1), chunk):
            x = emb[i:i + chunk] if projected or self.projector is None else self.projector(emb[i:i + chunk].float())
            yield torch.einsum("nd,hkd->hnk", x, w) + b[:, None, :]

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
        return f"heads={self.heads}, clusters={self.clusters}, in_dim={self.weight.shape[-1]}, dropout={self.dropout}"
