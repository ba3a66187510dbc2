"""The HEAR 2021 API of hear_sela: loading, shapes, timestamps, chunking and windows against their definitions."""

from __future__ import annotations

import math

import pytest
import torch

import hear_sela
from hear_sela import hear
from hear_sela.checkpoint import (
    CheckpointError,
    encoder_checkpoint_state,
    export_encoder,
    save_checkpoint,
)
from hear_sela.config import config_from_dict
from hear_sela.encoders import build_encoder

SR = 16000


def _checkpoint(path, encoder: str = "audiontt", **cfg) -> str:
    """A training checkpoint of a randomly initialised encoder with normalisation stats, as training writes."""
    torch.manual_seed(0)
    config = config_from_dict({"model": {"encoder": encoder}, **cfg})
    config.frontend.norm_mean, config.frontend.norm_std = -7.0, 4.0
    save_checkpoint(path, encoder_checkpoint_state(config, build_encoder(config)))
    return str(path)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    return _checkpoint(tmp_path_factory.mktemp("hear") / "audiontt.pt")


@pytest.fixture(scope="module")
def model(ckpt):
    return hear_sela.load_model(ckpt)


@pytest.fixture(scope="module")
def resnet_ckpt(tmp_path_factory) -> str:
    return _checkpoint(tmp_path_factory.mktemp("hear") / "resnet18.pt", "resnet18", frontend={"preset": "sela_audio"})


@pytest.fixture(scope="module")
def resnet_model(resnet_ckpt):
    return hear_sela.load_model(resnet_ckpt)


def _noise(n: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, round(seconds * SR), generator=g) * 2 - 1  # (n, S)


def test_default_model_has_hear_attributes_and_stays_in_eval():
    m = hear_sela.load_model()
    assert isinstance(m, torch.nn.Module)
    assert m.sample_rate == 16000 and type(m.sample_rate) is int
    assert type(m.scene_embedding_size) is int and type(m.timestamp_embedding_size) is int
    assert m.scene_embedding_size == m.encoder.embed_dim
    m.train()
    assert not m.training and not any(mod.training for mod in m.modules())


def test_train_mode_request_changes_nothing(model):
    x = _noise(2, 1.0)
    before = hear_sela.get_scene_embeddings(x, model)
    model.train(True)
    after = hear_sela.get_scene_embeddings(x, model)
    torch.testing.assert_close(before, after, rtol=0, atol=0)


def test_checkpoint_and_export_load_to_the_same_model(ckpt, tmp_path):
    exported = export_encoder(ckpt, tmp_path / "enc.safetensors")
    x = _noise(2, 1.5)
    a = hear_sela.get_scene_embeddings(x, hear_sela.load_model(ckpt))
    b = hear_sela.get_scene_embeddings(x, hear_sela.load_model(str(exported)))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("content", [b"not a checkpoint", b""])
def test_wrong_file_fails_with_its_name(tmp_path, content):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="weights.pt"):
        hear_sela.load_model(str(bad))
    with pytest.raises(CheckpointError, match="missing.safetensors"):
        hear_sela.load_model(str(tmp_path / "missing.safetensors"))


def test_foreign_torch_file_is_refused_without_unpickling_code(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": torch.nn.Linear(2, 2).state_dict(), "module": torch.nn.Identity()}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt"):
        hear_sela.load_model(str(foreign))


def test_options_are_validated(ckpt):
    with pytest.raises(ValueError, match="unknown hear_sela model option.*hop"):
        hear_sela.load_model(ckpt, hopms=10)
    for bad in (0, -5, "25", float("nan"), True):
        with pytest.raises(ValueError, match="hop_ms"):
            hear_sela.load_model(ckpt, hop_ms=bad)


