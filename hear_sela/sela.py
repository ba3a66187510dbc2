"""SeLa objective: H linear heads on the clip embedding, a label store, and the confidence-weighted multi-head loss.

The label update itself (encoder in eval over every cached segment, then the Sinkhorn solver) is in
`hear_sela.label_update`; this module holds what the training step needs.

Legend: B batch, H heads, K clusters, N training segments, D embedding dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from hear_sela.config import SelaConfig
from hear_sela.objective import Objective


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

    def extra_repr(self) -> str:
        return f"heads={self.heads}, clusters={self.clusters}, dim={self.weight.shape[-1]}, dropout={self.dropout}"


class SelaNet(nn.Module):
    """Encoder + heads: log-mel (B, 1, F, T) -> logits (B, H, K). The module optimised (and DDP-wrapped)."""

    def __init__(self, encoder: nn.Module, heads: MultiHead):
        super().__init__()
        self.encoder, self.heads = encoder, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, H, K)
        return self.heads(self.encoder(x).float())


def sela_loss(logits: torch.Tensor, labels: torch.Tensor, confidences: torch.Tensor | None = None,
              alpha: float = 0.0) -> torch.Tensor:
    """Mean over heads of the per-sample cross-entropy against the self-labels.

    logits (B, H, K), labels (H, B) int64, confidences (H, B) -> scalar. With alpha > 0 each sample's CE is
    weighted by confidence**alpha, the weights divided by their batch mean per head: the loss stays a weighted
    average of CE, on the same scale as the unweighted loss, so the learning rate needs no retuning.
    """
    ce = F.cross_entropy(rearrange(logits.float(), "b h k -> b k h"), labels.T, reduction="none")  # (B, H)
    if alpha == 0.0 or confidences is None:
        return ce.mean()
    w = confidences.T.float().clamp_min(1e-12) ** alpha  # (B, H)
    w = w / w.mean(dim=0, keepdim=True)
    return (ce * w).mean()


@dataclass
class LabelStore:
    """Self-labels of all N training segments for every head, with the solver's confidences and duals."""

    labels: torch.Tensor  # (H, N) int64
    confidences: torch.Tensor  # (H, N) float32
    duals: Any = None  # the solver's duals of the last update (warm start); solver-defined
    updates: int = 0  # label updates done so far
    history: list[dict[str, float]] = field(default_factory=list)  # logged metrics of every update

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
                "updates": self.updates, "history": list(self.history)}

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


def _to(obj: Any, device: torch.device | str) -> Any:
    """Move tensors inside nested dicts/lists/tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to(v, device) for v in obj)
    return obj


class SelaObjective(Objective):
    """SeLa for the training loop: `net` (encoder + heads) is optimised; `loss(batch)` reads the label store."""

    name = "sela"
    views = 1

    def __init__(self, cfg: SelaConfig, encoder: nn.Module, n_segments: int, seed: int,
                 device: torch.device | str = "cpu"):
        self.cfg = cfg
        heads = MultiHead(encoder.embed_dim, cfg.heads, cfg.clusters, cfg.head_dropout)
        super().__init__(SelaNet(encoder, heads).to(device))
        self.store = LabelStore.initial(cfg.heads, n_segments, cfg.clusters, seed, device)

    def loss(self, indices: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """indices (B,) int64 into the store, views (1, B, 1, F, T) -> scalar loss."""
        logits = self.runner(views[0].contiguous(memory_format=self.memory_format))  # (B, H, K)
        labels, conf = self.store.batch(indices)
        return sela_loss(logits, labels, conf, self.cfg.confidence_alpha)

    def after_step(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"heads": self.net.heads.state_dict(), "label_store": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.heads.load_state_dict(state["heads"])
        self.store.load_state_dict(state["label_store"])
