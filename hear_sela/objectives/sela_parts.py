"""SeLa's building blocks: H linear heads as one batched module, and the label store of all N segments.

Legend: B batch, H heads, K clusters, N training segments, D embedding dimension.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class LabelStore:
    """Self-labels of all N training segments for every head, with the solver's confidences and duals."""

    labels: torch.Tensor  # (H, N) int64
    confidences: torch.Tensor  # (H, N) float32
    duals: Any = None  # the solver's duals of the last update (warm start); solver-defined
    updates: int = 0  # label updates done so far
    history: list[dict[str, float]] = field(default_factory=list)  # logged metrics of every update
    gauss_sizes: torch.Tensor | None = None  # (H, K) float64: sela.marginals=gauss_selavi's one draw for the run
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # confidence terms besides the posterior, (H, N)

    @classmethod
    def initial(cls, heads: int, n: int, clusters: int, seed: int, device: torch.device | str = "cpu"
                ) -> LabelStore:
        """SeLa's initialisation: labels i % K, shuffled independently per head; confidence 1."""
        gen = torch.Generator().manual_seed(seed)
        base = torch.arange(n) % clusters
        labels = torch.stack([base[torch.randperm(n, generator=gen)] for _ in range(heads)])  # (H, N)
        return cls(labels.to(device), torch.ones(heads, n, device=device))

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and confidences of the segments `indices` (B,): ((H, B), (H, B))."""
        return self.labels[:, indices], self.confidences[:, indices]

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels.cpu(), "confidences": self.confidences.cpu(), "duals": _to(self.duals, "cpu"),
                "updates": self.updates, "history": list(self.history), "gauss_sizes": _to(self.gauss_sizes, "cpu"),
                "terms": _to(self.terms, "cpu")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["labels"].shape) != tuple(self.labels.shape):
            raise ValueError(f"checkpoint label store has shape {tuple(state['labels'].shape)}, this run expects "
                             f"{tuple(self.labels.shape)} (heads, segments): different heads or feature cache?")
        device = self.labels.device
        self.labels = state["labels"].to(device)
        self.confidences = state["confidences"].to(device)
        self.duals = _to(state.get("duals"), device)
        self.updates = int(state["updates"])
        self.history = list(state.get("history", []))
        self.gauss_sizes = state.get("gauss_sizes")  # stays on the CPU, where it is drawn and sorted
        self.terms = _to(dict(state.get("terms") or {}), device)


def _to(obj: Any, device: torch.device | str) -> Any:
    """Move tensors inside nested dicts/lists/tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to(v, device) for v in obj)
    return obj
