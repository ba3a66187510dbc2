"""The `labels` command's work: a SeLa checkpoint's label store re-solved from its weights on its feature cache (the
label update of `objectives.sela`, run once, sharded under torchrun), and the labels CSV.

Legend: H heads, N segments.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hear_sela import distributed as dist
from hear_sela.data.cache import FeatureCache
from hear_sela.fileio import atomic_write
from hear_sela.objectives.base import RunContext
from hear_sela.objectives.label_store import LabelStore
from hear_sela.training.state import read_checkpoint

log = logging.getLogger("hear_sela.labels")


def relabel_checkpoint(path: str | Path, cache_dir: str | Path | None = None, device: str = "auto",
                       solve: bool = True) -> tuple[LabelStore, Any]:
    """A SeLa checkpoint's label store, re-solved from its weights on its feature cache (or as stored, solve=False).
    Runs sharded when started under torchrun. Returns (store, cache)."""
    ckpt = read_checkpoint(path).require("sela")
    cfg = ckpt.config
    cache_dir = cache_dir or ckpt.cache_dir or cfg.data.cache_dir
    if not cache_dir:
        raise ValueError(f"{path}: no feature cache recorded; pass --cache DIR")
    cache = FeatureCache.open(cache_dir)
    if len(cache) != ckpt.n_segments:
        raise ValueError(f"{path}: labels for {ckpt.n_segments} segments, but the cache {cache_dir} holds "
                         f"{len(cache)}")
    dist.init_from_env()
    objective = ckpt.build_objective(dist.resolve_device(device, "--device"))
    if solve:
        run = RunContext(cfg=cfg, device=objective.store.labels.device, features=cache.features, amp=cfg.train.amp)
        stats = objective.update_labels(run)
        if dist.is_main():
            log.info("re-solved labels: %.1f%% differ from the stored ones, %d solver iterations",
                     100 * stats["changed"], stats["solver_iterations"])
    return objective.store, cache


def write_labels_csv(out: Path, store: LabelStore, cache: Any) -> Path:
    """One row per (head, segment): clip_id, segment_start (s), head, label, confidence. Rank 0 writes."""
    import pandas as pd

    if not dist.is_main():
        return out
    labels, conf = store.labels.cpu().numpy(), store.confidences.cpu().numpy()  # (H, N)
    h, n = labels.shape
    clip_ids = np.asarray([c.clip_id for c in cache.clips], dtype=object)
    frame = pd.DataFrame({
        "clip_id": np.tile(clip_ids[np.asarray(cache.segment_clip)], h),
        "segment_start": np.tile(np.asarray(cache.segment_start, dtype=np.float64), h),
        "head": np.repeat(np.arange(h), n),
        "label": labels.reshape(-1),
        "confidence": conf.reshape(-1),
    })
    return atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
