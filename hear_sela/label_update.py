"""The SeLa label update: encoder in eval, no augmentation, every cached segment in full (normalised with the cache
statistics), logits of all heads, then the Sinkhorn solver; the new labels replace the store.

Under DDP each rank embeds its own contiguous shard (`distributed.shard_range`, no sampler padding, so no segment
is counted twice), passes its rows to the sharded solver (which exchanges only O(H K) numbers per iteration), and
the labels are then gathered so every rank holds the whole store. Result: the same labels as one process.

Legend: H heads, N segments (N_r on this rank), K clusters, D embedding dimension, F mel bins, T frames.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hear_sela import distributed as dist
from hear_sela.config import SelaConfig
from hear_sela.sela import LabelStore, MultiHead
from hear_sela.train_data import SegmentDataset, ShardBatches, make_loader

log = logging.getLogger("hear_sela.label_update")

LOGITS_BUDGET_BYTES = 4 << 30  # above this the solver recomputes logits from the embeddings (matrix-free)


@torch.no_grad()
def shard_embeddings(encoder: nn.Module, dataset: SegmentDataset, norm: tuple[float | None, float | None],
                     batch_size: int, device: torch.device, amp: bool = False, channels_last: bool = False,
                     num_workers: int = 0, progress: bool = False) -> torch.Tensor:
    """Clip embeddings of this rank's shard of full, un-augmented, normalised segments: (N_r, D) float32."""
    was_training = encoder.training
    encoder.eval()
    batches = ShardBatches(len(dataset), batch_size)
    loader = make_loader(dataset, batches, num_workers, pin_memory=device.type == "cuda")
    mean, std = norm
    out = []
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="label update: embed", leave=False, dynamic_ncols=True)
    for _, seg in loader:  # (B,) , (B, F, T) float16
        x = seg.to(device, non_blocking=True).float()
        if mean is not None and std is not None:
            x = (x - mean) / std
        x = x.unsqueeze(1)  # (B, 1, F, T)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out.append(encoder(x).float())  # (B, D)
    encoder.train(was_training)
    if not out:
        return torch.zeros(0, getattr(encoder, "embed_dim", 0), device=device)
    return torch.cat(out)


