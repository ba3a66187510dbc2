"""The s3prl upstream (upstream/hear_sela): hidden-state shapes, frame counts and downsample rates against real
frame counts, batch-independence of valid frames, s3prl's own Featurizer on top, and the hub entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hear_sela.checkpoint import encoder_checkpoint_state, export_encoder, save_checkpoint
from hear_sela.config import Config
from hear_sela.encoders import build_encoder
from hear_sela.s3prl_compat import import_hubconf

# clip lengths in samples: very short (< half a frame, one sample), around the rounding edges of 1280 and 5120,
# and a few seconds; all in one batch
LENGTHS = [1, 639, 640, 641, 1919, 1920, 1921, 5119, 7680, 16000, 3 * 16000 + 17]


def _export(tmp: Path, encoder: str, **encoder_kwargs) -> Path:
    cfg = Config()
    cfg.model.encoder = encoder
    cfg.model.encoder_kwargs = dict(encoder_kwargs)
    cfg.frontend.norm_mean, cfg.frontend.norm_std = -8.0, 4.0
    torch.manual_seed(0)
    model = build_encoder(cfg)
    for m in model.modules():  # trained-like BatchNorms (timm zero-inits the last one of each residual block)
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    ckpt = save_checkpoint(tmp / f"{encoder}.pt", encoder_checkpoint_state(cfg, model))
    return export_encoder(ckpt, tmp / f"{encoder}.safetensors")


@pytest.fixture(scope="module")
def hubconf():
    return import_hubconf()


@pytest.fixture(scope="module", params=["audiontt", "resnet18"])
def upstream(request, hubconf, tmp_path_factory):
    # resnet with timm's (variance-keeping) init: under the audio-SeLa N(0, 0.02) init, signals vanish with depth
    kwargs = {"init_std": None} if request.param == "resnet18" else {}
    return hubconf.hear_sela(ckpt=str(_export(tmp_path_factory.mktemp(request.param), request.param, **kwargs)))


@pytest.fixture(scope="module")
def wavs():
    g = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(n, generator=g) for n in LENGTHS]


@pytest.fixture(scope="module")
def batch_out(upstream, wavs):
    with torch.no_grad():
        return upstream(wavs)["hidden_states"]


def test_downsample_rate_is_hop_times_encoder_stride(upstream):
    expected = {"AudioNTT2020": 160 * 8, "TimmResNet": 160 * 32}[type(upstream.encoder).__name__]
    assert upstream.get_downsample_rates("hidden_states") == expected
    assert upstream.get_downsample_rates("last_hidden_state") == expected
    with pytest.raises(KeyError, match="PR"):
        upstream.get_downsample_rates("PR")


def test_hidden_states_share_one_shape(upstream, batch_out):
    rate = upstream.downsample_rate
    n_stages = {"AudioNTT2020": 3, "TimmResNet": 3}[type(upstream.encoder).__name__]
    assert len(batch_out) == 1 + n_stages + 1  # log-mel, stages, final frames
    expected = (len(LENGTHS), max(round(n / rate) for n in LENGTHS), upstream.hidden_dim)
    assert all(tuple(h.shape) == expected for h in batch_out)
    assert upstream.hidden_dim == max(upstream.state_dims)
    assert upstream.state_dims[0] == 64 and upstream.state_dims[-1] == upstream.encoder.embed_dim


@pytest.fixture(scope="module")
def alone_out(upstream, wavs):
    with torch.no_grad():
        return [upstream([w])["hidden_states"] for w in wavs]


def test_frame_count_matches_s3prl_rule(upstream, wavs, alone_out):
    """Alone, each clip gives exactly round(len / rate) frames in every state: s3prl's Featurizer keeps all of
    them, and no padding frame."""
    rate = upstream.downsample_rate
    for w, hs in zip(wavs, alone_out):
        assert [h.shape[1] for h in hs] == [round(len(w) / rate)] * len(hs), len(w)


def test_valid_frames_do_not_depend_on_the_batch(upstream, wavs, batch_out, alone_out):
    """Batched with longer clips, a clip's valid frames equal its frames alone; frames past them are zero."""
    rate = upstream.downsample_rate
    for i, (w, alone) in enumerate(zip(wavs, alone_out)):
        n = round(len(w) / rate)
        for k, (a, b) in enumerate(zip(alone, batch_out)):
            scale = a.abs().amax().clamp_min(1e-6) if n else 1.0
            assert torch.allclose(a[0], b[i, :n], atol=1e-5 * scale), (len(w), k)
            assert torch.count_nonzero(b[i, n:]) == 0
        if n:
            assert alone[-1][0].abs().sum() > 0  # the final state carries signal


