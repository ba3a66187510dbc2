"""Run a convolutional encoder on a zero-padded batch as if every item were alone.

s3prl hands the upstream clips of different lengths. Padding them to one length lets the frames past a short clip's
end leak into its last valid frames through every temporal convolution and pooling window. Here each Conv2d / pooling
layer gets a forward pre-hook that (1) zeroes its input past each item's valid length, which is exactly the zero
padding that layer would see at the edge of the item alone, and (2) computes the item's valid length at its output
with the layer's own size formula. Valid frames are then the same as for the item alone (up to float rounding),
for any encoder built from these layers (AudioNTT's conv blocks, timm ResNets), without touching its forward code.

Limits: a BatchNorm in training mode (s3prl `-f`) still takes batch statistics over padded positions; a layer that
mixes time by other means (attention, adaptive pooling, blur-pool) is not covered, and the caller checks that the
tracked stride equals the encoder's `time_stride`.
Legend: B batch, C channels, F mel bins, T frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

_TIME_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


@dataclass
class Resolution:
    """Valid frames per item (B,) and input (log-mel) frames per frame at one time resolution."""

    valid: torch.Tensor
    stride: int


def _time_param(value: int | Sequence[int]) -> int:
    return int(value[-1]) if isinstance(value, Sequence) else int(value)


def output_length(layer: nn.Module, n: torch.Tensor) -> torch.Tensor:
    """Time length after `layer` for input lengths `n` (PyTorch's size formula for the last axis)."""
    k, s = _time_param(layer.kernel_size), _time_param(layer.stride)
    d = _time_param(getattr(layer, "dilation", 1))
    pad = layer.padding
    if isinstance(pad, str):  # Conv2d "valid" | "same" (the latter only with stride 1)
        return n if pad == "same" else (n - d * (k - 1) - 1) // s + 1
    p = _time_param(pad)
    span = n + 2 * p - d * (k - 1) - 1
    if not getattr(layer, "ceil_mode", False):
        return torch.div(span, s, rounding_mode="floor") + 1
    out = torch.div(span + s - 1, s, rounding_mode="floor") + 1
    # PyTorch drops a last ceil-mode window that would start in the right padding
    return torch.where((out - 1) * s >= n + p, out - 1, out)


def _time_mask(valid: torch.Tensor, length: int) -> torch.Tensor:  # (B,) -> (B, T) bool
    return torch.arange(length, device=valid.device)[None, :] < valid[:, None]


class PaddedRunner:
    """`runner(x, lengths)`: the encoder's frame features for a padded batch, plus captured stage maps.

    Args:
        encoder: a hear_sela `Encoder` (forward_features (B, 1, F, T) -> (B, T', D)).
        stage_modules: sub-modules whose outputs (B, C, F', T') are captured, in forward order.
    """

    def __init__(self, encoder: nn.Module, stage_modules: Sequence[nn.Module] = ()):
        self.encoder = encoder
        self.stage_modules = list(stage_modules)
        self.time_layers = [m for m in encoder.modules() if isinstance(m, _TIME_LAYERS)]
        for m in self.time_layers:
            if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
                raise ValueError(f"{type(encoder).__name__}: Conv2d with padding_mode={m.padding_mode!r}; only zero "
                                 "padding matches a zeroed tail")

    def __call__(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, Resolution, list[tuple[torch.Tensor, Resolution]]]:
        """x (B, 1, F, T) zero-padded log-mel, lengths (B,) valid frames -> (feats (B, T', D), its resolution,
        [(stage map (B, C, F', T'), its resolution)])."""
        by_length: dict[int, Resolution] = {x.shape[-1]: Resolution(lengths.to(x.device), 1)}
        stages: list[tuple[torch.Tensor, Resolution]] = []

        def lookup(length: int, where: nn.Module) -> Resolution:
            if length not in by_length:
                raise RuntimeError(f"{type(where).__name__}: input of {length} frames at no tracked resolution "
                                   f"{sorted(by_length)}")
            return by_length[length]

        def mask_input(layer: nn.Module, args: tuple) -> tuple:
            inp = args[0]  # (B, C, F, T)
            res = lookup(inp.shape[-1], layer)
            inp = inp * _time_mask(res.valid, inp.shape[-1])[:, None, None, :].to(inp.dtype)
            out_len = int(output_length(layer, torch.tensor(inp.shape[-1])))
            out = Resolution(output_length(layer, res.valid), res.stride * _time_param(layer.stride))
            known = by_length.setdefault(out_len, out)
            if known is not out and (known.stride != out.stride or not torch.equal(known.valid, out.valid)):
                raise RuntimeError(f"{type(layer).__name__}: two resolutions share a length of {out_len} frames")
            return (inp, *args[1:])

        def capture(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            stages.append((out, lookup(out.shape[-1], module)))

        handles = [m.register_forward_pre_hook(mask_input) for m in self.time_layers]
        handles += [m.register_forward_hook(capture) for m in self.stage_modules]
        try:
            feats = self.encoder.forward_features(x)  # (B, T', D)
        finally:
            for h in handles:
                h.remove()
        return feats, lookup(feats.shape[1], self.encoder), stages
