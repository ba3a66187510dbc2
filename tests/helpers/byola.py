"""A BYOL-A AudioNTT2020 state dict of the published layout (random values; the real file is never in the repository)
and BYOL-A's forward written on the raw state dict, the yardstick the import is checked against."""

from __future__ import annotations

import torch
import torch.nn.functional as F

D, C, MELS = 32, 16, 64


def byola_layout_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under BYOL-A's keys: features.{0,4,8} conv, features.{1,5,9} BatchNorm, fc.{0,3} linear."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for conv, bn, c_in in ((0, 1, 1), (4, 5, C), (8, 9, C)):
        state[f"features.{conv}.weight"] = torch.randn(C, c_in, 3, 3, generator=g) / 3
        state[f"features.{conv}.bias"] = torch.randn(C, generator=g) * 0.1
        state[f"features.{bn}.weight"] = 1 + 0.2 * torch.randn(C, generator=g)
        state[f"features.{bn}.bias"] = 0.1 * torch.randn(C, generator=g)
        state[f"features.{bn}.running_mean"] = 0.1 * torch.randn(C, generator=g)
        state[f"features.{bn}.running_var"] = 0.5 + torch.rand(C, generator=g)
        state[f"features.{bn}.num_batches_tracked"] = torch.tensor(1000)
    state["fc.0.weight"] = torch.randn(D, C * MELS // 8, generator=g) / 10
    state["fc.0.bias"] = torch.randn(D, generator=g) * 0.1
    state["fc.3.weight"] = torch.randn(D, D, generator=g) / 5
    state["fc.3.bias"] = torch.randn(D, generator=g) * 0.1
    return state


def byola_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """BYOL-A's AudioNTT2020 forward as its paper and byol_a/models.py describe it, on the raw state dict:
    (B, 1, F, T) -> conv blocks -> (B, T', F', C) flattened frequency-major -> fc -> max + mean over time (B, D)."""
    for conv, bn in ((0, 1), (4, 5), (8, 9)):
        x = F.conv2d(x, state[f"features.{conv}.weight"], state[f"features.{conv}.bias"], padding=1)
        x = F.batch_norm(x, state[f"features.{bn}.running_mean"], state[f"features.{bn}.running_var"],
                         state[f"features.{bn}.weight"], state[f"features.{bn}.bias"], training=False, eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2, 2)
    x = x.permute(0, 3, 2, 1)  # (B, T', F', C)
    x = x.reshape(x.shape[0], x.shape[1], -1)  # (B, T', F' * C)
    x = F.relu(F.linear(x, state["fc.0.weight"], state["fc.0.bias"]))
    x = F.relu(F.linear(x, state["fc.3.weight"], state["fc.3.bias"]))  # (B, T', D)
    return x.max(dim=1).values + x.mean(dim=1)
