"""Checkpoints: atomic writes, weights_only loading, refusal of foreign files by name, export round trips."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import soundfile as sf
import torch

import hear_sela
from hear_sela.checkpoint import (
    CheckpointError,
    encoder_checkpoint_state,
    export_encoder,
    load_checkpoint,
    load_encoder_bundle,
    save_checkpoint,
)
from hear_sela.config import config_from_dict
from hear_sela.encoders import build_encoder
from hear_sela.fileio import atomic_write
from hear_sela.training.state import capture_rng, restore_rng


class _Evil:
    """Unpickling this would call print (a stand-in for arbitrary code); weights_only must refuse it."""

    def __reduce__(self):
        return (print, ("arbitrary code ran",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training checkpoint of a small encoder with non-default weights and frontend stats."""
    torch.manual_seed(0)
    cfg = config_from_dict({"model": {"encoder": "audiontt_d512"}, "train": {"objective": "byol"},
                            "frontend": {"norm_mean": -6.5, "norm_std": 3.25}})
    enc = build_encoder(cfg)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, {**encoder_checkpoint_state(cfg, enc), "step": 7, "heads": torch.randn(3, 4)})
    return path, cfg, enc.eval()


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "ckpt.pt"

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing)
    assert not target.exists()
    assert os.listdir(tmp_path) == []  # no temporary file either


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "ckpt.pt"
    save_checkpoint(target, {"step": 1})

    def failing(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, failing)
    assert load_checkpoint(target)["step"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]


@pytest.mark.parametrize("error", [RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 17675264"),
                                   OSError(28, "No space left on device")])
def test_a_write_that_fails_on_a_full_disk_says_so(tmp_path, monkeypatch, error):
    import collections
    import errno

    import hear_sela.fileio as fileio
    from hear_sela.cli import expected_error

    target = tmp_path / "last.pt"
    save_checkpoint(target, {"step": 1})
    usage = collections.namedtuple("usage", "total used free")
    # torch.save's error on a full disk carries no errno: the free space decides; ENOSPC decides by itself
    free = 10 * 2**20 if isinstance(error, RuntimeError) else 10 * 2**30
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: usage(2**40, 2**40 - free, free))

    def failing(tmp):
        raise error

    with pytest.raises(fileio.DiskFullError, match=r"last.pt: not written, its disk is full \(\d+ MiB free") as e:
        atomic_write(target, failing)
    assert e.value.errno == errno.ENOSPC and e.value.__cause__ is error and expected_error(e.value)
    assert load_checkpoint(target)["step"] == 1 and os.listdir(tmp_path) == ["last.pt"]
    # the same failure with room on the disk is not called a full disk
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: usage(2**40, 0, 2**40))
    with pytest.raises(type(error)) as e2:
        atomic_write(target, failing)
    assert isinstance(error, OSError) or not isinstance(e2.value, fileio.DiskFullError)


def test_save_and_load_round_trip(trained):
    path, cfg, enc = trained
    state = load_checkpoint(path)
    assert state["format"] == "hear_sela.checkpoint" and state["step"] == 7
    for k, v in enc.state_dict().items():
        assert torch.equal(state["encoder"][k], v)


def test_load_uses_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "hear_sela.checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    assert "arbitrary code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["random_bytes", "pickle_of_object", "torch_file_without_marker", "missing",
                                  "empty"])
def test_foreign_files_raise_checkpoint_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "pickle_of_object":
        # protocol 2, as torch.save writes: another one adds torch's protocol warning to the refusal tested here
        path.write_bytes(pickle.dumps({"a": {1, 2, 3}, "b": object.__new__(_Evil)}, protocol=2))
    elif kind == "torch_file_without_marker":
        torch.save({"encoder": {"w": torch.zeros(2)}, "config": {}}, path)
    elif kind == "empty":
        path.write_bytes(b"")
    for loader in (load_checkpoint, load_encoder_bundle):
        with pytest.raises(CheckpointError) as e:
            loader(path)
        assert str(path) in str(e.value)