def test_shapes_dtypes_and_timestamps(model):
    x = _noise(3, 2.02)
    scene = hear_sela.get_scene_embeddings(x, model)
    emb, ts = hear_sela.get_timestamp_embeddings(x, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == torch.float32
    k = math.floor(2020 / 50) + 1
    assert emb.shape == (3, k, model.timestamp_embedding_size) and emb.dtype == torch.float32
    assert ts.shape == (3, k) and ts.dtype == torch.float32
    torch.testing.assert_close(ts[1], torch.arange(k, dtype=torch.float32) * 50)
    assert ts[0, -1] <= 2020.0 < ts[0, -1] + 50
    assert torch.isfinite(scene).all() and torch.isfinite(emb).all()


@pytest.mark.parametrize("hop_ms", [10.0, 12.34, 25.0])
def test_timestamps_for_other_hops_do_not_accumulate_rounding(ckpt, hop_ms):
    m = hear_sela.load_model(ckpt, hop_ms=hop_ms, window_ms=200)
    seconds = 1.37
    _, ts = hear_sela.get_timestamp_embeddings(_noise(1, seconds), m)
    k = math.floor(seconds * 1000 / hop_ms) + 1
    assert ts.shape == (1, k)
    exact = torch.arange(k, dtype=torch.float64) * hop_ms
    assert (ts[0].double() - exact).abs().max() < 1e-3
    assert (torch.diff(ts[0]) - hop_ms).abs().max() < 1e-3  # hear-validator's spacing rule
    assert ts[0, -1] <= seconds * 1000


def test_batch_equals_one_clip_at_a_time(model):
    x = _noise(4, 1.3)
    scene = hear_sela.get_scene_embeddings(x, model)
    emb, _ = hear_sela.get_timestamp_embeddings(x, model)
    for i in range(4):
        torch.testing.assert_close(hear_sela.get_scene_embeddings(x[i:i + 1], model)[0], scene[i])
        torch.testing.assert_close(hear_sela.get_timestamp_embeddings(x[i:i + 1], model)[0][0], emb[i])


def test_timestamp_embedding_is_the_clip_embedding_of_the_centred_window(ckpt):
    """Definition (timestamp_mode "windows"): embedding at t = encoder(log-mel window of W frames centred on t),
    silence outside the clip."""
    model = hear_sela.load_model(ckpt, timestamp_mode="windows")
    x = _noise(1, 2.0, seed=3)
    emb, ts = hear_sela.get_timestamp_embeddings(x, model)
    logmel = model.frontend(x)  # (1, F, T)
    width = model.window_frames
    hop = model.frontend.hop_length
    for i in (0, 7, len(ts[0]) - 1):
        centre = ts[0, i].item() * SR / 1000 / hop  # in frames
        start = math.floor(centre - (width - 1) / 2 + 0.5)
        frames = torch.full((1, logmel.shape[1], width), model.silence)
        lo, hi = max(start, 0), min(start + width, logmel.shape[-1])
        frames[..., lo - start:hi - start] = logmel[..., lo:hi]
        with torch.no_grad():
            ref = model.encoder(frames.unsqueeze(1))[0]
        torch.testing.assert_close(emb[0, i], ref, rtol=1e-4, atol=1e-5)


def test_scene_embedding_is_the_encoders_clip_embedding(model):
    x = _noise(2, 3.0, seed=4)
    with torch.no_grad():
        ref = model.encoder(model.frontend(x).unsqueeze(1))  # (2, D)
    torch.testing.assert_close(hear_sela.get_scene_embeddings(x, model), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which", ["audiontt", "resnet18"])
def test_chunking_changes_nothing(which, ckpt, resnet_ckpt):
    """Long clips are chunked with measured context; results equal one pass over the whole clip."""
    path, seconds = (ckpt, 12.0) if which == "audiontt" else (resnet_ckpt, 56.0)
    whole_model = hear_sela.load_model(path)
    # the smallest chunks allowed (4x the context), several per forward pass
    chunked = hear_sela.load_model(path, chunk_seconds=0.01, batch_seconds=5.0)
    assert chunked.chunk_frames == 4 * chunked.context_frames
    x = _noise(1, seconds, seed=5) * 0.3
    with torch.no_grad():
        logmel = whole_model.frontend(x)  # (1, F, T)
        whole = whole_model.encoder.forward_features(logmel.unsqueeze(1))  # (1, T', D)
        assert logmel.shape[-1] > 3 * chunked.chunk_frames  # first, interior and last chunks
        torch.testing.assert_close(hear._log_mel(chunked, x), logmel, rtol=0, atol=1e-5)
        parts = hear._encode_frames(chunked, logmel)
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6 * float(whole.abs().max()))
    scene = hear_sela.get_scene_embeddings(x, chunked)
    torch.testing.assert_close(scene, hear_sela.get_scene_embeddings(x, whole_model))


def test_receptive_context_is_structural(model, resnet_model):
    # audiontt: 3 x (conv3, pool2) -> receptive field 22 frames, reach 7 beyond its 8-frame block -> one stride
    assert model.context_frames == 8
    # resnet18: receptive field 435 frames; reach ~217 -> 7 strides of 32
    assert resnet_model.context_frames == 224


@pytest.mark.gpu
@pytest.mark.parametrize(("model_device", "input_device"), [("cuda", "cuda"), ("cuda", "cpu"), ("cpu", "cuda")])
def test_outputs_follow_the_input_device(model, model_device, input_device):
    # needs two devices: on a CPU-only machine every tensor is on the CPU and a device check cannot fail
    x = _noise(2, 1.0)
    reference = hear_sela.get_scene_embeddings(x, model.to("cpu"))
    m = model.to(model_device)
    try:
        xin = x.to(input_device)
        scene = hear_sela.get_scene_embeddings(xin, m)
        emb, ts = hear_sela.get_timestamp_embeddings(xin, m)
    finally:
        model.to("cpu")
    assert scene.device.type == emb.device.type == ts.device.type == input_device
    torch.testing.assert_close(scene.cpu(), reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("encoder", "frontend"), [("audiontt", "byola"), ("resnet18", "sela_audio")])
def test_whole_segment_training_gives_a_whole_segment_timestamp_window(tmp_path, encoder, frontend):
    """augment.crop_frames=0 trains on whole cached segments: the default window is one segment, not one stride."""
    ckpt = _checkpoint(tmp_path / "whole.pt", encoder, frontend={"preset": frontend},
                       augment={"crop_frames": 0}, data={"segment_seconds": 3.0})
    m = hear_sela.load_model(ckpt)
    segment_frames = m.frontend.num_frames(3 * m.sample_rate)  # what the cache stores per segment
    stride = int(m.encoder.time_stride)
    assert abs(m.window_frames - segment_frames) <= stride / 2  # rounded to whole encoder frames
    assert m.window_frames % stride == 0