def test_unmasked_padding_would_leak(upstream):
    """The check above can fail: run the same encoder on the zero-padded batch without PaddedRunner and the last
    kept frame of the short clip changes."""
    rate = upstream.downsample_rate
    g = torch.Generator().manual_seed(2)
    short, long = 0.1 * torch.randn(3 * rate + rate // 2 - 1, generator=g), 0.1 * torch.randn(8 * rate, generator=g)
    last = round(len(short) / rate) - 1
    with torch.no_grad():
        mel_short, mel_long = upstream.frontend(short[None]), upstream.frontend(long[None])  # (1, F, T)
        padded = torch.nn.functional.pad(mel_short, (0, mel_long.shape[-1] - mel_short.shape[-1]))
        naive = upstream.encoder.forward_features(torch.cat([padded, mel_long])[:, None])[0, last]
        exact = upstream([short, long])["hidden_states"][-1][0, last, : upstream.encoder.embed_dim]
        alone = upstream([short])["hidden_states"][-1][0, last, : upstream.encoder.embed_dim]
    scale = alone.abs().max()
    assert torch.allclose(exact, alone, atol=1e-5 * scale)
    assert (naive - alone).abs().max() > 1e-3 * scale


def test_states_are_the_frontend_and_encoder_outputs(upstream):
    """Same code as training and HEAR: on a clip of whole frames, the last state is the encoder's own frame
    features on the frontend's log-mel, and the first is that log-mel averaged over each frame's window."""
    rate, stride = upstream.downsample_rate, upstream.stride
    wav = 0.1 * torch.randn(5 * rate, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        hs = upstream([wav])["hidden_states"]
        mel = upstream.frontend(wav[None])  # (1, F, T)
        feats = upstream.encoder.forward_features(mel[:, None])  # (1, T', D)
    n_mels, dim = mel.shape[1], feats.shape[-1]
    torch.testing.assert_close(hs[-1][0, :, :dim], feats[0, :5], rtol=1e-4, atol=1e-5 * float(feats.abs().max()))
    assert torch.count_nonzero(hs[-1][0, :, dim:]) == 0
    mel_frames = mel[0, :, : 5 * stride].reshape(n_mels, 5, stride).mean(-1).T  # (5, F)
    torch.testing.assert_close(hs[0][0, :, :n_mels], mel_frames, rtol=1e-5, atol=1e-5)


@pytest.mark.integration  # imports s3prl
def test_s3prl_featurizer_accepts_the_upstream(upstream, wavs):
    """s3prl's own Featurizer (run_downstream's): its 1 s probe, rate check, weighted sum and per-clip slicing."""
    from s3prl.upstream.interfaces import Featurizer

    feat = Featurizer(upstream, upstream_device="cpu")
    assert feat.downsample_rate == upstream.downsample_rate and feat.output_dim == upstream.hidden_dim
    with torch.no_grad():
        per_clip = feat(wavs, upstream(wavs))
    assert [f.shape[0] for f in per_clip] == [round(len(w) / upstream.downsample_rate) for w in wavs]


def test_ceil_length_rule(hubconf, upstream, wavs):
    """length_rule="ceil" (s3prl.nn.S3PRLUpstream's rule) keeps ceil(len / rate) frames, equal to the round-rule
    frames where both exist."""
    ceil_up = hubconf.hear_sela(ckpt=upstream.source, length_rule="ceil")
    rate = ceil_up.downsample_rate
    with torch.no_grad():
        hs = ceil_up(wavs)["hidden_states"]
        for w in wavs[:6]:
            n_ceil, n_round = -(-len(w) // rate), round(len(w) / rate)
            alone = ceil_up([w])["hidden_states"][-1]
            assert alone.shape[1] == n_ceil
            if n_round == n_ceil:
                ref = upstream([w])["hidden_states"][-1]
                assert torch.allclose(alone, ref, atol=1e-5 * ref.abs().max().clamp_min(1e-6))
    assert hs[0].shape[1] == max(-(-n // rate) for n in LENGTHS)


def test_entries_and_errors(hubconf, upstream):
    import hear_sela.s3prl_compat as compat

    assert {"hear_sela", "hear_sela_local"} <= {n for n in vars(hubconf) if not n.startswith("_")}
    local = hubconf.hear_sela_local(ckpt=upstream.source)
    assert local.downsample_rate == upstream.downsample_rate
    with pytest.raises(ValueError, match="-k"):
        hubconf.hear_sela_local(ckpt=None)
    with pytest.raises(ValueError, match="model config"):
        hubconf.hear_sela(ckpt=upstream.source, model_config="model.yaml")
    with pytest.raises(ValueError, match="length_rule"):
        hubconf.hear_sela(ckpt=upstream.source, window=3)
    assert compat.upstream_dir() == Path(hubconf.__file__).parent


def test_default_weights_without_ckpt(hubconf):
    """`-u hear_sela` with no `-k`: the runner calls hear_sela(ckpt=None, ...) -> the embedded default weights."""
    up = hubconf.hear_sela(ckpt=None, model_config=None, refresh=False)
    assert Path(up.source).name == "default.safetensors"
    with torch.no_grad():
        hs = up([torch.zeros(16000)])["hidden_states"]
    assert hs[-1].shape == (1, round(16000 / up.downsample_rate), up.hidden_dim)


def test_loads_a_byola_state_dict_as_the_hear_module_does(hubconf, tmp_path):
    """The expert loads weights through the HEAR module's loader, so a published BYOL-A .pth works in both."""
    import hear_sela
    from helpers.byola import byola_layout_state

    path = tmp_path / "AudioNTT2020-BYOLA-64x96d32.pth"
    torch.save(byola_layout_state(), path)
    up, hear = hubconf.hear_sela(ckpt=str(path)), hear_sela.load_model(str(path))
    assert up.source == str(path)
    assert up.frontend.cfg == hear.frontend.cfg  # BYOL-A's frontend and normalisation statistics
    ours, theirs = up.encoder.state_dict(), hear.encoder.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    with torch.no_grad():
        hs = up([torch.zeros(16000)])["hidden_states"]
    assert hs[-1].shape == (1, round(16000 / up.downsample_rate), up.hidden_dim)
