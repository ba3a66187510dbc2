"""The published BYOL-A weights (nttcslab/byol-a, `AudioNTT2020-BYOLA-64x96d{512,1024,2048}.pth`) as our encoder.

Those files are plain state dicts of byol_a/models.py's AudioNTT2020: one Sequential `features` of three
[Conv2d 3x3, BatchNorm2d, ReLU, MaxPool2d 2] blocks (parameters at indices 0, 1, 4, 5, 8, 9), and `fc` =
[Linear, ReLU, Dropout, Linear, ReLU] (indices 0, 3). Our `audiontt` encoder is the same network layer for layer
(checked against byol_a/models.py@446c89d, and numerically in tests/test_byola_import.py), with two differences of
layout only: its blocks are nested Sequentials (`features.{0,1,2}.{0,1}`), and it flattens each frame's conv map
channel-major, (C, F/8), where BYOL-A flattens frequency-major, (F/8, C); the first fc layer's input columns are
permuted accordingly, so the imported encoder computes BYOL-A's function exactly.

The frontend is BYOL-A's (16 kHz, n_fft 1024, hop 160, 64 mels, 60-7800 Hz, log(mel + eps): our defaults) with the
normalisation statistics its README gives for AudioSet. The weights are under an evaluation-only licence: import
them locally, never ship or commit them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from hear_sela.checkpoint import (
    CheckpointError,
    EncoderBundle,
    encoder_checkpoint_state,
    export_encoder,
    load_encoder_bundle,
    save_checkpoint,
)
from hear_sela.config import Config, config_from_dict

# nttcslab/byol-a README: "stats = [-5.4919195, 5.0389895]" (log-mel mean / std over AudioSet)
BYOLA_NORM_MEAN = -5.4919195
BYOLA_NORM_STD = 5.0389895
BYOLA_N_MELS = 64
# BYOL-A key prefix -> ours
_KEY_MAP = {"features.0.": "features.0.0.", "features.1.": "features.0.1.", "features.4.": "features.1.0.",
            "features.5.": "features.1.1.", "features.8.": "features.2.0.", "features.9.": "features.2.1.",
            "fc.0.": "fc.0.", "fc.3.": "fc.3."}
_CONV = ("weight", "bias")
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
EXPECTED_KEYS: tuple[str, ...] = tuple(
    [f"features.{i}.{p}" for block in ((0, 1), (4, 5), (8, 9)) for i, params in zip(block, (_CONV, _BN))
     for p in params] + [f"fc.{i}.{p}" for i in (0, 3) for p in _CONV]
)


def _expected_keys_text() -> str:
    return ("features.{0,4,8}.{weight,bias}, features.{1,5,9}.{weight,bias,running_mean,running_var,"
            "num_batches_tracked}, fc.{0,3}.{weight,bias}")


def check_byola_state(state: Any, source: str) -> dict[str, torch.Tensor]:
    """A BYOL-A AudioNTT2020 state dict (optionally under 'state_dict', as byol-a's loader allows), or a
    CheckpointError naming the keys expected and what differs."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: not a BYOL-A AudioNTT2020 state dict (a dict of tensors with keys "
                              f"{_expected_keys_text()})")
    missing = [k for k in EXPECTED_KEYS if k not in state]
    extra = sorted(set(state) - set(EXPECTED_KEYS))
    if missing or extra:
        raise CheckpointError(f"{source}: not a BYOL-A AudioNTT2020 state dict: expected keys {_expected_keys_text()}"
                              f"; missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, unexpected "
                              f"{extra[:6]}{' ...' if len(extra) > 6 else ''}")
    return state


def byola_config(d: int, channels: int) -> Config:
    """Our config for a published AudioNTT2020: BYOL-A's frontend with its AudioSet statistics, 64 x 96 crops."""
    return config_from_dict({
        "name": f"byola_published_d{d}",
        "frontend": {"preset": "byola", "norm_mean": BYOLA_NORM_MEAN, "norm_std": BYOLA_NORM_STD},
        "model": {"encoder": "audiontt", "encoder_kwargs": {"d": d, "channels": channels}},
        "augment": {"crop_frames": 96},
        "train": {"objective": "byol"},
    }, source="BYOL-A import")


def convert_byola_state(state: dict[str, torch.Tensor], source: str) -> tuple[Config, dict[str, torch.Tensor]]:
    """BYOL-A state dict -> (our config, our `audiontt` state dict)."""
    fc0 = state["fc.0.weight"]  # (d, F/8 * C), columns frequency-major
    d, channels = int(fc0.shape[0]), int(state["features.0.weight"].shape[0])
    if fc0.shape[1] != channels * BYOLA_N_MELS // 8:
        raise CheckpointError(f"{source}: fc.0.weight has {fc0.shape[1]} inputs; BYOL-A's {BYOLA_N_MELS} mels and "
                              f"{channels} channels give {channels * BYOLA_N_MELS // 8}")
    ours = {}
    for key, value in state.items():
        prefix = next(p for p in _KEY_MAP if key.startswith(p))
        ours[_KEY_MAP[prefix] + key[len(prefix):]] = value
    # (d, F', C) frequency-major -> (d, C, F') channel-major, as audiontt flattens "b c f t -> b t (c f)"
    ours["fc.0.weight"] = fc0.reshape(d, BYOLA_N_MELS // 8, channels).permute(0, 2, 1).reshape(d, -1).contiguous()
    return byola_config(d, channels), ours


def read_byola_file(path: str | Path) -> tuple[Config, dict[str, torch.Tensor]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"BYOL-A weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safe-unpickler errors
        raise CheckpointError(f"{path}: not a loadable BYOL-A state dict ({type(e).__name__}: {e})") from None
    return convert_byola_state(check_byola_state(state, str(path)), str(path))


def byola_bundle(path: str | Path) -> EncoderBundle:
    """A published BYOL-A file as an EncoderBundle (what `hear_sela.load_model("FILE.pth")` uses)."""
    cfg, state = read_byola_file(path)
    # imported here, not at module level: timm pulls triton, which must load after heareval_compat's fix
    from hear_sela.encoders import build_encoder

    encoder = build_encoder(cfg)
    encoder.load_state_dict(state)
    return EncoderBundle(encoder=encoder.eval(), config=cfg, source=str(path), objective=cfg.train.objective)


def load_any_bundle(path: str | Path) -> EncoderBundle:
    """A checkpoint or export of ours, else a published BYOL-A state dict; the error names both expectations."""
    try:
        return load_encoder_bundle(path)
    except CheckpointError as ours:
        if Path(path).suffix == ".safetensors" or not Path(path).is_file():
            raise
        try:
            return byola_bundle(path)
        except CheckpointError as byola:
            reason = str(byola).split(": ", 1)[-1].removeprefix("not ")
            raise CheckpointError(f"{ours}; nor {reason}") from None


def import_byola(src: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write a published BYOL-A file as our export (`.safetensors` or `.pt`), through the project's export writer."""
    bundle = byola_bundle(src)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(Path(tmp) / "byola.pt", encoder_checkpoint_state(bundle.config, bundle.encoder))
        return export_encoder(ckpt, out, half=half)