@torch.no_grad()
def head_logits(heads: MultiHead, emb: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Logits of every head, dropout off: emb (N_r, D) -> (H, N_r, K) float32, in chunks of rows."""
    w, b = heads.weight.float(), heads.bias.float()  # (H, K, D), (H, K)
    out = torch.empty(w.shape[0], emb.shape[0], w.shape[1], device=emb.device)
    for i in range(0, emb.shape[0], chunk):
        out[:, i:i + chunk] = torch.einsum("nd,hkd->hnk", emb[i:i + chunk], w) + b[:, None, :]
    return out


@torch.no_grad()
def cluster_mass(heads: MultiHead, emb: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """SeLaVi's current cluster mass: softmax summed over all ranks' segments, emb (N_r, D) -> (H, K) float64."""
    mass = torch.zeros(heads.heads, heads.clusters, dtype=torch.float64, device=emb.device)
    for i in range(0, emb.shape[0], chunk):
        mass += torch.softmax(head_logits(heads, emb[i:i + chunk]), dim=-1).sum(1, dtype=torch.float64)
    return dist.all_reduce(mass, "sum")


def load_marginals(cfg: SelaConfig) -> torch.Tensor | None:
    """A prior file's cluster marginals, (K,) or (H, K) normalised; None for 'uniform' and 'gauss' (the Gaussian
    sizes are drawn per update from the current cluster mass, see `update_labels`)."""
    if cfg.marginals in ("uniform", "gauss"):
        return None
    try:
        prior = torch.from_numpy(np.load(cfg.marginals)).double()
    except (OSError, ValueError) as e:
        raise ValueError(f"sela.marginals={cfg.marginals!r} is neither 'uniform', 'gauss' nor a readable .npy "
                         f"file ({e})") from None
    if prior.ndim not in (1, 2) or prior.shape[-1] != cfg.clusters or (prior.ndim == 2 and prior.shape[0] !=
                                                                         cfg.heads) or not (prior >= 0).all():
        raise ValueError(f"{cfg.marginals}: marginals of shape {tuple(prior.shape)} must be (K,) or (H, K) with "
                         f"K = sela.clusters = {cfg.clusters}, H = sela.heads = {cfg.heads}, entries >= 0")
    return prior / prior.sum(-1, keepdim=True)


def solver_dtype(cfg: SelaConfig, n_total: int) -> torch.dtype:
    """float32 unless sela.tol lies near float32's noise floor of SeLa's error (about N * 1.2e-7), e.g. the audio
    SeLa code's 1e-4 at FSD50K size; then float64."""
    if cfg.solver_dtype == "auto":
        return torch.float64 if cfg.tol < 4 * n_total * torch.finfo(torch.float32).eps else torch.float32
    if cfg.solver_dtype in ("float32", "float64"):
        return getattr(torch, cfg.solver_dtype)
    raise ValueError(f"sela.solver_dtype must be auto, float32 or float64, got {cfg.solver_dtype!r}")


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information of two labelings (N,) int >= 0, arithmetic normalisation (sklearn's default):
    MI / mean(H(a), H(b)); 1 when neither splits the data. Contingency counts by bincount, so no sklearn import."""
    n = len(a)
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    ka, kb = int(a.max(initial=-1)) + 1, int(b.max(initial=-1)) + 1
    if ka == kb and ka <= 1:
        return 1.0
    joint = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb) / n  # (Ka, Kb) joint distribution
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum())
    if mi <= 0.0:
        return 0.0
    entropy = (lambda p: float(-(p[p > 0] * np.log(p[p > 0])).sum()))
    return mi / ((entropy(pa) + entropy(pb)) / 2)


def label_change_stats(old: torch.Tensor, new: torch.Tensor, clusters: int) -> dict[str, float]:
    """Between two labelings (H, N): fraction changed, cluster-size min/max and NMI, over heads."""
    old_np, new_np = old.cpu().numpy(), new.cpu().numpy()
    sizes = np.stack([np.bincount(h, minlength=clusters) for h in new_np])  # (H, K)
    nmi_ = [nmi(a, b) for a, b in zip(old_np, new_np)]
    return {"changed": float((old_np != new_np).mean()), "size_min": int(sizes.min()), "size_max": int(sizes.max()),
            "nmi_prev": float(np.mean(nmi_)), "empty_clusters": float((sizes == 0).sum(1).mean())}


def update_labels(encoder: nn.Module, heads: MultiHead, dataset: SegmentDataset, store: LabelStore, cfg: SelaConfig,
                  norm: tuple[float | None, float | None], device: torch.device, batch_size: int, amp: bool = False,
                  channels_last: bool = False, num_workers: int = 0, progress: bool = False,
                  seed: int = 0) -> dict[str, float]:
    """One label update into `store` (every rank holds the full result). Returns the logged metrics."""
    from hear_sela.sinkhorn import Duals, gaussian_marginals, solve_labels

    t0 = time.perf_counter()
    heads_mode = heads.training
    heads.eval()
    emb = shard_embeddings(encoder, dataset, norm, batch_size, device, amp, channels_last, num_workers, progress)
    t_embed = time.perf_counter() - t0
    n_total = len(dataset)
    # stored logits (H, N_r, K) while they fit the budget, else the solver's matrix-free mode on the embeddings
    stored = heads.heads * emb.shape[0] * heads.clusters * 4 <= LOGITS_BUDGET_BYTES
    logits = head_logits(heads, emb, cfg.chunk_size) if stored else None  # (H, N_r, K)
    marginals = load_marginals(cfg)
    if cfg.marginals == "gauss":  # SeLaVi: sizes drawn afresh each update, same draw on all ranks and under resume
        gen = torch.Generator().manual_seed(seed * 1_000_003 + store.updates)
        marginals = gaussian_marginals(cluster_mass(heads, emb, cfg.chunk_size), n_total, cfg.gauss_sd, gen)
    warm = Duals(store.duals["log_r"], store.duals["lamb"]) if cfg.warm_start and store.duals else None
    inputs = {"logits": logits} if stored else {"features": emb, "weights": heads.weight.detach().float(),
                                                 "bias": heads.bias.detach().float()}
    result = solve_labels(**inputs, lamb=cfg.lamb, marginals=marginals, tol=cfg.tol, check_every=cfg.check_every,
                          max_iters=cfg.max_iters, warm_start=warm, dtype=solver_dtype(cfg, n_total))
    heads.train(heads_mode)
    del logits, emb, inputs
    labels = dist.all_gather_cat(result.labels.to(device), dim=1)  # (H, N)
    conf = dist.all_gather_cat(result.confidences.to(device).float(), dim=1)  # (H, N)
    stats = label_change_stats(store.labels, labels, cfg.clusters) if dist.is_main() else {}
    store.labels, store.confidences = labels, conf
    store.duals = {"log_r": result.duals.log_r.cpu(), "lamb": float(result.duals.lamb)}
    store.updates += 1
    stats.update({"update": store.updates, "solver_iterations": float(result.iterations.max()),
                  "solver_iterations_mean": float(result.iterations.float().mean()),
                  "solver_error": float(result.error.max()), "solver_converged": float(result.converged.all()),
                  "solver_seconds": float(result.seconds), "embed_seconds": t_embed,
                  "seconds": time.perf_counter() - t0, "confidence_mean": float(conf.mean())})
    if dist.is_main():
        store.history.append(stats)
        if not bool(result.converged.all()):
            log.warning("label update %d: %d head(s) stopped at the cap of %d iterations (error up to %.3g > tol "
                        "%.3g)", store.updates, int((~result.converged).sum()), cfg.max_iters,
                        float(result.error.max()), cfg.tol)
    return stats


def relabel_checkpoint(path: str | Path, cache_dir: str | Path | None = None, device: str = "auto",
                       solve: bool = True) -> tuple[LabelStore, Any]:
    """A SeLa checkpoint's label store, re-solved from its weights on its feature cache (or as stored, solve=False).
    Runs sharded when started under torchrun. Returns (store, cache)."""
    from hear_sela.checkpoint import build_encoder, load_checkpoint
    from hear_sela.config import config_from_dict
    from hear_sela.data.cache import FeatureCache
    from hear_sela.sela import SelaObjective

    ckpt = load_checkpoint(path)
    if ckpt.get("objective") != "sela":
        raise ValueError(f"{path}: a {ckpt.get('objective')!r} checkpoint has no self-labels; give a SeLa checkpoint")
    cfg = config_from_dict(ckpt["config"], source=str(path))
    cache_dir = cache_dir or ckpt.get("cache_dir") or cfg.data.cache_dir
    if not cache_dir:
        raise ValueError(f"{path}: no feature cache recorded; pass --cache DIR")
    cache = FeatureCache.open(cache_dir)
    if len(cache) != ckpt["label_store"]["labels"].shape[1]:
        raise ValueError(f"{path}: labels for {ckpt['label_store']['labels'].shape[1]} segments, but the cache "
                         f"{cache_dir} holds {len(cache)}")
    dist.init_from_env()
    dev = dist.resolve_device(device, "--device")
    objective = SelaObjective(cfg.sela, build_encoder(cfg), len(cache), cfg.train.seed, dev)
    objective.encoder.load_state_dict(ckpt["encoder"])
    objective.load_state_dict(ckpt)
    if solve:
        stats = update_labels(objective.encoder, objective.net.heads, SegmentDataset(cache.features),
                              objective.store, cfg.sela, (cache.mean, cache.std), dev, cfg.sela.update_batch_size,
                              amp=cfg.train.amp, num_workers=cfg.data.num_workers, progress=dist.is_main(),
                              seed=cfg.train.seed)
        if dist.is_main():
            log.info("re-solved labels: %.1f%% differ from the stored ones, %d solver iterations",
                     100 * stats["changed"], stats["solver_iterations"])
    return objective.store, cache


def write_labels_csv(out: Path, store: LabelStore, cache: Any) -> Path:
    """One row per (head, segment): clip_id, segment_start (s), head, label, confidence. Rank 0 writes."""
    import pandas as pd

    from hear_sela.fileio import atomic_write

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
