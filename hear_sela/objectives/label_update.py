"""The SeLa label update, a pure function of the networks, the label store and the run (`solve_label_update`,
applied by `LabelStore.apply`): every cached segment embedded by `embed.embed_segments` (encoder in eval, no
augmentation, full segments, normalised by the frontend), logits of all heads, then the Sinkhorn solver; the result
is a `LabelUpdate` (labels, confidences, terms, duals, statistics). With `sela.views` > 1 or `sela.head_groups` > 1
(SeLaVi) the segments are embedded under drawn views instead, per head group, and the solver sees the views'
combined logits (`objectives.label_views`). The rest are pure functions of their inputs (marginals, solver
precision, change statistics, NMI).

Under DDP each rank embeds its own contiguous shard (`distributed.shard_range`, no sampler padding, so no segment
is counted twice), passes its rows to the sharded solver (which exchanges only O(H K) numbers per iteration), and
the labels are then gathered so every rank holds the whole result. Result: the same labels as one process.

Legend: H heads, N segments (N_r on this rank), K clusters, D embedding dimension, F mel bins, T frames.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import combinations

import numpy as np
import torch
from torch import nn

from hear_sela import distributed as dist
from hear_sela.config import GAUSS_REDRAW, GAUSS_SELAVI, NAMED_MARGINALS, SelaConfig
from hear_sela.embed import alive_dims, dead_fraction, embed_segments
from hear_sela.objectives.base import RunContext
from hear_sela.objectives.confidence import update_terms
from hear_sela.objectives.heads import MultiHead
from hear_sela.objectives.label_store import LabelStore, LabelUpdate
from hear_sela.objectives.label_views import is_multi_view, multi_view_logits
from hear_sela.sinkhorn import (
    Duals,
    float32_error_floor,
    gaussian_marginals,
    gaussian_sizes,
    soft_cluster_mass,
    solve_labels,
    sort_to_mass,
    uniform_marginals,
)

LOGITS_BUDGET_BYTES = 4 << 30  # above this the solver recomputes logits from the embeddings (matrix-free)


def load_marginals(cfg: SelaConfig) -> torch.Tensor | None:
    """A prior file's cluster marginals, (K,) or (H, K) normalised; None for the named ones (uniform, and the
    Gaussian sizes sorted to the current cluster mass at each update, see `update_marginals`)."""
    if cfg.marginals in NAMED_MARGINALS:
        return None
    try:
        prior = torch.from_numpy(np.load(cfg.marginals)).double()
    except (OSError, ValueError) as e:
        raise ValueError(f"sela.marginals={cfg.marginals!r} is neither one of {', '.join(NAMED_MARGINALS)} nor a "
                         f"readable .npy file ({e})") from None
    if prior.ndim not in (1, 2) or prior.shape[-1] != cfg.clusters or (prior.ndim == 2 and prior.shape[0] !=
                                                                         cfg.heads):
        raise ValueError(f"{cfg.marginals}: marginals of shape {tuple(prior.shape)} must be (K,) or (H, K) with "
                         f"K = sela.clusters = {cfg.clusters}, H = sela.heads = {cfg.heads}")
    bad = ~(torch.isfinite(prior) & (prior > 0))
    if bool(bad.any()):
        raise ValueError(f"{cfg.marginals}: marginals must be finite and > 0, entries {bad.nonzero().tolist()[:10]} "
                         "are not (a zero target makes the solver's dual of that cluster infinite; use a small "
                         "positive value, or fewer clusters)")
    return prior / prior.sum(-1, keepdim=True)


FLOAT32_TOL_MARGIN = 2.0  # auto: float32 only for tolerances at least this many times its measured error floor


def solver_dtype(cfg: SelaConfig, n_total: int) -> torch.dtype:
    """float32 unless sela.tol is within FLOAT32_TOL_MARGIN of the error floor float32 reaches
    (`sinkhorn.float32_error_floor`, ~N·5e-7), e.g. the audio SeLa code's 1e-4 at any realistic N; then float64.
    SeLa's 0.1 stays float32 up to N ~ 100k."""
    if cfg.solver_dtype == "auto":
        return torch.float64 if cfg.tol < FLOAT32_TOL_MARGIN * float32_error_floor(n_total) else torch.float32
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
    return mi / ((_entropy(pa) + _entropy(pb)) / 2)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def label_change_stats(old: torch.Tensor, new: torch.Tensor, clusters: int) -> dict[str, float]:
    """Between two labelings (H, N): fraction changed, cluster-size min/max and NMI, over heads."""
    old_np, new_np = old.cpu().numpy(), new.cpu().numpy()
    sizes = np.stack([np.bincount(h, minlength=clusters) for h in new_np])  # (H, K)
    nmi_ = [nmi(a, b) for a, b in zip(old_np, new_np)]
    return {"changed": float((old_np != new_np).mean()), "size_min": int(sizes.min()), "size_max": int(sizes.max()),
            "nmi_prev": float(np.mean(nmi_)), "empty_clusters": float((sizes == 0).sum(1).mean())}


