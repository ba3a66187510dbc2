"""The HEAR 2021 API over a hear_sela encoder: `load_model`, `get_scene_embeddings`, `get_timestamp_embeddings`.

heareval imports a module by name and calls these three functions (hearbenchmark.com/hear-api.html). The model is
the training frontend (LogMel, with the checkpoint's normalisation statistics) followed by the trained encoder, so
embeddings are computed exactly as during the label update.

- Scene embedding: the encoder's own clip embedding over the whole clip, `forward_head(forward_features(logmel))`.
  Long clips are encoded in chunks that overlap by the encoder's receptive context (found once at load by a
  structural probe), so each chunk's kept frames equal the frames of one pass over the whole clip; the head then
  pools all frames of the clip at once (audiontt's max + mean is over every frame of the clip, never per chunk).
  Chunking therefore changes nothing but memory (up to float rounding).
- Timestamp embedding at t (`timestamp_mode`, default "frames", chosen from the measurements in
  docs/results/timestamp_modes.md): "frames" = the encoder's frame features of that single chunked pass over the clip,
  interpolated at t (hear_frames.py); "frames_context" appends the head's pooling of the frames around t;
  "frames_mel" appends the normalised log-mel frame at t and its delta (PaSST "2lvl+mel"; its default hop is the
  frontend's own, 10 ms, so every timestamp is one log-mel frame); "windows" =
  the clip embedding of a `window_ms` window (default: the training input, i.e. the crop, or the whole segment when
  augment.crop_frames=0) centred on t, silence outside the clip (each second encoded ~19 times, onsets blur);
  "short_windows" = the same with `short_window_ms` windows.
- Timestamps are window centres in ms, t_i = i * hop_ms (default 50 ms; frames_mel: the frontend's hop, 10 ms;
  computed per index, not accumulated), for
  i = 0 .. floor(duration / hop_ms), so the last one is never after the end of the clip.

Legend: N sounds, S samples, F mel bins, T frames, T' encoder frames, W window frames, K timestamps, D embedding.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import nn

from hear_sela.byola_import import load_any_bundle
from hear_sela.checkpoint import EncoderBundle
from hear_sela.config import Config
from hear_sela.frontend import LogMel, deltas
from hear_sela.hear_frames import context_frames_of, interpolate_frames, pooled_context
from hear_sela.heareval_compat import load_triton_beside_tensorflow

HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
DEFAULT_WEIGHTS = "default.safetensors"  # in hear_sela/assets/


# How a timestamp embedding is computed (docs/results/timestamp_modes.md has the measurements behind the default):
#   windows         the clip embedding of a window_ms window centred on t (default: the training crop)
#   short_windows   the same with short_window_ms windows
#   frames          the encoder's own frame features over the whole clip (one chunked pass), interpolated at t
#   frames_context  frames, concatenated with the encoder head's pooling of the frames within context_ms around t
#   frames_mel      frames, concatenated with the normalised log-mel frame at t and its delta (PaSST "2lvl+mel")
TIMESTAMP_MODES = ("windows", "short_windows", "frames", "frames_context", "frames_mel")
FRAME_MODES = ("frames", "frames_context", "frames_mel")  # one encoder pass over the clip, frames read at each t
DEFAULT_HOP_MS = 50.0  # HEAR suggests <= 50 ms; frames_mel defaults to the frontend's own hop instead


@dataclass(frozen=True)
class HearOptions:
    """Options accepted by `load_model(..., **options)` (heareval: `--model-options '{"hop_ms": 25}'`)."""

    hop_ms: float | None = None  # timestamp hop; None = the frontend's hop (frames_mel) or DEFAULT_HOP_MS
    timestamp_mode: str = "frames"  # one of TIMESTAMP_MODES; default from docs/results/timestamp_modes.md
    window_ms: float | None = None  # windows: the window; None = the training input (crop, or the whole segment)
    short_window_ms: float = 320.0  # short_windows: the window (4 audiontt frames)
    context_ms: float | None = None  # frames_context: the pooled span; None = the training input
    chunk_seconds: float = 10.0  # encoder span per chunk of a long clip (memory, not results)
    batch_seconds: float = 120.0  # audio seconds (windows or chunks) per encoder forward pass (memory)

    @classmethod
    def parse(cls, options: dict[str, Any]) -> HearOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown hear_sela model option(s) {unknown}; valid options: {sorted(known)}")
        mode = options.get("timestamp_mode", cls.timestamp_mode)
        if mode not in TIMESTAMP_MODES:
            raise ValueError(f"model option timestamp_mode={mode!r} must be one of {list(TIMESTAMP_MODES)}")
        numbers = {k: v for k, v in options.items() if k != "timestamp_mode"}
        for name, value in numbers.items():
            if value is None and name in ("hop_ms", "window_ms", "context_ms"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"model option {name}={value!r} must be a positive number")
        return cls(timestamp_mode=mode, **{k: float(v) if v is not None else None for k, v in numbers.items()})


class HearSelaModel(nn.Module):
    """Frontend + encoder, always in eval mode (heareval never calls eval(); `train()` is a no-op here).

    Attributes required by HEAR: `sample_rate`, `scene_embedding_size`, `timestamp_embedding_size` (Python ints).
    """

    def __init__(self, bundle: EncoderBundle, options: HearOptions):
        super().__init__()
        cfg = bundle.config
        self.frontend = LogMel(cfg.frontend)
        self.encoder = bundle.encoder
        self.options = options
        self.source = bundle.source
        self.objective = bundle.objective
        self.sample_rate = int(cfg.frontend.sample_rate)
        if self.sample_rate not in HEAR_SAMPLE_RATES:
            raise ValueError(f"{bundle.source}: frontend sample_rate {self.sample_rate} is not a HEAR sample rate "
                             f"{HEAR_SAMPLE_RATES}")
        self.scene_embedding_size = int(self.encoder.embed_dim)
        stride = int(self.encoder.time_stride)
        frame_ms = 1000.0 * cfg.frontend.hop_length / self.sample_rate
        train_ms = self.training_frames(cfg) * frame_ms
        # frames_mel reads the log-mel frame at t: at the frontend's hop each timestamp is one frame, none skipped
        self.hop_ms = options.hop_ms or (frame_ms if options.timestamp_mode == "frames_mel" else DEFAULT_HOP_MS)
        self.timestamp_embedding_size = int(self.encoder.embed_dim) + {
            "frames_context": int(self.encoder.embed_dim), "frames_mel": 2 * int(cfg.frontend.n_mels)
        }.get(options.timestamp_mode, 0)
        # frames_context: the pooled span in input frames
        self.context_span = context_frames_of(options.context_ms or train_ms, frame_ms, stride)
        window_ms = options.window_ms if options.window_ms is not None else train_ms
        if options.timestamp_mode == "short_windows":
            window_ms = options.short_window_ms
        # whole encoder frames, at least the encoder's minimum input
        self.window_frames = max(int(self.encoder.min_frames), stride * max(1, round(window_ms / frame_ms / stride)))
        self.context_frames = receptive_context(self.encoder, cfg.frontend.n_mels)
        # chunks of at least 4x the context on each side keep the recomputed overlap under 50 %
        chunk = stride * max(1, round(options.chunk_seconds * 1000.0 / frame_ms / stride))
        self.chunk_frames = max(chunk, 4 * (self.context_frames or 0))
        self.batch_frames = max(1, round(options.batch_seconds * 1000.0 / frame_ms))
        # the normalised log-mel of digital silence: what lies outside a clip
        self.silence = float(self.frontend.normalize(torch.tensor(math.log(cfg.frontend.eps))))
        self.eval()

    def training_frames(self, cfg: Config) -> int:
        """Log-mel frames of one training input: the crop, or (crop_frames=0) a whole cached segment."""
        if cfg.augment.crop_frames > 0:
            return int(cfg.augment.crop_frames)
        # the cache cuts round(segment_seconds * rate) samples per segment (data.cache_build.SegmentSpec)
        return self.frontend.num_frames(round(cfg.data.segment_seconds * self.sample_rate))

    def train(self, mode: bool = True) -> HearSelaModel:
        """Inference-only wrapper: stays in eval mode (BatchNorm running stats, no dropout) whatever is asked."""
        return super().train(False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # (N, S) -> (N, D)
        return get_scene_embeddings(audio, self)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device


# ---------------------------------------------------------------- the HEAR API


def load_model(model_file_path: str = "", **options: Any) -> HearSelaModel:
    """Load a hear_sela checkpoint or export (or, with no path, the embedded default weights) as a HEAR model.

    Args:
        model_file_path: a training checkpoint (.pt) or export (.safetensors / .pt) of ours, or a published BYOL-A
            AudioNTT2020 state dict (.pth, nttcslab/byol-a); "" = embedded default.
        **options: see `HearOptions` (hop_ms, window_ms, chunk_seconds, batch_seconds).
    Returns:
        the model; audio passed to the embedding functions must be mono at `model.sample_rate` (16000 for the
        shipped recipes). The HEAR API carries no rate, so other rates cannot be detected and are silently read as
        this one: resample first, e.g. `torchaudio.functional.resample(audio, 48000, model.sample_rate)`.
    Raises:
        CheckpointError (a ValueError) naming the file when it is missing or not ours; ValueError for bad options.
    """
    opts = HearOptions.parse(options)
    load_triton_beside_tensorflow()  # heareval and hearvalidator import tensorflow first; see heareval_compat
    return HearSelaModel(load_weights(model_file_path), opts)


def load_weights(path: str | Path | None) -> EncoderBundle:
    """The weights every harness loads (the HEAR module here, the s3prl upstream): a checkpoint or export of ours,
    or a published BYOL-A state dict (.pth; hear_sela/byola_import.py); None or "" = the embedded default weights."""
    if path:
        return load_any_bundle(path)
    ref = resources.files("hear_sela") / "assets" / DEFAULT_WEIGHTS
    if not ref.is_file():
        raise FileNotFoundError(f"embedded default weights missing from the package: {ref} (reinstall hear_sela, "
                                "or pass a checkpoint path)")
    with resources.as_file(ref) as default:
        return load_any_bundle(default)


def get_scene_embeddings(audio: torch.Tensor, model: HearSelaModel) -> torch.Tensor:
    """One embedding per clip.

    Args:
        audio: (N, S) mono audio at `model.sample_rate`, float32 in [-1, 1] (other float dtypes are cast to float32).
        model: from `load_model`.
    Returns:
        (N, model.scene_embedding_size) float32, on `audio`'s device.
    """
    wav = _check_inputs(audio, model)  # (N, S) float32 on the model's device
    out = [torch.zeros(0, model.scene_embedding_size, device=wav.device)]
    with torch.no_grad():
        for group in _clip_groups(wav, model):
            logmel = _pad_frames(_log_mel(model, group), int(model.encoder.min_frames), model.silence)  # (n, F, T)
            feats = _encode_frames(model, logmel)  # (n, T', D)
            out.append(model.encoder.forward_head(feats).float())  # (n, D)
    return torch.cat(out).to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearSelaModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings at regular timestamps (window centres, every `hop_ms`).

    Args:
        audio: (N, S) mono audio at `model.sample_rate`, float32 in [-1, 1] (other float dtypes are cast to float32).
        model: from `load_model`.
    Returns:
        embeddings (N, K, model.timestamp_embedding_size) float32 and timestamps (N, K) float32 in milliseconds,
        K = floor(duration_ms / hop_ms) + 1, both on `audio`'s device.
    """
    wav = _check_inputs(audio, model)  # (N, S)
    n, num_samples = wav.shape
    hop_ms = model.hop_ms
    duration_ms = 1000.0 * num_samples / model.sample_rate
    k = math.floor(duration_ms / hop_ms + 1e-9) + 1
    index = torch.arange(k, dtype=torch.float64)  # (K,)
    timestamps = index * hop_ms  # (K,) ms, no accumulated rounding
    centres = index * (hop_ms * model.sample_rate / (1000.0 * model.frontend.hop_length))  # (K,) in frames
    emb = []
    with torch.no_grad():
        for group in _clip_groups(wav, model):
            logmel = _log_mel(model, group)  # (n, F, T)
            if model.options.timestamp_mode in FRAME_MODES:
                emb.append(_frame_embeddings(model, logmel, centres))  # (n, K, D, 2D or D + 2F)
            else:
                emb.append(_window_embeddings(model, logmel, centres))  # (n, K, D)
    embeddings = torch.cat(emb) if emb else torch.zeros(0, k, model.timestamp_embedding_size, device=wav.device)
    ts = timestamps.to(torch.float32).expand(n, k).contiguous()  # (N, K)
    return embeddings.to(audio.device), ts.to(audio.device)


