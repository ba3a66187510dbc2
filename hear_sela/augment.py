"""Per-sample spectrogram augmentation on the batch's device: every clip in a batch draws its own crop, gain, mix
partner, resize-crop, fade and masks (the audio SeLa code draws one of each per batch; we deliberately do not).

Chain, in order (each step switchable in `AugmentConfig`):
  random crop of `crop_frames` (raw log-mel) -> random gain (raw log-mel, + 2 ln g) -> normalise with the cache
  statistics -> per view: mixup (log-mixup-exp with a FIFO memory of past inputs, BYOL-A) -> random EQ (a gain
  curve over the mel axis) -> random resize crop (BYOL-A) -> random linear fader (BYOL-A v2) -> SpecAugment masks
  -> normalisation over the batch (BYOL-A's post-norm, over all views together).
All randomness comes from the `torch.Generator` passed in, so a step is reproducible from its seed alone.

Legend: B batch, F mel bins, T frames, M mixup memory slots, V views.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hear_sela.config import AugmentConfig, FrontendConfig
from hear_sela.frontend import normalize

LOG_EPS = torch.finfo(torch.float32).eps  # BYOL-A's log-mixup-exp epsilon
LOG_PER_DB = math.log(10.0) / 10.0  # 1 dB of power in natural-log units (the frontend's log(mel + eps))


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator, device: torch.device
             ) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=device) * (high - low) + low


def random_crop(x: torch.Tensor, frames: int, gen: torch.Generator) -> torch.Tensor:
    """A random window of `frames` frames per sample: (B, F, T) -> (B, F, frames)."""
    b, f, t = x.shape
    if frames > t:
        raise ValueError(f"augment.crop_frames={frames} exceeds the segments' {t} frames; lower crop_frames or "
                         "use longer segments (data.segment_seconds)")
    if frames == t:
        return x
    start = (torch.rand(b, generator=gen, device=x.device) * (t - frames + 1)).long().clamp_(max=t - frames)  # (B,)
    idx = start[:, None] + torch.arange(frames, device=x.device)  # (B, frames)
    return x.gather(2, idx[:, None, :].expand(b, f, frames))


def random_gain(x: torch.Tensor, gain_range: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Amplitude gain g ~ U(range) per sample on a raw log power mel: + 2 ln g. (B, F, T) -> (B, F, T)."""
    g = _uniform((x.shape[0], 1, 1), *gain_range, gen, x.device)
    return x + 2.0 * torch.log(g)


