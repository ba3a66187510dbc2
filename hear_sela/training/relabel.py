"""The `labels` command's work: a SeLa checkpoint's label store re-solved from its weights on its feature cache (the
label update of `objectives.sela`, run once, sharded under torchrun), and the labels CSV.

Legend: H heads, N segments.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hear_sela import distributed as dist
from hear_sela.data.cache import FeatureCache
from hear_sela.data.segment_labels import segment_label_table, write_segment_labels
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


def write_store_labels(out: Path, store: LabelStore, cache: Any) -> Path:
    """The store's labels of the cache's segments as labels.csv (`data.segment_labels`, the format `analyze` writes
    too). Rank 0 writes."""
    if not dist.is_main():
        return out
    clip_ids = [c.clip_id for c in cache.clips]
    table = segment_label_table(store.labels.cpu().numpy(), store.confidences.cpu().numpy(),  # (H, N) each
                                cache.segment_clip, cache.segment_start, clip_ids)
    return write_segment_labels(out, table)
