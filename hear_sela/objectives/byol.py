"""BYOL-A v1 objective (Niizumi et al., IJCNN 2021; nttcslab/byol-a on lucidrains' byol-pytorch), written from
its description: online = encoder -> projector -> predictor, target = EMA (0.99) of encoder + projector, loss
2 - 2 cos(online prediction of one view, target projection of the other), summed over both directions and
averaged over the batch. Both views go through the networks in one concatenated batch (as byol-pytorch), so batch
norm sees both. The target network runs in train mode like the online one (as byol-pytorch); only its parameters
follow the EMA, its batch-norm buffers follow its own forward passes.

Legend: B batch, D embedding dimension, P projection dimension.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hear_sela.config import ByolConfig
from hear_sela.objectives.base import Objective


def mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    """byol-pytorch's projector/predictor: Linear -> BatchNorm1d -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos per sample: (B, P), (B, P) -> (B,)."""
    return 2 - 2 * F.cosine_similarity(prediction.float(), target.float(), dim=-1)


class ByolNet(nn.Module):
    """The online network: log-mel (B, 1, F, T) -> prediction (B, P)."""

    def __init__(self, encoder: nn.Module, cfg: ByolConfig):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.embed_dim, cfg.projection_hidden, cfg.projection_dim)
        self.predictor = mlp(cfg.projection_dim, cfg.projection_hidden, cfg.projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, P)
        return self.predictor(self.projector(self.encoder(x)))


class ByolTarget(nn.Module):
    """EMA copy of encoder + projector: (B, 1, F, T) -> projection (B, P)."""

    def __init__(self, online: ByolNet):
        super().__init__()
        self.encoder = copy.deepcopy(online.encoder)
        self.projector = copy.deepcopy(online.projector)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))

    @torch.no_grad()
    def update(self, online: ByolNet, decay: float) -> None:
        """target <- decay * target + (1 - decay) * online, parameters only."""
        mine = list(self.encoder.parameters()) + list(self.projector.parameters())
        theirs = list(online.encoder.parameters()) + list(online.projector.parameters())
        torch._foreach_lerp_(mine, theirs, 1.0 - decay)


class ByolObjective(Objective):
    """BYOL-A for the training loop: `net` (online) is optimised, `after_step` moves the EMA target."""

    name = "byol"
    views = 2

    def __init__(self, cfg: ByolConfig, encoder: nn.Module, device: torch.device | str = "cpu"):
        self.cfg = cfg
        super().__init__(ByolNet(encoder, cfg).to(device))
        self.target = ByolTarget(self.net).to(device)

    def modules(self) -> list[nn.Module]:
        # the target too: byol-pytorch runs it in train mode (batch statistics) and it follows memory format
        return [self.net, self.target]

    def loss(self, indices: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """indices (B,) (unused), views (2, B, 1, F, T) -> scalar loss."""
        b = views.shape[1]
        both = views.flatten(0, 1).contiguous(memory_format=self.memory_format)  # (2B, 1, F, T): view 1, view 2
        pred = self.runner(both)  # (2B, P)
        with torch.no_grad():
            proj = self.target(both)  # (2B, P)
        loss = byol_loss(pred[:b], proj[b:]) + byol_loss(pred[b:], proj[:b])  # (B,)
        return loss.mean()

    def after_step(self) -> None:
        self.target.update(self.net, self.cfg.ema_decay)

    def state_dict(self) -> dict[str, Any]:
        return {"projector": self.net.projector.state_dict(), "predictor": self.net.predictor.state_dict(),
                "target": self.target.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.projector.load_state_dict(state["projector"])
        self.net.predictor.load_state_dict(state["predictor"])
        self.target.load_state_dict(state["target"])
