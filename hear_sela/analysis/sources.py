"""Where the analysis gets its inputs: a training checkpoint's label store (or labels computed afresh by its heads),
the feature cache's segments and clips, reference labels (the clips' own or a CSV), and clip embeddings.

Legend: H heads, S segments, C clips, K clusters, F mel bins, T frames, D embedding dimension.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hear_sela.analysis.core import AnalysisInputs
from hear_sela.config import Config, FrontendConfig, load_yaml, merge_dicts
from hear_sela.data.records import match_label_rows, read_labels_table
from hear_sela.distributed import resolve_device
from hear_sela.embed import embed_segments
from hear_sela.encoders import build_encoder
from hear_sela.objectives.heads import MultiHead

log = logging.getLogger("hear_sela.analysis")

def clip_mean(values: np.ndarray, segment_clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean over each clip's segments. values (S, D), segment_clip (S,) -> (C, D); zeros for clips without one."""
    sums = np.zeros((n_clips, values.shape[1]), dtype=np.float64)
    np.add.at(sums, segment_clip, values)
    counts = np.bincount(segment_clip, minlength=n_clips)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def iterate_segments(features: np.ndarray, batch_size: int):
    """Batches of cached segments as float32 tensors: features (S, F, T) -> yields (B, F, T)."""
    for i in range(0, len(features), batch_size):
        yield torch.from_numpy(np.asarray(features[i:i + batch_size], dtype=np.float32))


def segment_embeddings(encoder: nn.Module, features: np.ndarray, frontend: FrontendConfig, batch_size: int,
                       device: torch.device) -> np.ndarray:
    """The label update's embedding (`embed.embed_segments`) of every cached segment: (S, F, T) -> (S, D) float32."""
    return embed_segments(encoder.to(device), features, frontend, batch_size, device).cpu().numpy()


def mean_log_mel(features: np.ndarray, frames: np.ndarray | None = None, batch_size: int = 512) -> np.ndarray:
    """Time-averaged log-mel of every segment over its real frames (zero padding left out when `frames` (S,), the
    count of real frames per segment, is given): features (S, F, T) -> (S, F) float32."""
    out = []
    for i, x in enumerate(iterate_segments(features, batch_size)):  # (B, F, T)
        if frames is None:
            out.append(x.mean(dim=2).numpy())
            continue
        n = torch.from_numpy(np.asarray(frames[i * batch_size:i * batch_size + len(x)], dtype=np.int64))
        n = n.clamp(1, x.shape[2])  # (B,)
        mask = (torch.arange(x.shape[2])[None, :] < n[:, None]).float()  # (B, T)
        out.append(((x * mask[:, None, :]).sum(dim=2) / n[:, None]).numpy())
    return np.concatenate(out)


