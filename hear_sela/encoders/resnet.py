"""ResNet backbones from timm with a 1-channel input, as the audio SeLa code's ResNet-18 (512-d GAP).

Frame features average the last feature map over frequency; the clip embedding averages them over time, which equals
the global average pooling of the reference model.
"""

from __future__ import annotations

import timm
import torch
from einops import reduce
from torch import nn

from hear_sela.encoders.base import Encoder
from hear_sela.encoders.registry import register_encoder


class TimmResNet(Encoder):
    time_stride = 32
    min_frames = 1

    def __init__(self, arch: str, n_mels: int = 64, init_std: float | None = 0.02):
        super().__init__()
        self.n_mels = n_mels  # fully convolutional over frequency: any mel count fits the same weights
        self.backbone = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=0, global_pool="")
        self.embed_dim = int(self.backbone.num_features)
        if init_std is not None:
            # audio SeLa code initialises conv and linear weights N(0, 0.02)
            for m in self.backbone.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.normal_(m.weight, 0.0, init_std)

    def output_frames(self, num_frames: int) -> int:
        # the stem conv and max-pool are padded, so every stride-2 stage rounds up
        return -(-num_frames // self.time_stride) if num_frames > 0 else 0

    def intermediate_stages(self) -> tuple[list[nn.Module], str]:
        return [self.backbone.layer1, self.backbone.layer2, self.backbone.layer3], "mean"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T) -> (B, ceil(T/32), D)
        fmap = self.backbone.forward_features(x)  # (B, D, F/32, T/32)
        return reduce(fmap, "b d f t -> b t d", "mean")


@register_encoder
def resnet18(**kw) -> TimmResNet:
    """ResNet-18, 512-d (audio SeLa code)."""
    return TimmResNet("resnet18", **kw)


@register_encoder
def resnet34(**kw) -> TimmResNet:
    return TimmResNet("resnet34", **kw)


@register_encoder
def resnet50(**kw) -> TimmResNet:
    return TimmResNet("resnet50", **kw)
