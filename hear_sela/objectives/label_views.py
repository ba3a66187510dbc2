"""Multi-view labels and decorrelated head groups for the label update (SeLaVi, facebookresearch/selavi).

SeLaVi labels each clip from several views at once: one Sinkhorn solve per head on P = Π_v softmax(z_v), i.e. on
the sum of the views' log-softmaxes, the label then shared by every view; and with `--ind_groups G` it shuffles the
heads into G groups, each labelled from its own pass over the data with fresh augmentation (shared notes
seed003_selavi.md Part 2). Here:
- `sela.views = V`: V passes per group, each a random draw of `sela.view_kind` ("crops": a time crop of
  augment.crop_frames frames, the training crop length; "augment": the training augmentation chain without mixup,
  which would put another clip's evidence into this clip's label, and without the batch post-norm, which the
  whole-segment pass has not either). The heads get Σ_v log_softmax(z_v) as their logits with λ unchanged, so
  Q ∝ (Π_v p_v)^λ. SeLaVi's code raises its two-modality product to λ/2; sela.lamb = λ/V gives that.
- `sela.head_groups = G`: a permutation of the heads drawn at each update, group g = order[g::G]; each group's V
  views are fresh draws.
- V = 1 and G = 1 is SeLa's pass (whole segments, no augmentation), which `label_update` runs unchanged.
Every draw comes from a generator seeded by (train.seed, label update index, group, view), so a resumed run redraws
the same views. Crop positions are drawn per segment on the CPU, so they do not depend on the batch size, the
sharding or the device; augmentation draws are made per batch (seeded by the batch's first segment), as training's.
The training step needs nothing new: its random crop of a segment is one more view, and the store's label is the
segment's, so it applies whichever crop or augmentation is drawn.

Legend: H heads (H_g in a group), G groups, V views, N segments (N_r on this rank), K clusters, D embedding
dimension, F mel bins, T frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from hear_sela import distributed as dist
from hear_sela.augment import build_augment
from hear_sela.config import SelaConfig
from hear_sela.embed import alive_dims, embed_segments
from hear_sela.frontend import normalize
from hear_sela.objectives.base import RunContext
from hear_sela.objectives.heads import MultiHead

View = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (B,) global indices, raw (B, F, T) -> (B, F, T')


def is_multi_view(cfg: SelaConfig) -> bool:
    """Whether the label update embeds drawn views (SeLaVi) rather than SeLa's one pass over whole segments."""
    return cfg.views > 1 or cfg.head_groups > 1


def draw_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (train.seed, update index, group, view, ...), distinct per key tuple."""
    state = np.random.SeedSequence([k % (1 << 64) for k in keys]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def head_groups(heads: int, groups: int, gen: torch.Generator) -> list[torch.Tensor]:
    """SeLaVi's decorrelated heads: a random order of the H heads, group g = order[g::G], each sorted: G tensors
    (H_g,) int64. One group holds every head in order (no draw)."""
    if groups == 1:
        return [torch.arange(heads)]
    order = torch.randperm(heads, generator=gen)
    return [order[g::groups].sort().values for g in range(groups)]


def combine_views(view_logits: list[torch.Tensor]) -> torch.Tensor:
    """The solver's logits for V views of each sample: Σ_v log_softmax_K(z_v), whose softmax^λ is (Π_v p_v)^λ up
    to a per-sample factor (absorbed by the solver). (H, N, K) each -> (H, N, K) float32; one view passes as is."""
    if len(view_logits) == 1:
        return view_logits[0]
    out = torch.log_softmax(view_logits[0].float(), dim=-1)
    for z in view_logits[1:]:
        out += torch.log_softmax(z.float(), dim=-1)
    return out


def crop_view(frames: int, n_segments: int, seg_frames: int, run: RunContext, seed: int) -> View:
    """A random time crop of `frames` frames of every segment, normalised by the frontend. The N start positions
    are drawn at once on the CPU, so a segment's crop does not depend on batching, sharding or device."""
    if not 0 < frames < seg_frames:
        raise ValueError(f"sela.view_kind=crops needs 0 < augment.crop_frames < the segments' {seg_frames} frames "
                         f"(got {frames}): every view of a segment would be the same input")
    starts = torch.randint(0, seg_frames - frames + 1, (n_segments,), generator=torch.Generator().manual_seed(seed))
    offsets = torch.arange(frames, device=run.device)

    def view(indices: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:  # (B,), (B, F, T) -> (B, F, frames)
        cols = starts[indices].to(seg.device)[:, None] + offsets  # (B, frames)
        x = seg.float().gather(2, cols[:, None, :].expand(-1, seg.shape[1], -1))
        return normalize(x, run.cfg.frontend)

    return view


def augment_view(run: RunContext, seed: int) -> View:
    """A draw of the training augmentation chain (crop, gain, normalisation, resize-crop, fader, masks), without
    mixup and post-norm, seeded per batch by (seed, the batch's first segment)."""
    chain = build_augment(dataclasses.replace(run.cfg.augment, mixup=False, post_norm=False), run.cfg.frontend)
    gen = torch.Generator(device=run.device)

    def view(indices: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:  # (B,), (B, F, T) -> (B, F, T')
        gen.manual_seed(draw_seed(seed, int(indices[0])))
        return chain(seg, gen, 1)[0]

    return view


def make_view(run: RunContext, seed: int) -> View:
    """The view `sela.view_kind` describes, its randomness from `seed`."""
    if run.cfg.sela.view_kind == "crops":
        return crop_view(run.cfg.augment.crop_frames, len(run.features), run.features.shape[-1], run, seed)
    return augment_view(run, seed)


def multi_view_logits(encoder: nn.Module, heads: MultiHead, run: RunContext, update: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The label update's solver logits for V views and G head groups: each group's heads on the combined
    (`combine_views`) logits of V fresh views. Returns logits (H, N_r, K), the alive flags (D,) over all passes
    and each view's own argmax (V, H, N_r) (for the views' agreement term, confidence.view_agreement).
    `update`: the index of this label update (seeds the draws with train.seed)."""
    cfg, seed = run.cfg.sela, run.cfg.train.seed
    start, stop = dist.shard_range(len(run.features))
    out = torch.empty(heads.heads, stop - start, heads.clusters, device=run.device)
    view_argmax = torch.empty(cfg.views, heads.heads, stop - start, dtype=torch.long, device=run.device)
    alive = None
    groups = head_groups(heads.heads, cfg.head_groups, torch.Generator().manual_seed(draw_seed(seed, update)))
    for g, index in enumerate(groups):
        per_view = []
        for v in range(cfg.views):
            emb = embed_segments(encoder, run.features, run.cfg.frontend, cfg.update_batch_size, run.device,
                                 amp=run.amp, channels_last=run.channels_last, num_workers=run.cfg.data.num_workers,
                                 progress=run.progress, transform=make_view(run, draw_seed(seed, update, g, v))
                                 )  # (N_r, D)
            alive = alive_dims(emb) if alive is None else alive | alive_dims(emb)
            per_view.append(heads.logits(emb, cfg.chunk_size, index.to(emb.device)))  # (H_g, N_r, K)
            view_argmax[v, index.to(out.device)] = per_view[-1].argmax(-1).to(out.device)
            del emb
        out[index.to(out.device)] = combine_views(per_view)
    return out, alive, view_argmax