@torch.no_grad()
def head_labels(embeddings: np.ndarray, heads: MultiHead, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Fresh labels from the heads: embeddings (S, D) -> (labels (H, S) argmax of the logits, confidences (H, S)
    max of the softmax).

    Plain argmax, not a Sinkhorn solve: on data the heads were not trained on this is their classification; the
    stored labels of the training data are the solver's."""
    logits = heads.logits(torch.from_numpy(np.asarray(embeddings, dtype=np.float32)), chunk)  # (H, S, K)
    conf, lab = torch.softmax(logits, dim=-1).max(dim=-1)  # (H, S)
    return lab.numpy().astype(np.int64), conf.numpy().astype(np.float64)


def data_config(cfg: Config, data: Sequence[str]) -> tuple[Config, bool]:
    """The checkpoint's config with its data section replaced by `data` items, applied in order: a recipe file
    (its `data:` section) or a `data.key=value` override. Returns (config, whether the data changed: the cache's
    place and build settings alone do not change them). The frontend and model stay the checkpoint's: the encoder
    only understands the features it was trained on."""
    from hear_sela.config import ConfigError, config_from_dict, config_to_dict, parse_override

    base = config_to_dict(cfg)
    for item in data:
        if "=" in item:
            if not item.startswith("data."):
                raise ConfigError(f"--data {item!r}: only data.* keys can be overridden for the analysis")
            patch = parse_override(item)["data"]
            base["data"] = merge_dicts(base["data"], patch)
        else:
            path = Path(item)
            if not path.is_file():
                raise ConfigError(f"--data {item!r}: neither a key=value override nor an existing recipe file")
            recipe = load_yaml(path.read_text(), str(path)) or {}
            if "data" not in recipe:
                raise ConfigError(f"{path}: has no data section to analyse")
            base["data"] = merge_dicts(config_to_dict(Config())["data"], recipe["data"])
    new = config_from_dict(base, source="checkpoint config + --data")
    return new, _contents(config_to_dict(new)["data"]) != _contents(config_to_dict(cfg)["data"])


# where the cache lives and how it is built, not which clips and segments it holds: a copy of the training cache
# elsewhere (data.cache_dir=COPY) is still the training data, and the label store still applies to it
_CACHE_HANDLING = ("cache_dir", "on_stale", "num_workers")


def _contents(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _CACHE_HANDLING}


def inputs_from_checkpoint(checkpoint: str | Path, data: Sequence[str] = (), labels_csv: str | Path | None = None,
                           relabel: bool = False, compare: dict[str, str] | None = None, batch_size: int = 256,
                           device: str = "auto", cache: Any = None, head: int | None = None) -> AnalysisInputs:
    """Everything `analyze` needs from a SeLa training checkpoint and its (or other) data.

    Labels: the checkpoint's label store when the data are its training data (same cache, same segment count) and
    `relabel` is off; otherwise the heads' argmax over the data's segments. Embeddings for the baselines and the map:
    the checkpoint's encoder, the same architecture freshly initialised (seed train.seed), mean log-mel, and each
    `compare` checkpoint's encoder (name -> path); without reference labels only the checkpoint's (the baselines
    are scored against labels). `cache`: an open FeatureCache of the data (default: built or opened from the data
    config, as training does). Every input (labels CSV, `compare` checkpoints, `head`) is checked before the first
    segment is embedded.
    """
    from hear_sela.analysis.core import check_head
    from hear_sela.checkpoint import CheckpointError, load_encoder_bundle
    from hear_sela.training.state import read_checkpoint

    checkpoint = Path(checkpoint)
    ckpt = read_checkpoint(checkpoint)
    if ckpt.objective != "sela":
        raise CheckpointError(f"{checkpoint}: no SeLa heads and label store in this checkpoint (a BYOL-A run?); "
                         "analyse a SeLa checkpoint")
    cfg = ckpt.config
    objective = ckpt.build_objective()
    check_head(head, int(objective.net.heads.heads))
    table = read_labels_table(labels_csv) if labels_csv else None
    others = {name: load_encoder_bundle(path) for name, path in (compare or {}).items()}
    cfg_data, changed = data_config(cfg, data)
    if cache is None:
        from hear_sela.data.prepare import prepare_cache

        cache = prepare_cache(cfg_data)
    vocabulary: dict[str, str] = {}
    if table is not None:
        clip_labels, vocabulary = match_label_rows(cache.clips, table.labels, labels_csv), dict(table.mids)
    else:
        clip_labels = [tuple(c.labels) for c in cache.clips]
        if cfg_data.data.source == "fsd50k":  # FSD50K's own label -> mid table, for the ontology mapping
            from hear_sela.data.fsd50k import load_vocabulary

            vocabulary = {e.label: e.mid for e in load_vocabulary(cfg_data.data.root)}
    labelled = any(clip_labels)  # without labels, no baseline is scored: only the checkpoint's encoder is needed
    dev = resolve_device(device, "--device")
    features = cache.features  # (S, F, T) un-normalised log-mel
    log.info("embedding %d segments with the checkpoint's encoder", len(cache))
    seg_emb = segment_embeddings(objective.encoder, features, cfg.frontend, batch_size, dev)  # (S, D)
    store = ckpt.label_store
    if not relabel and not changed and tuple(store.labels.shape[1:]) == (len(cache),):
        labels, conf = store.labels.numpy().astype(np.int64), store.confidences.numpy().astype(np.float64)
        source = f"{checkpoint} (label store, {store.updates} updates)"
    else:
        labels, conf = head_labels(seg_emb, objective.net.heads.cpu())
        source = f"{checkpoint} (heads' argmax over {cfg_data.data.source} data)"
    seg_clip = np.asarray(cache.segment_clip, dtype=np.int64)
    n_clips = len(cache.clips)
    clip_ids = [c.clip_id for c in cache.clips]
    embeddings = {"trained encoder": clip_mean(seg_emb, seg_clip, n_clips)}
    if labelled:
        torch.manual_seed(cfg.train.seed)
        untrained = build_encoder(cfg)
        log.info("embedding with the untrained encoder")
        embeddings["untrained encoder"] = clip_mean(
            segment_embeddings(untrained, features, cfg.frontend, batch_size, dev), seg_clip, n_clips)
        frames = getattr(cache, "segment_frames", None)
        embeddings["mean log-mel"] = clip_mean(mean_log_mel(features, frames), seg_clip, n_clips)
        for name, other in others.items():
            log.info("embedding with %s (%s)", name, compare[name])
            embeddings[f"{name} encoder"] = clip_mean(
                segment_embeddings(other.encoder, features, other.config.frontend, batch_size, dev), seg_clip,
                n_clips)
    manifest = getattr(cache, "manifest", {})  # what the cache left out, for the report
    return AnalysisInputs(labels=labels, confidences=conf, n_clusters=int(objective.net.heads.clusters),
                          segment_clip=seg_clip, segment_start=np.asarray(cache.segment_start, dtype=np.float64),
                          clip_ids=clip_ids, clip_labels=clip_labels, embeddings=embeddings,
                          map_embedding="trained encoder", vocabulary=vocabulary or None, source=source,
                          skipped_files=list(manifest.get("bad_files", [])),
                          too_short=list(manifest.get("too_short", [])),
                          min_segment_seconds=manifest.get("segment", {}).get("min_segment_seconds"),
                          cache_dir=str(Path(cache.root).resolve()))
