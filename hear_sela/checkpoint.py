"""Checkpoint files: the container format (marker, safe loads: weights_only / safetensors), the encoder part every
file carries, encoder-only export, and the encoder bundle inference loads. What else a training checkpoint holds
is `training.state`'s business (the one owner of the training layout).

Two on-disk forms:
- training checkpoint (`*.pt`): {"format": "hear_sela.checkpoint", "config": dict, "encoder": state_dict, ...
  whatever the training loop adds (heads, optimizer, label store, RNG, step)}.
- export (`*.safetensors`, or `*.pt`): encoder weights only, plus metadata {"format": "hear_sela.export",
  "config": dict} (the resolved config, whose `frontend` carries normalisation stats).
Everything stored is tensors and plain Python values, so `torch.load(weights_only=True)` loads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hear_sela.config import Config, ConfigError, config_from_dict, config_to_dict
from hear_sela.fileio import atomic_write

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "hear_sela.checkpoint"
EXPORT_FORMAT = "hear_sela.export"
CHECKSUM = "tensor_sha256"  # beside the tensors in every file we write: sha256 of them (names, dtypes, shapes, bytes)


class CheckpointError(ValueError):
    """A file is not a hear_sela checkpoint or export, or is damaged."""


def tensor_checksum(obj: Any) -> str:
    """sha256 over every tensor in `obj` (nested dicts and lists): its place, dtype, shape and bytes."""
    h = hashlib.sha256()

    def walk(x: Any, where: str) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"{where}|{t.dtype}|{tuple(x.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())  # as bytes: bfloat16 has no numpy dtype
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{where}/{k}")
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{where}[{i}]")

    walk(obj, "")
    return h.hexdigest()


def _verify(path: Path, stored: str | None, tensors: Any) -> None:
    """Compare a file's stored checksum with its tensors; files written before checksums pass, with a debug note."""
    if stored is None:
        log.debug("%s: no %s (written before checkpoints carried one); its tensors are not verified", path, CHECKSUM)
        return
    if tensor_checksum(tensors) != stored:
        raise CheckpointError(f"{path}: damaged: its tensors do not match the checksum stored with them (flipped bits, "
                              "a bad copy or disk); use another copy, or an earlier checkpoint")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically save a training checkpoint; `state` must hold tensors and plain Python values only."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    state[CHECKSUM] = tensor_checksum(state)
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


# Leading bytes of files people pass for a model by mistake, to name what the file really is (torch files start
# with b"PK" (zip) or b"\x80" (pickle), so none of these can be one).
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", "a RIFF (WAV) audio file"), (b"fLaC", "a FLAC audio file"), (b"OggS", "an Ogg audio file"),
    (b"ID3", "an MP3 audio file"), (b"\xff\xfb", "an MP3 audio file"), (b"FORM", "an AIFF audio file"),
    (b"{", "a JSON file"),
)
_MODEL_FILES = "pass a hear_sela training checkpoint (.pt) or export (.safetensors / .pt)"


def _refuse_foreign(path: Path) -> None:
    """Name what a file evidently is when it cannot be a checkpoint (a 0-byte file, audio), before a loader's
    own error (torch.load of a WAV: `IndexError: pop from empty list`) hides it."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return  # missing or unreadable: the loader says so
    kind = "an empty file (0 bytes)" if not head else next(
        (kind for magic, kind in _FOREIGN_MAGIC if head.startswith(magic)), None)
    if kind is not None:
        raise CheckpointError(f"{path}: is {kind}, not a model; {_MODEL_FILES}")


def _require_readable(path: Path) -> None:
    """A readable file at `path`, or a CheckpointError saying what is there instead (nothing, a folder, a file this
    user may not read)."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a model file; {_MODEL_FILES} (e.g. {path / 'final.pt'})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        open(path, "rb").close()
    except PermissionError:
        raise CheckpointError(f"{path}: permission denied (this user may not read it)") from None


