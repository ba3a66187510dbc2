"""What a resumed run may change in its recipe. A resume continues the checkpoint's run, so a changed key is either
applied by the resumed run (and logged as changed) or refused by name; the config the run stores is what ran.

Applied: the length of the run (train.epochs; its schedules follow the new count), where and how it runs and logs
(out_dir, device, amp, channels_last, log_every, ckpt_every_steps, resume, the online evaluation's probes), and the
data and frontend keys, which `check_resume_data` then judges by the cache they give (an unchanged cache, or
train.resume_relabel). Everything else (model, objective, optimiser, augmentation, SeLa/BYOL-A settings, seed,
batch) shapes the state being resumed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hear_sela.config import Config, ConfigError, config_from_dict, config_to_dict
from hear_sela.training.state import ResumeError

log = logging.getLogger("hear_sela.train")

APPLIED = ("name", "train.epochs", "train.out_dir", "train.resume", "train.resume_relabel", "train.device",
           "train.amp", "train.channels_last", "train.log_every", "train.ckpt_every_steps", "data.", "frontend.",
           "online_eval.")
FROM_THE_CACHE = ("frontend.norm_mean", "frontend.norm_std")  # filled by the feature cache, not by the recipe


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(stored: dict[str, Any], cfg: Config) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (stored value, value now)} for every key whose value differs (norm statistics excepted). The
    stored config is resolved first, so a key added since it was written counts at its default."""
    try:
        resolved = config_from_dict(stored, source="the checkpoint's stored config")
    except ConfigError as e:
        raise ResumeError(f"{e}; resume with the hear_sela version that wrote it, or train afresh") from None
    old, new = _flat(config_to_dict(resolved)), _flat(config_to_dict(cfg))
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if k not in FROM_THE_CACHE and old.get(k) != new.get(k)}


def check_resume_config(cfg: Config, stored: dict[str, Any], path: Path) -> None:
    """Refuse a resume whose config changes a key the resumed state depends on (naming it); log the applied ones."""
    changes = config_changes(stored, cfg)
    refused = [k for k in changes if not k.startswith(APPLIED) and k not in APPLIED]
    if refused:
        k = refused[0]
        others = f" (also changed: {', '.join(refused[1:])})" if refused[1:] else ""
        raise ResumeError(f"{path}: {k} is {changes[k][0]!r} in this checkpoint, {changes[k][1]!r} now{others}; "
                            f"a resume cannot change it: set {k}={changes[k][0]!r} to resume, or train into a new "
                            "train.out_dir")
    for k, (old, new) in changes.items():
        log.info("resume: %s changed from %r to %r (applied)", k, old, new)