def mean_pairwise_nmi(labels: np.ndarray) -> float:
    """Mean NMI over all pairs of heads' labelings (H, N) int: how alike the heads cluster (SeLaVi's decorrelated
    heads, `sela.head_groups`, aim to lower it). NaN for one head."""
    pairs = list(combinations(range(len(labels)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([nmi(labels[a], labels[b]) for a, b in pairs]))


def solve_label_update(encoder: nn.Module, heads: MultiHead, store: LabelStore, run: RunContext) -> LabelUpdate:
    """One label update, computed and returned, not applied: the store is read (its labels for the change
    statistics, its duals for the warm start, its update count for the seeded draws, SeLaVi's size draw) and left
    as it was. Every rank returns the whole result (labels gathered over ranks); statistics are rank 0's."""
    cfg = run.cfg.sela
    t0 = time.perf_counter()
    heads_mode = heads.training
    heads.eval()
    try:
        logits, emb, alive, view_argmax = _update_inputs(encoder, heads, store.updates, run)
    finally:
        heads.train(heads_mode)
    t_embed = time.perf_counter() - t0
    n_total = len(run.features)
    dead = dead_fraction(dist.all_reduce(alive.float()))  # dims 0 for every segment, over all ranks
    # the solver's features are the heads' input (the projector's output, when there is one); lazy for features
    mass_source = logits if logits is not None else heads.logit_chunks(emb, cfg.chunk_size, projected=True)
    marginals, gauss_sizes = update_marginals(cfg, store, n_total, run.cfg.train.seed, mass_source)
    warm = Duals(store.duals["log_r"], store.duals["lamb"]) if cfg.warm_start and store.duals else None
    inputs = {"logits": logits} if logits is not None else {
        "features": emb, "weights": heads.weight.detach().float(), "bias": heads.bias.detach().float()}
    result = solve_labels(**inputs, lamb=cfg.lamb, marginals=marginals, tol=cfg.tol, check_every=cfg.check_every,
                          max_iters=cfg.max_iters, warm_start=warm, dtype=solver_dtype(cfg, n_total))
    del logits, emb, inputs, mass_source
    labels = dist.all_gather_cat(result.labels.to(run.device), dim=1)  # (H, N)
    conf = dist.all_gather_cat(result.confidences.to(run.device).float(), dim=1)  # (H, N)
    stats = label_change_stats(store.labels, labels, cfg.clusters) if dist.is_main() else {}
    if dist.is_main() and cfg.heads > 1:  # (no NaN for one head: it would break equality of logged histories)
        stats["head_nmi"] = mean_pairwise_nmi(labels.cpu().numpy())
    targets = marginals if marginals is not None else uniform_marginals(cfg.heads, cfg.clusters)
    # agreement of the views with the shared label when there are several views, else of the heads (confidence.py);
    # gathered over ranks only when the agreement term is used
    use_views = view_argmax is not None and cfg.views > 1 and "agreement" in cfg.confidence
    view_labels = dist.all_gather_cat(view_argmax, dim=2) if use_views else None  # (V, H, N) or None
    terms, conf_stats = update_terms(cfg.confidence, labels, conf, targets, cfg.confidence_alpha, view_labels)
    stats.update(conf_stats)
    stats.update({"update": store.updates + 1, "solver_iterations": float(result.iterations.max()),
                  "solver_iterations_mean": float(result.iterations.float().mean()),
                  "solver_error": float(result.error.max()), "solver_converged": float(result.converged.all()),
                  "solver_seconds": float(result.seconds), "embed_seconds": t_embed,
                  "seconds": time.perf_counter() - t0, "confidence_mean": float(conf.mean()),
                  "dead_units": dead})
    return LabelUpdate(labels=labels, confidences=conf, terms=terms,
                       duals={"log_r": result.duals.log_r.cpu(), "lamb": float(result.duals.lamb)},
                       gauss_sizes=gauss_sizes, stats=stats)


def _update_inputs(encoder: nn.Module, heads: MultiHead, updates_done: int, run: RunContext
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """What the solver reads: this rank's logits (H, N_r, K) while they fit the budget, else the heads' input
    (N_r, D': the embeddings, or the projector's output) for its matrix-free mode; with the alive-dimension mask
    (D,) and, for SeLaVi's views, each view's argmax (V, H, N_r). Returns (logits | None, heads' input | None, alive,
    view_argmax | None)."""
    cfg = run.cfg.sela
    if is_multi_view(cfg):  # SeLaVi's views and head groups: logits of drawn views, stored (not linear in features)
        start, stop = dist.shard_range(len(run.features))
        if heads.heads * (stop - start) * heads.clusters * 4 > LOGITS_BUDGET_BYTES:
            raise ValueError(f"sela.views={cfg.views} / sela.head_groups={cfg.head_groups}: the label update stores "
                             f"{heads.heads} x {stop - start} x {heads.clusters} logits, over the "
                             f"{LOGITS_BUDGET_BYTES >> 30} GiB budget; use views=1 and head_groups=1 (matrix-free), "
                             "fewer clusters, or more ranks")
        logits, alive, view_argmax = multi_view_logits(encoder, heads, run, updates_done)
        return logits, None, alive, view_argmax
    emb = embed_segments(encoder, run.features, run.cfg.frontend, cfg.update_batch_size, run.device, amp=run.amp,
                         channels_last=run.channels_last, num_workers=run.cfg.data.num_workers,
                         progress=run.progress)  # (N_r, D)
    if heads.heads * emb.shape[0] * heads.clusters * 4 <= LOGITS_BUDGET_BYTES:
        return heads.logits(emb, cfg.chunk_size), None, alive_dims(emb), None
    return None, heads.project_all(emb, cfg.chunk_size), alive_dims(emb), None


def update_marginals(cfg: SelaConfig, store: LabelStore, n_total: int, seed: int,
                     logits: torch.Tensor | Iterable[torch.Tensor]
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The cluster targets of this update: a prior file's (K,) or (H, K), None for uniform, or SeLa(Vi)'s Gaussian
    sizes sorted to the current soft cluster mass (from `logits`: (H, N_r, K) or an iterable of its chunks, read
    only for those). Returns (marginals, the SeLaVi size draw when this update made it, else None)."""
    if cfg.marginals not in GAUSS_REDRAW and cfg.marginals != GAUSS_SELAVI:
        return load_marginals(cfg), None
    # the same draw on all ranks and under resume: seeded by the run's seed and the update count
    gen = torch.Generator().manual_seed(seed * 1_000_003 + store.updates)
    mass = soft_cluster_mass(logits)  # (H, K)
    if cfg.marginals in GAUSS_REDRAW:  # sizes drawn afresh each update
        return gaussian_marginals(mass, n_total, cfg.gauss_sd, gen), None
    # SeLaVi: drawn once per head (kept in the store, so in the checkpoint), re-sorted to the mass
    drawn = None if store.gauss_sizes is not None else gaussian_sizes(cfg.heads, cfg.clusters, n_total,
                                                                      cfg.gauss_sd, gen)
    return sort_to_mass(store.gauss_sizes if drawn is None else drawn, mass), drawn