def _torch_load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    _require_readable(path)
    _refuse_foreign(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and safe-unpickler errors all mean "not a checkpoint of ours"
        first = (str(e).splitlines() or [""])[0].split(". ")[0][:160]  # torch's own text runs to many lines
        raise CheckpointError(f"{path}: not a loadable hear_sela checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(obj, dict) or obj.get("format") not in (CHECKPOINT_FORMAT, EXPORT_FORMAT):
        raise CheckpointError(f"{path}: not a hear_sela checkpoint or export (no 'format' marker)")
    _verify(path, obj.pop(CHECKSUM, None), obj)
    return obj


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint safely (weights_only)."""
    path = Path(path)
    obj = _torch_load(path, map_location)
    if obj["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: this is an encoder export, not a training checkpoint")
    return obj


# ---------------------------------------------------------------- encoder bundle (export + loading)


@dataclass
class EncoderBundle:
    """What inference needs: the encoder (eval mode), the resolved config (frontend inside) and provenance."""

    encoder: nn.Module
    config: Config
    source: str
    objective: str


def export_encoder(src: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write an encoder-only export of a training checkpoint (or re-export an export). `.safetensors` or `.pt`."""
    bundle_state, config_dict, _ = _read_checked(Path(src))  # a broken source is refused before anything is written
    return _write_export(bundle_state, config_dict, out, half)


def initial_encoder(cfg: Config) -> nn.Module:
    """The encoder a run of `cfg` starts from: built right after seeding torch with train.seed (training builds its
    networks this way, `training.state.build_objective`)."""
    from hear_sela.encoders import build_encoder  # (imported late: see load_encoder_bundle)

    torch.manual_seed(cfg.train.seed)
    return build_encoder(cfg)


def export_untrained(src: str | Path, out: str | Path) -> Path:
    """An export of the untrained initialisation of `src`'s run (a training checkpoint or an export): its config,
    so the same encoder, frontend and normalisation statistics, and the weights its seed gives before any step.
    The floor a self-supervised run is judged against first. The caller's RNG state is left alone."""
    return write_untrained_export(_read_checked(Path(src))[2], out)


def write_untrained_export(cfg: Config, out: str | Path) -> Path:
    """An export of the encoder `initial_encoder(cfg)` builds, with `cfg` (its frontend should carry the
    normalisation statistics of the run's data). The caller's RNG state is left alone."""
    with torch.random.fork_rng(devices=[]):
        encoder = initial_encoder(cfg)
    return _write_export({k: v.detach() for k, v in encoder.state_dict().items()}, config_to_dict(cfg), out)


def export_encoder_weights(cfg: Config, encoder: nn.Module, out: str | Path) -> Path:
    """An encoder-only export of a live encoder (e.g. a training snapshot) with `cfg`, float32."""
    return _write_export(encoder_checkpoint_state(cfg, encoder)["encoder"], config_to_dict(cfg), out)


def _write_export(bundle_state: dict[str, torch.Tensor], config_dict: dict[str, Any], out: str | Path,
                  half: bool = False) -> Path:
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in bundle_state.items()}
    meta = {"format": EXPORT_FORMAT, "config": config_dict}
    out = Path(out)
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        meta[CHECKSUM] = tensor_checksum(state)
        return atomic_write(out, lambda tmp: save_file(state, tmp, metadata={"hear_sela": json.dumps(meta)}))
    obj = {**meta, "encoder": state}
    obj[CHECKSUM] = tensor_checksum(obj)
    return atomic_write(out, lambda tmp: torch.save(obj, tmp))


def _read_encoder_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    _require_readable(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("hear_sela", "null"))
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is not iterable)
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
            raise CheckpointError(f"{path}: safetensors file without hear_sela metadata")
        _verify(path, meta.get(CHECKSUM), state)
        config_dict = meta.get("config")
    else:
        obj = _torch_load(path)
        if "encoder" not in obj or "config" not in obj:
            raise CheckpointError(f"{path}: hear_sela file without 'encoder' weights or 'config'")
        state, config_dict = obj["encoder"], obj["config"]
    if not isinstance(config_dict, dict):
        raise CheckpointError(f"{path}: its stored 'config' is {type(config_dict).__name__}, not a mapping; the file "
                              "is damaged or not written by hear_sela")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: its 'encoder' is not a mapping of tensors")
    return state, config_dict


def _check_weights(path: Path, cfg: Config, state: dict[str, torch.Tensor]) -> None:
    """The stored tensors are exactly those of the encoder the stored config describes (names and shapes, compared
    on the meta device, so a crafted size allocates nothing) and finite."""
    from hear_sela.encoders import build_encoder  # see load_encoder_bundle on why the import waits

    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_encoder(cfg).state_dict().items()}
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its stored config does not build an encoder ({e})") from None
    have = {k: tuple(v.shape) for k, v in state.items()}
    if have != expected:
        diff = sorted(set(have) ^ set(expected)) or [k for k in expected if have[k] != expected[k]]
        k = diff[0]
        raise CheckpointError(f"{path}: encoder weights do not fit encoder {cfg.model.encoder!r} of its stored config "
                              f"({len(diff)} tensor(s) differ; {k}: {have.get(k, 'missing')} in the file, "
                              f"{expected.get(k, 'not expected')} expected)")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: non-finite (NaN/inf) weights in {len(bad)} tensor(s) ({', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}); the file is damaged or from a diverged run")


def _read_checked(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Config]:
    """(encoder state, stored config as data, resolved config) of any checkpoint or export, every part checked."""
    state, config_dict = _read_encoder_state(path)
    try:
        cfg = config_from_dict(config_dict, source=str(path))
    except ConfigError as e:
        raise CheckpointError(f"{path}: its stored config is invalid or from another version of hear_sela ({e})"
                              ) from None
    _check_weights(path, cfg, state)
    return state, config_dict, cfg


def load_encoder_bundle(path: str | Path, map_location: str | torch.device = "cpu") -> EncoderBundle:
    """Load the encoder of any training checkpoint or export of ours, in eval mode, as float32."""
    path = Path(path)
    state, _, cfg = _read_checked(path)
    # imported here: the encoders import timm, hence torch._dynamo and triton, which must come after the HEAR
    # module's load_triton_beside_tensorflow (heareval_compat) when tensorflow is loaded first
    from hear_sela.encoders import build_encoder

    encoder = build_encoder(cfg)
    try:
        encoder.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: encoder weights do not fit encoder {cfg.model.encoder!r}: {e}") from None
    encoder.to(map_location).eval()
    return EncoderBundle(encoder=encoder, config=cfg, source=str(path), objective=cfg.train.objective)


def encoder_checkpoint_state(cfg: Config, encoder: nn.Module) -> dict[str, Any]:
    """The part of a training checkpoint that `load_encoder_bundle` reads."""
    return {"config": config_to_dict(cfg), "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}