def rrc_params(b: int, f: int, t: int, virtual_scale: tuple[float, float], freq_scale: tuple[float, float],
               time_scale: tuple[float, float], gen: torch.Generator, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """BYOL-A's RandomResizeCrop draws per sample: crop (top i, left j, height h, width w) in canvas pixels, each
    (B,) float holding integers. h = int(U(freq_scale) F) clipped to [1, canvas], offsets uniform integers."""
    canvas_f, canvas_t = int(f * virtual_scale[0]), int(t * virtual_scale[1])
    h = (_uniform((b,), *freq_scale, gen, device) * f).floor().clamp_(1, canvas_f)
    w = (_uniform((b,), *time_scale, gen, device) * t).floor().clamp_(1, canvas_t)
    i = torch.minimum((torch.rand(b, generator=gen, device=device) * (canvas_f - h + 1)).floor(), canvas_f - h)
    j = torch.minimum((torch.rand(b, generator=gen, device=device) * (canvas_t - w + 1)).floor(), canvas_t - w)
    return i, j, h, w


def resize_crop(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                virtual_scale: tuple[float, float]) -> torch.Tensor:
    """Crop (i, j, h, w) (each (B,)) of the zero canvas holding x in its middle, resized back to (F, T) with
    bicubic interpolation (align_corners=True), all samples in one `grid_sample`. (B, F, T) -> (B, F, T)."""
    b, f, t = x.shape
    off_f, off_t = (int(f * virtual_scale[0]) - f) // 2, (int(t * virtual_scale[1]) - t) // 2
    # output pixel p (0..T-1) reads canvas pixel j + p (w-1)/(T-1), i.e. input pixel j - off_t + p (w-1)/(T-1);
    # in align_corners=True normalised coordinates that is an affine map u_in = a u_out + c.
    a_t = (w - 1) / (t - 1)
    c_t = (2 * (j - off_t) + (w - 1)) / (t - 1) - 1
    a_f = (h - 1) / (f - 1)
    c_f = (2 * (i - off_f) + (h - 1)) / (f - 1) - 1
    zero = torch.zeros_like(a_t)
    theta = torch.stack([torch.stack([a_t, zero, c_t], 1), torch.stack([zero, a_f, c_f], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), [b, 1, f, t], align_corners=True)  # (B, F, T, 2)
    return F.grid_sample(x[:, None], grid, mode="bicubic", padding_mode="zeros", align_corners=True)[:, 0]


def random_resize_crop(x: torch.Tensor, virtual_scale: tuple[float, float], freq_scale: tuple[float, float],
                       time_scale: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """BYOL-A's RandomResizeCrop with one draw per sample, batched. (B, F, T) -> (B, F, T).

    The input sits in the middle of a zero canvas `virtual_scale` times its size; a crop of (freq, time) scale
    times the input size (clipped to the canvas) at a random integer offset is resized back to (F, T), bicubic
    with align_corners=True, as the reference. One difference: output pixels next to the crop's edge interpolate
    with the canvas pixels beyond it, where the reference clamps at the crop border.
    """
    b, f, t = x.shape
    if f < 2 or t < 2:
        raise ValueError(f"random resize crop needs at least 2 mel bins and 2 frames, got {(f, t)}")
    i, j, h, w = rrc_params(b, f, t, virtual_scale, freq_scale, time_scale, gen, x.device)
    return resize_crop(x, i, j, h, w, virtual_scale)


def random_linear_fader(x: torch.Tensor, gain: float, gen: torch.Generator) -> torch.Tensor:
    """BYOL-A v2's RandomLinearFader per sample: add a ramp from gain*U(-1,1) to gain*U(-1,1) over time."""
    b, _, t = x.shape
    ends = _uniform((b, 2), -gain, gain, gen, x.device)  # (B, 2) head, tail
    ramp = torch.linspace(0.0, 1.0, t, device=x.device, dtype=x.dtype)  # (T,)
    slope = ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * ramp  # (B, T)
    return x + slope[:, None, :]


def random_eq(x: torch.Tensor, max_db: float, points: int, log_per_db: float, gen: torch.Generator) -> torch.Tensor:
    """A random equaliser per sample: a gain curve over the mel bins, linear between `points` evenly spaced values
    drawn from U(-max_db, max_db) dB, added to the log power; `log_per_db` converts dB to x's units (ln 10 / 10 on
    a raw natural-log power, divided by the normalisation's std after it). (B, F, T) -> (B, F, T)."""
    b, f, _ = x.shape
    knots = _uniform((b, 1, points), -max_db, max_db, gen, x.device)  # (B, 1, points) dB
    curve = F.interpolate(knots, size=f, mode="linear", align_corners=True)  # (B, 1, F)
    return x + (log_per_db * curve).to(x.dtype).transpose(1, 2)


def _band_mask(b: int, size: int, count: int, max_width: int, gen: torch.Generator, device: torch.device
               ) -> torch.Tensor:
    """`count` bands per sample of width U[0, max_width) at a random start, as torchaudio's masking: (B, size)."""
    width = (torch.rand((b, count), generator=gen, device=device) * min(max_width, size)).floor()  # (B, count)
    start = (torch.rand((b, count), generator=gen, device=device) * (size - width)).floor()  # (B, count)
    pos = torch.arange(size, device=device)[None, None, :]  # (1, 1, size)
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (B, count, size)
    return inside.any(dim=1)


def spec_augment(x: torch.Tensor, time_masks: int, time_width: int, freq_masks: int, freq_width: int,
                 gen: torch.Generator) -> torch.Tensor:
    """SpecAugment time and frequency masks drawn per sample, filled with 0 (the mean after normalisation)."""
    b, f, t = x.shape
    mask = torch.zeros((b, f, t), dtype=torch.bool, device=x.device)
    if time_masks > 0:
        mask |= _band_mask(b, t, time_masks, time_width, gen, x.device)[:, None, :]
    if freq_masks > 0:
        mask |= _band_mask(b, f, freq_masks, freq_width, gen, x.device)[:, :, None]
    return x.masked_fill(mask, 0.0)


def normalize_batch(x: torch.Tensor) -> torch.Tensor:
    """BYOL-A's post-norm: standardise by the mean and std of the whole batch (all views together)."""
    return (x - x.mean()) / x.std().clamp_min(1e-8)


class MixupMemory(nn.Module):
    """BYOL-A's mixup: x' = log((1 - a) e^x + a e^z + eps), a ~ ratio * U(0, 1) per sample, z a random past input
    from a FIFO memory of the last `size` inputs (none mixed while the memory is empty). The un-mixed inputs then
    enter the memory. size = 0 mixes with the batch in reverse order instead (the audio SeLa code's flipped-batch
    mixing). The memory is saved in checkpoints (`get_extra_state`), so a resumed run mixes exactly as before.
    """

    def __init__(self, ratio: float, size: int):
        super().__init__()
        self.ratio, self.size = ratio, size
        self.memory: torch.Tensor | None = None  # (M, F, T) ring buffer, allocated at the first batch
        self.filled = 0  # entries in use
        self.next = 0  # ring position of the next write

    def forward(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:  # (B, F, T) -> (B, F, T)
        b = x.shape[0]
        alpha = torch.rand((b, 1, 1), generator=gen, device=x.device) * self.ratio  # (B, 1, 1)
        if self.size == 0:
            partner = x.flip(0)
            return torch.log((1 - alpha) * x.exp() + alpha * partner.exp() + LOG_EPS)
        if self.memory is None or self.memory.shape[1:] != x.shape[1:] or self.memory.device != x.device:
            self._allocate(x)
        out = x
        if self.filled > 0:
            pick = (torch.rand(b, generator=gen, device=x.device) * self.filled).long().clamp_(max=self.filled - 1)
            partner = self.memory[pick]  # (B, F, T)
            out = torch.log((1 - alpha) * x.exp() + alpha * partner.exp() + LOG_EPS)
        self._push(x.detach())
        return out

    def _allocate(self, x: torch.Tensor) -> None:
        old = self.memory
        self.memory = torch.zeros((self.size, *x.shape[1:]), dtype=torch.float32, device=x.device)
        if old is not None and old.shape[1:] == x.shape[1:]:
            self.memory.copy_(old)  # moved across devices (resume on another device): keep the content
        else:
            self.filled, self.next = 0, 0

    def _push(self, x: torch.Tensor) -> None:
        x = x[-self.size:]  # more inputs than slots: only the newest survive
        slots = (self.next + torch.arange(x.shape[0], device=x.device)) % self.size
        self.memory[slots] = x.float()
        self.next = (self.next + x.shape[0]) % self.size
        self.filled = min(self.filled + x.shape[0], self.size)

    def ordered(self) -> torch.Tensor:
        """The memory's entries, oldest first: (filled, F, T) (for tests and inspection)."""
        if self.memory is None or self.filled == 0:
            return torch.zeros(0)
        start = (self.next - self.filled) % self.size
        return self.memory[(start + torch.arange(self.filled, device=self.memory.device)) % self.size]

    def get_extra_state(self) -> dict[str, Any]:
        return {"memory": None if self.memory is None else self.memory.detach().cpu().clone(), "filled": self.filled,
                "next": self.next}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.memory = None if state["memory"] is None else state["memory"].clone()
        self.filled, self.next = int(state["filled"]), int(state["next"])

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, size={self.size}"

    @staticmethod
    def empty_state() -> dict[str, Any]:
        """The extra state of an empty memory (what a checkpoint without the memory stores)."""
        return {"memory": None, "filled": 0, "next": 0}


class Augment(nn.Module):
    """The whole chain. `prepare` (crop, gain, normalise) runs once per clip; `view` once per view, so BYOL-A's two
    views share a crop, as in BYOL-A. `forward(x, gen, views)` does both plus the post-norm."""

    def __init__(self, cfg: AugmentConfig, frontend: FrontendConfig | None = None):
        super().__init__()
        self.cfg = cfg
        self.frontend = frontend or FrontendConfig()  # its statistics normalise the crops (none set: identity)
        self.mixup = MixupMemory(cfg.mixup_ratio, cfg.mixup_memory) if cfg.mixup else None

    def prepare(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Raw cached log-mel (B, F, T_seg) -> normalised crop (B, F, crop_frames), float32."""
        cfg = self.cfg
        x = random_crop(x.float(), cfg.crop_frames, gen) if cfg.crop_frames > 0 else x.float()
        if cfg.random_gain:
            x = random_gain(x, cfg.gain_range, gen)
        return normalize(x, self.frontend)

    def view(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One augmented view of a prepared batch: (B, F, T) -> (B, F, T)."""
        cfg = self.cfg
        if self.mixup is not None:
            x = self.mixup(x, gen)
        if cfg.random_eq:
            x = random_eq(x, cfg.eq_db, cfg.eq_points, LOG_PER_DB / (self.frontend.norm_std or 1.0), gen)
        if cfg.rrc:
            x = random_resize_crop(x, cfg.rrc_virtual_scale, cfg.rrc_freq_scale, cfg.rrc_time_scale, gen)
        if cfg.linear_fader:
            x = random_linear_fader(x, cfg.fader_gain, gen)
        if cfg.specaugment:
            x = spec_augment(x, cfg.time_masks, cfg.time_mask_width, cfg.freq_masks, cfg.freq_mask_width, gen)
        return x

    @torch.no_grad()
    def forward(self, x: torch.Tensor, gen: torch.Generator, views: int = 1) -> torch.Tensor:
        """Raw cached log-mel (B, F, T_seg) -> augmented views (V, B, F, crop_frames)."""
        base = self.prepare(x, gen)
        out = torch.stack([self.view(base, gen) for _ in range(views)])  # (V, B, F, T)
        return normalize_batch(out) if self.cfg.post_norm else out


def augment_state(augment: Augment, with_memory: bool = True) -> dict[str, Any]:
    """`augment.state_dict()`, optionally without the mixup memory (for checkpoints that need no exact resume: the
    memory is most of a small model's checkpoint, 50 MB of 51 at BYOL-A's 2048 x 64 x 96 float32)."""
    state = augment.state_dict()
    if not with_memory and augment.mixup is not None:
        state["mixup._extra_state"] = MixupMemory.empty_state()
    return state


def build_augment(cfg: AugmentConfig, frontend: FrontendConfig | None = None) -> Augment:
    """The augmentation module a config describes; its state_dict carries the mixup memory."""
    for name in ("rrc_virtual_scale", "rrc_freq_scale", "rrc_time_scale", "gain_range"):
        low, high = getattr(cfg, name)
        if not (0 < low <= high) or not math.isfinite(high):
            raise ValueError(f"augment.{name}={getattr(cfg, name)} must be 0 < low <= high")
    if cfg.mixup and not 0 <= cfg.mixup_ratio <= 1:
        raise ValueError(f"augment.mixup_ratio={cfg.mixup_ratio} must lie in [0, 1]")
    if cfg.mixup_memory < 0:
        raise ValueError(f"augment.mixup_memory={cfg.mixup_memory} must be >= 0 (0 = mix with the flipped batch)")
    return Augment(cfg, frontend)
