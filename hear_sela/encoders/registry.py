"""Encoder registry, as timm's `create_model`: constructors keyed by name, errors that list the valid names."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from hear_sela.config import Config

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a constructor under its function name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"encoder {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_encoders(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def create_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build encoder `name`; None-valued kwargs are dropped so configs can leave them unset."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; registered encoders: {', '.join(list_encoders())}")
    return _REGISTRY[name](**{k: v for k, v in kwargs.items() if v is not None})


def build_encoder(cfg: Config) -> nn.Module:
    """The encoder a config describes (random weights), fed the frontend's mel count (every family takes n_mels)."""
    return create_encoder(cfg.model.encoder, **{"n_mels": cfg.frontend.n_mels, **cfg.model.encoder_kwargs})
