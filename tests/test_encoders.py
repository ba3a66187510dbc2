"""Encoder registry: every registered encoder's shapes and time stride, parameter counts, error messages."""

from __future__ import annotations

import pytest
import torch

from hear_sela.encoders import Encoder, create_encoder, list_encoders, register_encoder

ENCODERS = list_encoders()
# audiontt2022 at BYOL-A v2's defaults: the 6.3 M parameters its paper (TASLP 2023) gives for AudioNTT2022
PARAMS = {"audiontt": 5_321_856, "audiontt_d512": 600_192, "audiontt2022": 6_333_376, "resnet18": 11_170_240}


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {name: create_encoder(name).eval() for name in ENCODERS}


def test_registry_has_the_required_encoders():
    assert {"audiontt", "resnet18"} <= set(ENCODERS)
    assert list_encoders("resnet*") == sorted(n for n in ENCODERS if n.startswith("resnet"))


@pytest.mark.parametrize("name", ENCODERS)
def test_shapes_and_stride(built, name):
    enc = built[name]
    assert isinstance(enc, Encoder)
    for mult in (2, 3):
        t = mult * enc.time_stride
        x = torch.randn(2, 1, 64, t)
        with torch.no_grad():
            feats = enc.forward_features(x)  # (B, T', D)
            clip = enc(x)  # (B, D)
        assert feats.shape == (2, t // enc.time_stride, enc.embed_dim)
        assert enc.output_frames(t) == t // enc.time_stride
        assert clip.shape == (2, enc.embed_dim)
        assert torch.allclose(clip, enc.forward_head(feats))


@pytest.mark.parametrize("name", ENCODERS)
def test_min_frames_gives_one_output_frame(built, name):
    enc = built[name]
    with torch.no_grad():
        assert enc.forward_features(torch.randn(1, 1, 64, enc.min_frames)).shape[1] >= 1


@pytest.mark.parametrize("name", ENCODERS)
def test_output_frames_matches_for_lengths_not_a_multiple_of_the_stride(built, name):
    enc = built[name]
    t = 3 * enc.time_stride + enc.time_stride // 2
    with torch.no_grad():
        assert enc.forward_features(torch.randn(1, 1, 64, t)).shape[1] == enc.output_frames(t)


@pytest.mark.parametrize("name,count", sorted(PARAMS.items()))
def test_parameter_counts(built, name, count):
    assert sum(p.numel() for p in built[name].parameters()) == count


def test_audiontt_embed_dims(built):
    assert built["audiontt"].embed_dim == 2048 and built["audiontt_d512"].embed_dim == 512
    assert built["resnet18"].embed_dim == 512


def test_audiontt_head_is_max_plus_mean(built):
    feats = torch.randn(2, 5, 2048)
    assert torch.allclose(built["audiontt"].forward_head(feats), feats.max(1).values + feats.mean(1))


def test_audiontt2022_stacks_the_conv_map_with_the_mlp_output(built):
    enc = built["audiontt2022"]
    x = torch.randn(2, 1, 64, 40)
    with torch.no_grad():
        feats = enc.forward_features(x)  # (B, T/4, 3072)
        conv = enc.features(x)  # (B, 64, 16, 10)
    flat = conv.permute(0, 3, 1, 2).flatten(2)  # (B, T/4, C*F/4), channel-major as audiontt flattens
    assert enc.time_stride == 4 and feats.shape == (2, 10, 3072)
    assert torch.equal(feats[..., :1024], flat)
    with torch.no_grad():
        assert torch.equal(feats[..., 1024:], enc.fc(flat))


def test_audiontt2022_small_size_and_its_errors():
    enc = create_encoder("audiontt2022", n_mels=64, d=1536, channels=64, mlp_hidden=512)
    assert enc.embed_dim == 1536 and enc.fc[-2].out_features == 512
    with pytest.raises(ValueError, match="must exceed the stacked conv width 1024"):
        create_encoder("audiontt2022", n_mels=64, d=1024)
    with pytest.raises(ValueError, match="divisible by 4"):
        create_encoder("audiontt2022", n_mels=66)


def test_eval_mode_is_deterministic(built):
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        assert torch.equal(built["audiontt"](x), built["audiontt"](x))


def test_unknown_encoder_lists_the_registered_names():
    with pytest.raises(ValueError) as e:
        create_encoder("vgg_nonexistent")
    assert "vgg_nonexistent" in str(e.value)
    for name in ENCODERS:
        assert name in str(e.value)


def test_registering_a_name_twice_fails():
    def audiontt():  # same name as a registered encoder
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="audiontt"):
        register_encoder(audiontt)


def test_none_kwargs_are_dropped():
    enc = create_encoder("audiontt_d512", n_mels=None)
    assert enc.embed_dim == 512
