"""Encoder families; importing this package registers them all."""

from hear_sela.encoders import audiontt, resnet  # noqa: F401  (registration side effect)
from hear_sela.encoders.base import Encoder
from hear_sela.encoders.registry import build_encoder, create_encoder, list_encoders, register_encoder

__all__ = ["Encoder", "build_encoder", "create_encoder", "list_encoders", "register_encoder"]
