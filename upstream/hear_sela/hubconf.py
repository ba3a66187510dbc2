"""s3prl hub entries for hear_sela. s3prl exposes every public callable here as an upstream name (`-u NAME`), so
helpers take a leading underscore. Used from our launcher (`python -m hear_sela.s3prl_compat run_downstream ...`),
or from a copy of this folder in s3prl/upstream/hear_sela plus `from s3prl.upstream.hear_sela.hubconf import *` in
s3prl/hub.py (s3prl's in-tree way)."""

from __future__ import annotations

from .expert import UpstreamExpert as _UpstreamExpert


def hear_sela(ckpt: str | None = None, model_config: str | None = None, refresh: bool = False, **kwargs):
    """A hear_sela encoder: `-k` a training checkpoint or export of ours or a BYOL-A .pth; no `-k` = the embedded
    default weights."""
    return _UpstreamExpert(ckpt, model_config, **kwargs)


def hear_sela_local(ckpt: str | None = None, model_config: str | None = None, refresh: bool = False, **kwargs):
    """As `hear_sela`, but a checkpoint path (`-k`) is required."""
    if not ckpt:
        raise ValueError("hear_sela_local needs a checkpoint: -k PATH (or use -u hear_sela for the default weights)")
    return _UpstreamExpert(ckpt, model_config, **kwargs)
