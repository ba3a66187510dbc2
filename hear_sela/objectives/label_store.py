"""The self-labels of all N training segments (the label store), and one solved label update before it is applied.

A label update (`objectives.label_update.solve_label_update`) reads the store and returns a `LabelUpdate`;
`LabelStore.apply` is the one place that writes the store's fields.

Legend: H heads, K clusters, N training segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class LabelUpdate:
    """One solved label update, not yet applied (every rank holds the whole result)."""

    labels: torch.Tensor  # (H, N) int64
    confidences: torch.Tensor  # (H, N) float32: the solver's posterior of the chosen cluster
    terms: dict[str, torch.Tensor]  # confidence terms besides the posterior (objectives.confidence), (H, N) each
    duals: dict[str, Any]  # {"log_r": (H, K) float64, "lamb": float}: the next solve's warm start
    gauss_sizes: torch.Tensor | None  # (H, K) float64: sela.marginals=gauss_selavi's draw, when this update made it
    stats: dict[str, float]  # the logged metrics of this update


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

    def apply(self, update: LabelUpdate, counted: bool = True, record: bool = True) -> None:
        """Replace the labels with a solved update. counted: it is one of the schedule's updates (a relabel of
        changed data is not); record: keep its statistics in the history (rank 0 only, which saves the checkpoint)."""
        device = self.labels.device
        if tuple(update.labels.shape) != tuple(self.labels.shape):
            raise ValueError(f"label update of shape {tuple(update.labels.shape)} for a store of "
                             f"{tuple(self.labels.shape)} (heads, segments)")
        self.labels, self.confidences = update.labels.to(device), update.confidences.to(device)
        self.terms = _to(dict(update.terms), device)
        self.duals = update.duals
        if update.gauss_sizes is not None:
            self.gauss_sizes = update.gauss_sizes
        self.updates += int(counted)
        if record:
            self.history.append(dict(update.stats))

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
