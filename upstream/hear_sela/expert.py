"""s3prl upstream for hear_sela encoders: list of 16 kHz waveforms -> {"hidden_states": [(B, T, D), ...]}.

The frontend (`hear_sela.frontend.LogMel`, with the checkpoint's normalisation statistics) and the encoder are the
installed hear_sela package's, loaded with the HEAR module's `hear_sela.hear.load_weights` (a checkpoint or export of
ours, a published BYOL-A .pth, or the embedded default): the same code as training and the HEAR module.
Hidden states, in order: the log-mel, each encoder stage (audiontt: the three conv blocks, flattened over channels
x mel bins as the encoder's own head does; resnet: layer1..layer3, averaged over mel bins as the encoder does),
and the encoder's frame features. s3prl's Featurizer stacks them, so they share one shape:
- time: every state is brought to the encoder's frame rate (hop x time_stride samples: 1280 = 80 ms for audiontt,
  5120 = 320 ms for resnet) by averaging each window of finer frames (valid frames only);
- features: every state is zero-padded to the widest one (e.g. 2048 for audiontt), which keeps it exactly (a
  weighted sum of zero-padded states is a linear map the downstream projector can undo).
Unequal lengths: each clip is padded at its end to `n * rate` samples, where n = round(len / rate) is the frame
count s3prl's Featurizer keeps for it (or ceil(len / rate) with `length_rule="ceil"`, the `s3prl.nn.S3PRLUpstream`
rule), so the kept frames are exactly the clip's frames (at most rate/2 of zeros appended). Its log-mel is computed
alone, and the padded batch runs through `PaddedRunner`, so no frame of another clip's padding reaches its valid
frames; frames past n are zero. Legend: B batch, S samples, F mel bins, T frames, D features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from hear_sela.frontend import LogMel
from hear_sela.hear import load_weights

from .padded import PaddedRunner, Resolution

LENGTH_RULES = ("round", "ceil")
FEATURE_KEYS = ("hidden_states", "last_hidden_state")


def _pool_frames(h: torch.Tensor, valid: torch.Tensor, ratio: int) -> torch.Tensor:
    """(B, D, T) -> (B, D, ceil(T / ratio)): mean of the valid frames in each window of `ratio` frames."""
    mask = (torch.arange(h.shape[-1], device=h.device)[None, :] < valid[:, None]).to(h.dtype)[:, None]  # (B, 1, T)
    if ratio == 1:
        return h * mask
    num = F.avg_pool1d(h * mask, ratio, ratio, ceil_mode=True)
    den = F.avg_pool1d(mask, ratio, ratio, ceil_mode=True)
    return num / den.clamp_min(1e-12)


class UpstreamExpert(nn.Module):
    """hear_sela frontend + encoder as an s3prl upstream.

    Args:
        ckpt: a hear_sela training checkpoint or export (`-k`); None = the embedded default weights.
        model_config: s3prl's `-g`; unused (our checkpoints carry their config), must be None.
        length_rule: frames kept per clip, "round" (run_downstream's Featurizer) or "ceil" (s3prl.nn.S3PRLUpstream).
    """

    def __init__(self, ckpt: str | None = None, model_config: str | None = None, length_rule: str = "round",
                 **kwargs):
        super().__init__()
        if model_config:
            raise ValueError(f"hear_sela takes no model config (-g {model_config}): the checkpoint carries its config")
        unknown = sorted(set(kwargs) - {"refresh"})
        if unknown:
            raise ValueError(f"unknown hear_sela upstream option(s) {unknown}; known: ['length_rule']")
        if length_rule not in LENGTH_RULES:
            raise ValueError(f"length_rule must be one of {LENGTH_RULES}, got {length_rule!r}")
        bundle = load_weights(ckpt)  # the HEAR module's loader: ours, a BYOL-A .pth, or the embedded default
        self.source = bundle.source
        self.length_rule = length_rule
        self.frontend = LogMel(bundle.config.frontend)
        self.encoder = bundle.encoder
        self.sample_rate = bundle.config.frontend.sample_rate
        if self.sample_rate != 16000:
            raise ValueError(f"{self.source}: s3prl feeds 16 kHz audio, the checkpoint's frontend wants "
                             f"{self.sample_rate} Hz")
        self.stride = int(self.encoder.time_stride)
        self.downsample_rate = self.frontend.hop_length * self.stride  # samples per output frame
        stage_modules, self.stage_reduce = self.encoder.intermediate_stages()
        self.runner = PaddedRunner(self.encoder, stage_modules)
        self.eval()
        with torch.no_grad():  # widths of the states, from one probe (frames are exact, so widths are too)
            probe = self._states([torch.zeros(2 * self.downsample_rate)])[0]
        self.state_dims = [h.shape[-1] for h in probe]
        self.hidden_dim = max(self.state_dims)

    def get_downsample_rates(self, key: str) -> int:
        if key not in FEATURE_KEYS:
            raise KeyError(f"hear_sela upstream has no feature {key!r}; it has {FEATURE_KEYS}")
        return self.downsample_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames kept for a clip of `num_samples` samples: s3prl's own rule for this upstream's rate."""
        if self.length_rule == "ceil":
            return -(-num_samples // self.downsample_rate)
        return round(num_samples / self.downsample_rate)

    def _states(self, wavs: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """-> ([(B, T, D_k) per state], kept frames (B,)); frames past each clip's count are zero."""
        rate = self.downsample_rate
        kept = [self.num_frames(len(w)) for w in wavs]
        logmels = [  # each (T_i, F), computed alone: no reflect padding into another clip's zeros
            rearrange(self.frontend(F.pad(w.float(), (0, max(n * rate, rate, len(w)) - len(w)))[None]), "1 f t -> t f")
            for w, n in zip(wavs, kept)
        ]
        device = logmels[0].device
        mel_len = torch.tensor([m.shape[0] for m in logmels], device=device)
        x = rearrange(pad_sequence(logmels, batch_first=True), "b t f -> b 1 f t")  # (B, 1, F, T)
        feats, final, stages = self.runner(x, mel_len)
        if final.stride != self.stride:
            raise RuntimeError(f"{type(self.encoder).__name__}: tracked stride {final.stride} != time_stride "
                               f"{self.stride}; a time-mixing layer is not covered by PaddedRunner")
        kept_t = torch.tensor(kept, device=device)
        if bool((final.valid < kept_t).any()):
            raise RuntimeError(f"encoder gave {final.valid.tolist()} frames, fewer than s3prl keeps {kept}")
        width = max(kept)
        per_stage = [(rearrange(x, "b 1 f t -> b f t"), Resolution(mel_len, 1))]
        for fmap, res in stages:  # (B, C, F', T') -> (B, D_k, T')
            fmap = rearrange(fmap, "b c f t -> b (c f) t") if self.stage_reduce == "flatten" else (
                reduce(fmap, "b c f t -> b c t", "mean"))
            per_stage.append((fmap, res))
        states = [_pool_frames(h, res.valid, self.stride // res.stride) for h, res in per_stage]
        states.append(rearrange(feats, "b t d -> b d t"))
        keep = (torch.arange(width, device=device)[None, :] < kept_t[:, None])[:, :, None]  # (B, T, 1)
        return [rearrange(h[..., :width], "b d t -> b t d") * keep for h in states], kept_t

    def forward(self, wavs: list[torch.Tensor]) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        """wavs: list of (S_i,) 16 kHz waveforms -> {"hidden_states": [(B, T, D)] * L, "last_hidden_state": (B, T, D)},
        T = max_i frames(S_i) (`num_frames`), D = `hidden_dim`."""
        if not wavs:
            raise ValueError("hear_sela upstream got an empty list of waveforms")
        states, _ = self._states([w.reshape(-1) for w in wavs])
        states = [F.pad(h, (0, self.hidden_dim - h.shape[-1])) for h in states]
        return {"hidden_states": states, "last_hidden_state": states[-1]}
