"""Per-sample augmentation: independence within a batch, shapes, seeded determinism, mixup memory FIFO."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hear_sela.augment import (
    LOG_PER_DB,
    MixupMemory,
    build_augment,
    random_crop,
    random_eq,
    random_linear_fader,
    random_resize_crop,
    resize_crop,
    rrc_params,
    spec_augment,
)
from hear_sela.config import AugmentConfig, FrontendConfig

ALL_ON = AugmentConfig(crop_frames=40, rrc=True, linear_fader=True, mixup=True, mixup_memory=8, specaugment=True,
                       time_mask_width=8, freq_mask_width=4, random_gain=True, random_eq=True, post_norm=False)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_of_the_whole_chain():
    aug = build_augment(ALL_ON, FrontendConfig(norm_mean=-5.0, norm_std=3.0))
    x = torch.randn(6, 16, 61) * 3 - 5  # (B, F, T_seg) raw log-mel
    for views in (1, 2):
        out = aug(x, gen(), views=views)
        assert out.shape == (views, 6, 16, 40)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_identical_inputs_get_different_augmentations():
    x = torch.randn(1, 16, 61).repeat(4, 1, 1)  # four identical clips in one batch
    crops = random_crop(x, 40, gen())
    assert not torch.equal(crops[0], crops[1]) or not torch.equal(crops[2], crops[3])
    y = torch.randn(1, 16, 40).repeat(4, 1, 1)
    rrc = random_resize_crop(y, (1.0, 1.5), (0.6, 1.5), (0.6, 1.5), gen(1))
    assert all(not torch.allclose(rrc[0], rrc[i]) for i in range(1, 4))
    fade = random_linear_fader(y, 1.0, gen(2))
    assert all(not torch.allclose(fade[0], fade[i]) for i in range(1, 4))
    masked = spec_augment(y, 2, 8, 2, 4, gen(3))
    masks = [(m == 0) for m in masked]
    assert any(not torch.equal(masks[0], m) for m in masks[1:])
    # the whole chain, with the memory warmed up so mixup also acts
    aug = build_augment(ALL_ON)
    aug(torch.randn(8, 16, 61), gen(4))
    out = aug(torch.randn(1, 16, 61).repeat(4, 1, 1), gen(5))[0]
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 4))


def test_seeded_generator_makes_the_chain_deterministic():
    x = torch.randn(5, 16, 61)
    a, b = build_augment(ALL_ON), build_augment(ALL_ON)
    for step in range(3):  # memory state evolves identically too
        torch.testing.assert_close(a(x, gen(step), views=2), b(x, gen(step), views=2), rtol=0, atol=0)
    assert not torch.equal(a(x, gen(10)), a(x, gen(11)))


def test_random_crop_windows_come_from_the_input():
    x = torch.arange(3 * 2 * 30, dtype=torch.float32).reshape(3, 2, 30)
    out = random_crop(x, 10, gen())
    for b in range(3):
        start = int(out[b, 0, 0] - x[b, 0, 0])
        torch.testing.assert_close(out[b], x[b, :, start:start + 10])
    with pytest.raises(ValueError, match="crop_frames=31"):
        random_crop(x, 31, gen())


def test_rrc_identity_when_the_crop_is_the_whole_input():
    # freq and time scale 1 on a canvas of the input's size: the crop is the input, resized to itself
    x = torch.randn(3, 16, 40)
    out = random_resize_crop(x, (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), gen())
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


def test_rrc_zoom_out_puts_canvas_zeros_at_the_edges():
    # time scale 1.5 on a 1.5x canvas: the whole canvas is shown; the input fills the middle 2/3, zeros around it
    x = torch.ones(2, 8, 60)
    out = random_resize_crop(x, (1.0, 1.5), (1.0, 1.0), (1.5, 1.5), gen())
    assert out[:, :, :5].abs().max() < 0.05 and out[:, :, -5:].abs().max() < 0.05
    torch.testing.assert_close(out[:, :, 25:35], torch.ones(2, 8, 10), atol=1e-3, rtol=0)


def test_mixup_memory_is_a_fifo_of_unmixed_inputs():
    mix = MixupMemory(ratio=0.4, size=5)
    batches = [torch.full((2, 3, 4), float(i)) for i in range(4)]  # 8 inputs, memory of 5
    first = mix(batches[0], gen())
    torch.testing.assert_close(first, batches[0])  # empty memory: nothing to mix with
    for i, b in enumerate(batches[1:], 1):
        mix(b, gen(i))
    kept = mix.ordered()[:, 0, 0].tolist()
    assert kept == [1.0, 2.0, 2.0, 3.0, 3.0]  # the newest five, oldest first, un-mixed values
    # state round trip (checkpoints): same memory, same next output
    other = MixupMemory(ratio=0.4, size=5)
    other.load_state_dict(mix.state_dict())
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(other(x, gen(9)), mix(x, gen(9)))


def test_mixup_mixes_in_the_exp_domain_towards_the_partner():
    # ratio 0.2: the partner's weight a ~ U(0, 0.2) is small, so weights swapped (a on the input, 1 - a on the
    # partner) would land near the partner instead (a ratio of 1.0 is symmetric and cannot tell)
    mix = MixupMemory(ratio=0.2, size=4)
    mix(torch.zeros(4, 2, 3), gen())  # memory now holds zeros
    out = mix(torch.full((4, 2, 3), -20.0), gen(1))
    a = torch.rand((4, 1, 1), generator=gen(1)) * 0.2  # the mixing weights: the generator's first draw
    expected = torch.log((1 - a) * torch.exp(torch.tensor(-20.0)) + a * 1.0 + torch.finfo(torch.float32).eps)
    torch.testing.assert_close(out, expected.expand(4, 2, 3))
    assert (out > -20).all() and (out <= torch.log(torch.tensor(0.2))).all()
    assert len({round(v, 5) for v in out[:, 0, 0].tolist()}) == 4


def test_random_gain_is_an_amplitude_gain_on_the_log_power_mel():
    # scaling the waveform by g must equal random_gain on the log-mel of the original: + 2 ln g (power), not + ln g
    from hear_sela.augment import random_gain
    from hear_sela.frontend import LogMel

    lm = LogMel(FrontendConfig(backend="torchaudio"))
    wav = torch.randn(2, 16000, generator=gen(3))  # (B, S) white noise, far above the log's eps in every bin
    x, quieter = lm.log_mel(wav), lm.log_mel(0.5 * wav)  # (B, F, T)
    torch.testing.assert_close(random_gain(x, (0.5, 0.5), gen()), quieter, atol=1e-3, rtol=0)


def test_random_eq_adds_a_piecewise_linear_gain_curve_in_db_over_the_mel_axis():
    x = torch.randn(4, 33, 5, generator=gen(1))  # (B, F, T)
    offset = (random_eq(x, 6.0, 5, LOG_PER_DB, gen()) - x) / LOG_PER_DB  # (B, F, T) in dB
    torch.testing.assert_close(offset, offset[..., :1].expand_as(offset))  # one curve per clip, the same every frame
    curve = offset[..., 0]  # (B, F)
    assert curve.abs().max() <= 6.0 + 1e-4 and curve.abs().max() > 3.0
    bend = (curve[:, 2:] - 2 * curve[:, 1:-1] + curve[:, :-2]).abs()  # (B, F - 2): nonzero only at inner knots
    knots = [8 - 1, 16 - 1, 24 - 1]  # 5 knots over 33 bins sit on bins 0, 8, 16, 24, 32
    assert bend[:, [i for i in range(31) if i not in knots]].max() < 1e-4 and bend[:, knots].max() > 1e-2
    assert not torch.allclose(curve[0], curve[1])  # every clip its own equaliser


def test_a_db_of_eq_is_a_db_of_power_on_the_frontends_log_mel():
    # the units random_eq adds: 6 dB on the log-mel = the waveform scaled by 10 ** (6 / 20)
    from hear_sela.frontend import LogMel

    lm = LogMel(FrontendConfig(backend="torchaudio"))
    wav = torch.randn(2, 16000, generator=gen(3))  # (B, S) white noise, far above the log's eps in every bin
    louder = lm.log_mel(10 ** (6 / 20) * wav) - lm.log_mel(wav)  # (B, F, T)
    torch.testing.assert_close(louder, torch.full_like(louder, 6 * LOG_PER_DB), atol=1e-3, rtol=0)


def test_the_chains_eq_is_in_db_of_the_raw_power_whatever_the_normalisation():
    only_eq = AugmentConfig(crop_frames=0, rrc=False, mixup=False, random_eq=True, eq_db=6.0, post_norm=False)
    x = torch.zeros(64, 16, 8)  # (B, F, T) a raw log-mel equal to the normalisation mean
    out = build_augment(only_eq, FrontendConfig(norm_mean=0.0, norm_std=2.0))(x, gen())[0]  # (B, F, T)
    db = out * 2.0 / LOG_PER_DB  # back to raw log power, in dB
    assert db.abs().max() <= 6.0 + 1e-4 and db.abs().max() > 5.0
    with pytest.raises(ValueError, match="augment.eq_points"):
        dataclasses.replace(only_eq, eq_points=1).validate()


def test_flipped_batch_mixing_when_memory_is_zero():
    mix = MixupMemory(ratio=1.0, size=0)
    x = torch.stack([torch.full((2, 3), -30.0), torch.zeros(2, 3)])
    out = mix(x, gen())
    assert out[0, 0, 0] > -30  # mixed with the other clip
    assert mix.state_dict()["_extra_state"]["memory"] is None


def test_post_norm_standardises_the_batch():
    aug = build_augment(dataclasses.replace(ALL_ON, post_norm=True))
    out = aug(torch.randn(8, 16, 61) * 4 + 2, gen(), views=2)
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 1e-4


def test_bad_config_is_rejected_with_the_key():
    with pytest.raises(ValueError, match="augment.rrc_time_scale"):
        build_augment(dataclasses.replace(ALL_ON, rrc_time_scale=(1.5, 0.6)))


def test_batched_resize_crop_matches_crop_then_interpolate_away_from_the_crop_edges():
    # reference: BYOL-A's recipe written plainly for one sample (zero canvas, slice, F.interpolate bicubic)
    torch.manual_seed(0)
    x = torch.randn(4, 16, 40)
    i, j, h, w = rrc_params(4, 16, 40, (1.0, 1.5), (0.6, 1.5), (0.6, 1.5), gen(7), x.device)
    out = resize_crop(x, i, j, h, w, (1.0, 1.5))
    for b in range(4):
        canvas = torch.zeros(16, 60)
        canvas[:, 10:50] = x[b]
        ib, jb, hb, wb = int(i[b]), int(j[b]), int(h[b]), int(w[b])
        crop = canvas[ib:ib + hb, jb:jb + wb]
        ref = torch.nn.functional.interpolate(crop[None, None], size=(16, 40), mode="bicubic", align_corners=True)[0, 0]
        # output pixels whose bicubic support (2 source pixels each side) lies inside the crop agree exactly
        fs = torch.arange(16) * (hb - 1) / 15
        ts = torch.arange(40) * (wb - 1) / 39
        rows = (fs >= 2) & (fs <= hb - 3)
        cols = (ts >= 2) & (ts <= wb - 3)
        assert rows.sum() > 0 and cols.sum() > 0
        torch.testing.assert_close(out[b][rows][:, cols], ref[rows][:, cols], atol=1e-4, rtol=1e-4)