@pytest.mark.parametrize(("name", "kind"), [("clip.wav", "a RIFF (WAV) audio file"),
                                            ("clip.pt", "a RIFF (WAV) audio file"),
                                            ("model.pt", "an empty file (0 bytes)")])
def test_audio_or_empty_file_as_a_model_says_what_it_is(tmp_path, name, kind):
    path = tmp_path / name
    if "empty" in kind:
        path.write_bytes(b"")
    else:
        sf.write(path, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    for loader in (load_checkpoint, load_encoder_bundle, hear_sela.load_model):
        with pytest.raises(CheckpointError) as e:
            loader(str(path))
        message = str(e.value)
        assert message.startswith(f"{path}: is {kind}, not a model") and "\n" not in message


def test_export_is_not_a_training_checkpoint(trained, tmp_path):
    out = export_encoder(trained[0], tmp_path / "enc.pt")
    with pytest.raises(CheckpointError, match="export"):
        load_checkpoint(out)


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(CheckpointError, match="metadata"):
        load_encoder_bundle(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("half", [False, True])
def test_export_round_trip_reproduces_embeddings(trained, tmp_path, suffix, half):
    path, cfg, enc = trained
    out = export_encoder(path, tmp_path / f"enc{suffix}", half=half)
    bundle = load_encoder_bundle(out)
    assert bundle.config == cfg and bundle.objective == "byol"
    assert (bundle.config.frontend.norm_mean, bundle.config.frontend.norm_std) == (-6.5, 3.25)
    assert not bundle.encoder.training
    x = torch.randn(3, 1, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = enc(x), bundle.encoder(x)
    if half:  # float16 weights: a few parts in a thousand
        assert torch.allclose(got, ref, rtol=2e-2, atol=2e-3 * ref.abs().max().item())
        assert out.stat().st_size < 0.6 * export_encoder(path, tmp_path / f"full{suffix}").stat().st_size
    else:
        assert torch.equal(got, ref)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_exports_get_the_permissions_of_a_plain_file(trained, tmp_path, suffix):
    # like open(): 0666 less the umask (0644 under the usual 022), not mkstemp's 0600 (safetensors rewrites the file)
    old = os.umask(0o022)
    try:
        out = export_encoder(trained[0], tmp_path / f"enc{suffix}")
        ckpt = save_checkpoint(tmp_path / "c.pt", {"x": torch.zeros(1)})
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(ckpt.stat().st_mode & 0o777) == oct(0o644)


def test_re_export_of_an_export(trained, tmp_path):
    first = export_encoder(trained[0], tmp_path / "a.safetensors")
    second = export_encoder(first, tmp_path / "b.pt")
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_encoder_bundle(first).encoder(x), load_encoder_bundle(second).encoder(x))


def test_rng_capture_and_restore_survive_a_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()  # move every generator on
    restore_rng(load_checkpoint(path)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


# ---------------------------------------------------------------- loadable but broken files


def _export_with(path, trained, config_change=None, weight_change=None):
    """A .pt export of `trained` with its stored config or weights altered (as a damaged or crafted file would be)."""
    src, cfg, enc = trained
    obj = load_checkpoint(src)
    config = obj["config"]
    encoder = dict(obj["encoder"])
    if config_change:
        config = config_change(config)
    if weight_change:
        weight_change(encoder)
    torch.save({"format": "hear_sela.export", "config": config, "encoder": encoder}, path)
    return path


def _with(config, section, key, value):
    return {**config, section: {**config[section], key: value}}


@pytest.mark.parametrize("key,value,phrase", [
    ("norm_std", 0.0, "frontend.norm_std must be > 0"),  # NaN embeddings otherwise
    ("norm_mean", float("nan"), "frontend.norm_mean must be a finite number"),
])
def test_bad_normalisation_statistics_are_refused_by_name(trained, tmp_path, key, value, phrase):
    bad = _export_with(tmp_path / "bad.pt", trained, lambda c: _with(c, "frontend", key, value))
    with pytest.raises(CheckpointError, match=f"bad.pt: .*{phrase}"):
        load_encoder_bundle(bad)


def test_non_finite_weights_are_refused_naming_the_tensor(trained, tmp_path):
    def poison(encoder):
        name = next(k for k, v in encoder.items() if v.is_floating_point())
        encoder[name] = encoder[name].clone()
        encoder[name].view(-1)[3] = float("nan")

    bad = _export_with(tmp_path / "nan.pt", trained, weight_change=poison)
    with pytest.raises(CheckpointError, match=r"nan.pt: non-finite \(NaN/inf\) weights in 1 tensor"):
        load_encoder_bundle(bad)
    with pytest.raises(CheckpointError, match="non-finite"):  # nor is it exported
        export_encoder(bad, tmp_path / "again.safetensors")
    assert not (tmp_path / "again.safetensors").exists()


@pytest.mark.parametrize("change", [
    lambda c: {**c, "model": {"encoder": "audiontt", "encoder_kwargs": {"d": 2**20}}},  # a 4 TB layer
    lambda c: _with(c, "frontend", "n_mels", 2**16),
], ids=["d", "n_mels"])
def test_crafted_sizes_are_checked_against_the_tensors_before_anything_is_allocated(trained, tmp_path, change):
    """The stored config's sizes are compared with the file's tensors on the meta device, before any allocation."""
    bad = _export_with(tmp_path / "big.pt", trained, change)
    with pytest.raises(CheckpointError, match=r"big.pt: encoder weights do not fit encoder 'audiontt(_d512)?'"):
        load_encoder_bundle(bad)


def test_an_export_whose_config_is_not_a_mapping_is_refused(trained, tmp_path):
    bad = _export_with(tmp_path / "odd.pt", trained, lambda c: "not a config")
    for load in (load_encoder_bundle, lambda p: export_encoder(p, tmp_path / "re.pt")):
        with pytest.raises(CheckpointError, match="odd.pt: its stored 'config' is str, not a mapping"):
            load(bad)


# ---------------------------------------------------------------- checksums


def _flip_a_bit(path, tensor_bytes: bytes) -> None:
    """Flip one bit inside the stored bytes of a tensor (found by its content, so the container stays readable)."""
    data = bytearray(path.read_bytes())
    at = data.find(tensor_bytes)
    assert at >= 0
    data[at + len(tensor_bytes) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", "checkpoint"])
def test_flipped_bits_are_caught_by_the_stored_checksum(trained, tmp_path, suffix):
    src, cfg, enc = trained
    if suffix == "checkpoint":
        path = tmp_path / "last.pt"
        save_checkpoint(path, {**encoder_checkpoint_state(cfg, enc), "step": 7})
        load = load_checkpoint
    else:
        path = export_encoder(src, tmp_path / f"enc{suffix}")
        load = load_encoder_bundle
    load(path)  # intact: loads
    weight = next(v for v in enc.state_dict().values() if v.is_floating_point() and v.numel() > 1000)
    _flip_a_bit(path, weight.detach().contiguous().numpy().tobytes()[:4096])
    with pytest.raises(CheckpointError, match=rf"{path.name}: damaged: its tensors do not match the checksum"):
        load(path)


def test_files_without_a_checksum_still_load_and_say_so_in_the_debug_log(trained, tmp_path, caplog):
    import logging

    src, _, _ = trained
    old = tmp_path / "old.pt"
    obj = load_checkpoint(src)  # as written before checksums: the same contents, no checksum key
    torch.save(obj, old)
    with caplog.at_level(logging.DEBUG, logger="hear_sela.checkpoint"):
        assert load_checkpoint(old)["step"] == 7
    assert "old.pt: no tensor_sha256" in caplog.text
