"""From `data.*` config to a feature cache: `build_records` turns the config into clips, `prepare_cache` caches them.

data.source:
  synth   the embedded corpus, written to data.root (default <train.out_dir>/corpus) if not there yet
  folder  any folder of audio under data.root (recursive); labels from data.labels_csv, else <root>/labels.csv if
          present
  fsd50k  FSD50K as distributed under data.root, split data.split (dev | train | val | eval)
The cache goes to data.cache_dir (default <train.out_dir>/cache).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from hear_sela import distributed as dist
from hear_sela.config import Config, ConfigError, DataConfig
from hear_sela.data.cache import MANIFEST, FeatureCache, read_cache_json
from hear_sela.data.cache_build import (
    build_feature_cache,
    cache_identity,
    describe_change,
    manifest_input_paths,
    same_cache,
)
from hear_sela.data.records import ClipRecord

log = logging.getLogger(__name__)


def _synth_root(data_cfg: DataConfig, out_dir: Path) -> Path:
    return Path(data_cfg.root) if data_cfg.root else out_dir / "corpus"


def data_root_of(data_cfg: DataConfig, out_dir: str | Path) -> Path:
    """The folder the clip paths are relative to in the cache's identity (so a copied run or moved data set keeps
    it): data.root, or the synth corpus's folder."""
    return _synth_root(data_cfg, Path(out_dir)) if data_cfg.source == "synth" else Path(data_cfg.root or ".")


def build_records(data_cfg: DataConfig, out_dir: str | Path) -> list[ClipRecord]:
    """The clip list `data_cfg` describes (writing the synth corpus first if needed)."""
    out_dir = Path(out_dir)
    if data_cfg.source == "synth":
        from hear_sela.data.synth import write_synth_corpus

        s = data_cfg.synth
        return write_synth_corpus(_synth_root(data_cfg, out_dir), s.clips_per_class, s.clip_seconds, s.seed, s.classes)
    if data_cfg.source in ("folder", "fsd50k") and not data_cfg.root:
        raise ConfigError(f"data.source={data_cfg.source} needs data.root (the dataset folder)")
    if data_cfg.source == "folder":
        from hear_sela.data.folder import scan_folder

        root = Path(data_cfg.root)
        labels = data_cfg.labels_csv
        if labels is None and (root / "labels.csv").is_file():
            labels = root / "labels.csv"
        return scan_folder(root, labels)
    if data_cfg.source == "fsd50k":
        from hear_sela.data.fsd50k import load_fsd50k

        return load_fsd50k(data_cfg.root, data_cfg.split, data_cfg.on_bad_file)
    raise ConfigError(f"data.source must be one of 'synth', 'folder', 'fsd50k', got {data_cfg.source!r}")


def cache_dir_of(cfg: Config) -> Path:
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(cfg.train.out_dir) / "cache"


def source_id_of(data_cfg: DataConfig) -> str:
    """What, beyond clip ids and paths, decides the audio: the synth generator's parameters."""
    if data_cfg.source != "synth":
        return data_cfg.source
    from hear_sela.data.synth import SYNTH_VERSION

    s = data_cfg.synth
    return json.dumps({"synth": SYNTH_VERSION, "seed": s.seed, "clips_per_class": s.clips_per_class,
                       "clip_seconds": s.clip_seconds}, sort_keys=True)


def planned_cache(cfg: Config) -> tuple[list[ClipRecord], dict]:
    """The clips `cfg` describes and the identity (with fingerprint) of the cache they would give."""
    d = cfg.data
    records = build_records(d, cfg.train.out_dir)
    return records, cache_identity(records, cfg.frontend, d.segment_seconds, d.hop_seconds, d.min_segment_seconds,
                                   d.pad_short, source_id_of(d), data_root_of(d, cfg.train.out_dir))


def data_change(cfg: Config, fingerprint: str, records: list[ClipRecord], ident: dict) -> str | None:
    """None when the cache `cfg` plans (`ident`, of `records`) is the one of `fingerprint`; else what changed, with
    the files added and removed when the cache directory still holds the manifest of `fingerprint`."""
    if same_cache(fingerprint, ident):
        return None
    old = read_cache_json(cache_dir_of(cfg) / MANIFEST)
    if old is None or old.get("fingerprint") != fingerprint:  # the old clip list is gone: say what we know
        return (f"the clip list or data settings differ (now {len(records)} input clips; {cache_dir_of(cfg)} no "
                "longer holds the checkpoint's cache to compare with)")
    return describe_change(old, ident, manifest_input_paths(old), records)


def prepare_cache(cfg: Config, device: str | torch.device | None = None, progress: bool = True,
                  records: list[ClipRecord] | None = None) -> FeatureCache:
    """Build (or resume, or open) the feature cache `cfg` describes.

    Under torch.distributed only rank 0 builds; the other ranks wait at a barrier and then open the finished cache.
    `device` runs the log-mel (default: CUDA when cfg.train.device allows and one is present, else CPU).
    `records`: the clip list when the caller has it already (`planned_cache`).
    """
    if device is None:  # the training device where there is one; a CUDA run's data read on a CPU machine
        device = dist.resolve_device("auto" if cfg.train.device == "cuda" else cfg.train.device)
    cache_dir = cache_dir_of(cfg)
    d = cfg.data
    if dist.is_initialized() and not dist.is_main():
        dist.barrier()
        return FeatureCache.open(cache_dir)
    try:
        records = records if records is not None else build_records(d, cfg.train.out_dir)
        cache = build_feature_cache(
            records, cfg.frontend, cache_dir, segment_seconds=d.segment_seconds, hop_seconds=d.hop_seconds,
            min_segment_seconds=d.min_segment_seconds, on_bad_file=d.on_bad_file, on_stale=d.on_stale,
            num_workers=d.num_workers, device=device, source_id=source_id_of(d), progress=progress,
            pad_short=d.pad_short, data_root=data_root_of(d, cfg.train.out_dir),
        )
    finally:
        if dist.is_initialized():
            dist.barrier()  # release the waiting ranks even if the build failed (they then fail to open it)
    return cache