# ---------------------------------------------------------------- input checks


def _check_inputs(audio: Any, model: Any) -> torch.Tensor:
    """(N, S) float audio -> float32 on the model's device, or a ValueError/TypeError that says what is wrong."""
    if not isinstance(model, HearSelaModel):
        raise TypeError(f"model must come from hear_sela.load_model(), got {type(model).__name__}")
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor of shape (n_sounds, n_samples), got {type(audio).__name__}")
    if audio.ndim != 2:
        hint = " (add a batch dimension: audio[None])" if audio.ndim == 1 else " (mono only: mix channels down)"
        raise ValueError(f"audio must have shape (n_sounds, n_samples), got {tuple(audio.shape)}{hint}")
    if not audio.is_floating_point():
        raise ValueError(f"audio must be float32 in [-1, 1], got dtype {audio.dtype} (integer PCM: divide by its "
                         "full scale, e.g. audio.float() / 32768 for int16)")
    if audio.shape[1] == 0:
        raise ValueError(f"audio has zero samples (shape {tuple(audio.shape)}): nothing to embed")
    wav = audio.to(device=model.device, dtype=torch.float32)
    bad = ~torch.isfinite(wav).all(dim=1)  # (N,)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"audio contains NaN or infinite samples in sound(s) {rows[:10]}"
                         f"{' ...' if len(rows) > 10 else ''}")
    return wav


