"""BYOL-A v1 objective (Niizumi et al., IJCNN 2021; nttcslab/byol-a on lucidrains' byol-pytorch), written from
its description: online = encoder -> projector -> predictor, target = EMA (0.99) of encoder + projector, loss
2 - 2 cos(online prediction of one view, target projection of the other), summed over both directions and
averaged over the batch. Each view goes through the online and the target network as a batch of its own, as the
published BYOL-A code does (its byol_pytorch.diff: "feeding two augmented input batches independently",
online_encoder(image_one), then online_encoder(image_two)), so batch norm normalises each view by its own batch
statistics and never sees the two views together. The target network runs in train mode like the online one (as
byol-pytorch); only its parameters follow the EMA, its batch-norm buffers follow its own forward passes.

Legend: B batch, D embedding dimension, P projection dimension.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hear_sela.config import ByolConfig
from hear_sela.embed import alive_dims
from hear_sela.objectives.base import Objective


def mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    """byol-pytorch's projector/predictor: Linear -> BatchNorm1d -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos per sample: (B, P), (B, P) -> (B,)."""
    return 2 - 2 * F.cosine_similarity(prediction.float(), target.float(), dim=-1)


def per_view(net: nn.Module, views: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """Run `net` on each view as a batch of its own (batch norm sees one view at a time), in one module call so
    DDP sees one forward per step: views (V, B, 1, F, T) -> (V, B, P)."""
    return torch.stack([net(v.contiguous(memory_format=memory_format)) for v in views.unbind(0)])


class ByolNet(nn.Module):
    """The online network: log-mel (B, 1, F, T) -> prediction (B, P); views (V, B, 1, F, T) -> (V, B, P) per view."""

    def __init__(self, encoder: nn.Module, cfg: ByolConfig):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.embed_dim, cfg.projection_hidden, cfg.projection_dim)
        self.predictor = mlp(cfg.projection_dim, cfg.projection_hidden, cfg.projection_dim)
        self.memory_format = torch.contiguous_format  # of each view's batch (the objective sets channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, P), or (V, B, 1, F, T) -> (V, B, P)
        if x.dim() == 5:
            preds, alive = [], []
            for view in x.unbind(0):
                preds.append(self(view.contiguous(memory_format=self.memory_format)))
                alive.append(self.alive)
            self.alive = torch.stack(alive).any(0)  # (D,): over both views, for the dead-unit log
            return torch.stack(preds)
        z = self.encoder(x)  # (B, D)
        self.alive = alive_dims(z)
        return self.predictor(self.projector(z))


class ByolTarget(nn.Module):
    """EMA copy of encoder + projector: (B, 1, F, T) -> projection (B, P); (V, B, 1, F, T) -> (V, B, P)."""

    def __init__(self, online: ByolNet):
        super().__init__()
        self.encoder = copy.deepcopy(online.encoder)
        self.projector = copy.deepcopy(online.projector)
        self.memory_format = online.memory_format
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return per_view(self, x, self.memory_format)
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
        pred = self.runner(views)  # (2, B, P)
        with torch.no_grad():
            proj = self.target(views)  # (2, B, P)
        loss = byol_loss(pred[0], proj[1]) + byol_loss(pred[1], proj[0])  # (B,)
        return loss.mean()

    def to_channels_last(self) -> None:
        super().to_channels_last()
        self.net.memory_format = self.target.memory_format = torch.channels_last

    def after_step(self) -> None:
        self.target.update(self.net, self.cfg.ema_decay)

    def state_dict(self) -> dict[str, Any]:
        return {"projector": self.net.projector.state_dict(), "predictor": self.net.predictor.state_dict(),
                "target": self.target.state_dict()}

    def load_state_dict(self, state: dict[str, Any], new_data: bool = False) -> None:  # nothing per segment
        self.net.projector.load_state_dict(state["projector"])
        self.net.predictor.load_state_dict(state["predictor"])
        self.target.load_state_dict(state["target"])