# ---------------------------------------------------------------- computation


def _clip_groups(wav: torch.Tensor, model: HearSelaModel) -> list[torch.Tensor]:
    """Split (N, S) into groups of clips whose frames fit one batch, so memory stays bounded for long clips."""
    frames = model.frontend.num_frames(wav.shape[1])
    per_group = max(1, model.batch_frames // frames)
    return list(wav.split(per_group)) if len(wav) else []


def _log_mel(model: HearSelaModel, wav: torch.Tensor) -> torch.Tensor:
    """(n, S) -> (n, F, T) normalised log-mel, T = S // hop + 1, computed in chunks of `batch_seconds` of audio.

    Each chunk carries ceil(n_fft / 2 / hop) hops of real audio on both sides, so every kept frame sees the same
    samples (and the same reflect padding at the clip's ends) as one STFT over the whole clip.
    """
    front = model.frontend
    hop, n_fft = front.hop_length, front.cfg.n_fft
    num_samples = wav.shape[1]
    total = front.num_frames(num_samples)
    chunk = max(model.chunk_frames, model.batch_frames)  # the STFT of one batch's worth of audio at a time
    if total <= 2 * chunk:
        return front(wav)[..., :total]  # short clips: one pass (LogMel pads clips under half a window)
    pad = math.ceil(n_fft / 2 / hop) * hop
    parts = []
    for f0 in range(0, total, chunk):
        f1 = min(f0 + chunk, total)
        s0 = max(0, f0 * hop - pad)
        s1 = min(num_samples, (f1 - 1) * hop + pad + 1)
        mel = front(wav[:, s0:s1])  # (n, F, T_chunk), frame j centred on sample s0 + j * hop
        j0 = (f0 * hop - s0) // hop
        parts.append(mel[..., j0:j0 + (f1 - f0)])
    return torch.cat(parts, dim=-1)


def _pad_frames(logmel: torch.Tensor, min_frames: int, value: float) -> torch.Tensor:
    """Pad (n, F, T) at the end with silence up to `min_frames` frames (clips shorter than the encoder's input)."""
    short = min_frames - logmel.shape[-1]
    return nn.functional.pad(logmel, (0, short), value=value) if short > 0 else logmel


def _encode_frames(model: HearSelaModel, logmel: torch.Tensor) -> torch.Tensor:
    """(n, F, T) -> (n, T', D) encoder frame features, chunked along time without changing them.

    A chunk [c0, c1) (a multiple of the encoder stride, so pooling grids align) is encoded together with
    `context_frames` of real neighbouring frames on each side, and only its own output frames are kept; the last
    chunk keeps everything to the end, so T' is whatever one pass over the whole clip gives.
    """
    enc = model.encoder
    stride = int(enc.time_stride)
    n, _, total = logmel.shape
    margin, chunk = model.context_frames, model.chunk_frames
    if margin is None or total <= chunk + 2 * margin:
        spans = [(0, total, 0, total)]  # (c0, c1, lo, hi): one pass over the whole clip
    else:
        starts = range(0, total - chunk // 2, chunk)  # a short tail joins the previous chunk
        ends = [*starts[1:], total]
        spans = [(c0, c1, max(0, c0 - margin), min(total, c1 + margin)) for c0, c1 in zip(starts, ends)]
    rows: dict[tuple[int, int], torch.Tensor] = {}
    # encode spans of equal length together: all interior chunks of all clips share one shape
    by_length: dict[int, list[int]] = {}
    for s, (_, _, lo, hi) in enumerate(spans):
        by_length.setdefault(hi - lo, []).append(s)
    for length, span_ids in by_length.items():
        items = [(i, s) for s in span_ids for i in range(n)]
        per_batch = max(1, model.batch_frames // length)
        for b0 in range(0, len(items), per_batch):
            batch = items[b0:b0 + per_batch]
            x = torch.stack([logmel[i, :, spans[s][2]:spans[s][3]] for i, s in batch])  # (B, F, length)
            feats = enc.forward_features(x.unsqueeze(1))  # (B, L', D)
            for row, (i, s) in zip(feats, batch):
                c0, c1, lo, _ = spans[s]
                keep0 = (c0 - lo) // stride
                last = s == len(spans) - 1
                rows[i, s] = row[keep0:] if last else row[keep0:keep0 + (c1 - c0) // stride]
    return torch.stack([torch.cat([rows[i, s] for s in range(len(spans))]) for i in range(n)])


def _frame_embeddings(model: HearSelaModel, logmel: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(n, F, T) log-mel and (K,) centres in frames -> (n, K, D) frame features at the centres (frames mode),
    (n, K, 2D) with the head's pooling of the context around each centre appended (frames_context), or (n, K, D + 2F)
    with the log-mel frame and its delta at each centre appended (frames_mel; linear between the two nearest
    frames when a centre falls between them)."""
    padded = _pad_frames(logmel, int(model.encoder.min_frames), model.silence)  # (n, F, max(T, min_frames))
    feats = _encode_frames(model, padded).float()  # (n, T', D): one chunked pass, as the scene embedding
    stride = int(model.encoder.time_stride)
    out = interpolate_frames(feats, stride, centres)  # (n, K, D)
    if model.options.timestamp_mode == "frames_context":
        # rows of D features per pooling pass: audiontt's first conv holds C * F = 8 * D floats per input frame,
        # so 8 * batch_frames rows stay below one encoder forward's activations
        context = pooled_context(feats, stride, centres, model.context_span, model.encoder.forward_head,
                                 batch=8 * model.batch_frames)  # (n, K, D)
        out = torch.cat([out, context.float()], dim=-1)
    elif model.options.timestamp_mode == "frames_mel":
        # the spectrum at the frontend's hop keeps the onset that the encoder's strided, 3x3-smoothed frames blur
        mel = torch.cat([logmel, deltas(logmel)], dim=1).transpose(1, 2).float()  # (n, T, 2F)
        out = torch.cat([out, interpolate_frames(mel, 1, centres)], dim=-1)
    return out


def _window_embeddings(model: HearSelaModel, logmel: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(n, F, T) log-mel and (K,) window centres in frames -> (n, K, D) clip embeddings of the centred windows."""
    n = logmel.shape[0]
    width = model.window_frames
    padded = nn.functional.pad(logmel, (width, width), value=model.silence)  # (n, F, T + 2W)
    # round half up (not to even), so windows step evenly when centres fall on half frames
    starts = (torch.floor(centres - (width - 1) / 2 + 0.5).long() + width).to(logmel.device)  # (K,)
    offsets = torch.arange(width, device=logmel.device)  # (W,)
    per_batch = max(1, model.batch_frames // (width * n))  # windows per clip per forward
    out = []
    for k0 in range(0, len(starts), per_batch):
        idx = starts[k0:k0 + per_batch, None] + offsets  # (k, W)
        windows = rearrange(padded[:, :, idx], "n f k w -> (n k) 1 f w")  # (n*k, 1, F, W)
        emb = model.encoder(windows).float()  # (n*k, D)
        out.append(rearrange(emb, "(n k) d -> n k d", n=n))
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------- receptive context


@torch.no_grad()
def receptive_context(encoder: nn.Module, n_mels: int, max_frames: int = 16384) -> int | None:
    """Input frames of real context a chunk needs on each side so that its encoder frames equal a full pass.

    Found structurally, independent of the weights: one encoder stride of input frames is set to NaN, and NaN
    propagates through every convolution, pooling and linear layer to exactly the output frames whose receptive
    field contains it. Rounded up to whole strides and to at least `min_frames`. Returns None when the affected
    frames reach the input's ends up to `max_frames` (e.g. global attention): such encoders are never chunked.
    """
    stride = int(encoder.time_stride)
    # a copy in eval mode on the CPU: NaN must not reach the caller's batch-norm statistics (a training encoder)
    probe = copy.deepcopy(encoder).to("cpu").eval()
    dtype = next(probe.parameters()).dtype
    length = 32 * stride
    while length <= max_frames:
        x = torch.zeros(1, 1, n_mels, length, dtype=dtype)  # (1, 1, F, L)
        j0 = (length // 2 // stride) * stride
        x[..., j0:j0 + stride] = float("nan")
        with torch.no_grad():
            hit = torch.isnan(probe.forward_features(x)).flatten(2).any(-1)[0]  # (L',)
        frames = hit.nonzero().flatten()
        if len(frames) and frames[0] > 0 and frames[-1] < len(hit) - 1:
            first, last = int(frames[0]), int(frames[-1])
            reach = max(j0 - first * stride, last * stride - j0, int(encoder.min_frames))  # frames beyond a block
            return stride * math.ceil(reach / stride)
        length *= 2
    return None
