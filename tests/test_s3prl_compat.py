"""hear_sela.s3prl_compat: each shim works, is applied only when needed, never replaces what exists, and the set
this stack needs is the documented one (so an upgrade that makes a shim unnecessary fails a test)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from packaging.version import Version

from hear_sela.s3prl_compat import SHIMS, apply_shims, needed_shims, register_upstream, shims
from hear_sela.s3prl_compat.__main__ import main as launcher_main
from hear_sela.s3prl_compat.catalyst_sampler import DistributedSamplerWrapper

_MISSING = object()
_PATCHED_MODULES = ("torchaudio.sox_effects", "catalyst", "catalyst.data", "catalyst.data.sampler")


def _installed(name: str) -> bool:
    return name in sys.modules or importlib.util.find_spec(name) is not None


def expected_shims() -> set[str]:
    """What each shim is documented to be needed for, from versions and installed packages."""
    import huggingface_hub
    import torchaudio

    expected = set()
    if _installed("triton") and _installed("tensorflow"):
        expected.add("load triton before tensorflow")
    if Version(torchaudio.__version__.split("+")[0]) >= Version("2.9"):
        expected |= {"torchaudio.set_audio_backend", "torchaudio.sox_effects"}
        if not _installed("torchcodec"):
            expected.add("torchaudio.load")
    if Version(huggingface_hub.__version__) >= Version("1.0"):
        expected |= {"huggingface_hub.HfFolder", "huggingface_hub.Repository"}
    if not _installed("catalyst"):
        expected.add("catalyst.data.sampler")
    if Version(torch.__version__.split("+")[0]) >= Version("2.6") and os.environ.get(
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0") in ("0", ""):
        expected.add("torch safe global argparse.Namespace")
    return expected


@contextlib.contextmanager
def _isolated():
    """Apply the shims for one test and undo them after, so other tests see the stack as it is."""
    import huggingface_hub
    import torchaudio

    attrs = [(torchaudio, n) for n in ("set_audio_backend", "sox_effects", "load")]
    attrs += [(huggingface_hub, n) for n in ("HfFolder", "Repository")]
    saved_attrs = [(obj, name, vars(obj).get(name, _MISSING)) for obj, name in attrs]
    saved_modules = {m: sys.modules.get(m, _MISSING) for m in _PATCHED_MODULES}
    saved_globals = list(torch.serialization.get_safe_globals())
    saved_applied = list(shims._applied)
    try:
        yield
    finally:
        for obj, name, value in saved_attrs:
            if value is _MISSING:
                vars(obj).get(name, _MISSING) is _MISSING or delattr(obj, name)
            else:
                setattr(obj, name, value)
        for name, module in saved_modules.items():
            if module is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved_globals)
        shims._applied[:] = saved_applied


@pytest.fixture
def shimmed():
    with _isolated():
        yield apply_shims()


@pytest.mark.integration  # a fresh process probes s3prl's stack (tensorflow, triton)
def test_needed_shims_on_this_stack_are_the_documented_ones():
    """In a fresh process (nothing imported yet), the shims found needed are exactly those the versions call for;
    an upgrade that makes one unnecessary, or a new break, changes the set."""
    out = subprocess.run([sys.executable, "-m", "hear_sela.s3prl_compat", "shims"], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    needed = {line.split(":")[0].removeprefix("needed").strip() for line in out.splitlines()
              if line.startswith("needed ")}
    assert len(out.splitlines()) == len(SHIMS)
    assert needed == expected_shims()


@pytest.mark.integration  # imports tensorflow
def test_tensorflow_then_triton_still_crashes():
    """Why "load triton before tensorflow" exists: when this stops crashing, the shim can go."""
    if not (_installed("triton") and _installed("tensorflow")):
        assert "load triton before tensorflow" not in expected_shims()
        return
    crash = subprocess.run([sys.executable, "-c", "import tensorflow, triton"], capture_output=True, timeout=300)
    assert crash.returncode == -11, crash.stderr[-2000:]  # SIGSEGV; that the shim avoids it: the end-to-end runs


def test_apply_is_idempotent_and_leaves_nothing_needed(shimmed):
    assert set(shimmed) <= {s.name for s in SHIMS}
    assert apply_shims() == shimmed
    assert needed_shims() == []


def test_set_audio_backend_is_a_checking_noop(shimmed):
    import torchaudio

    torchaudio.set_audio_backend("sox_io")
    torchaudio.set_audio_backend("soundfile")
    with pytest.raises(ValueError, match="bogus"):
        torchaudio.set_audio_backend("bogus")


def _write(path: Path, wav: np.ndarray, sr: int) -> Path:
    sf.write(path, wav, sr, subtype="PCM_16")
    return path


def test_sox_effects_stand_in_does_what_s3prl_asks(shimmed, tmp_path):
    """speech_commands' effects: channels 1 (mean), rate 16000, gain -3 dB, on a stereo 22.05 kHz file."""
    from torchaudio.sox_effects import apply_effects_file, apply_effects_tensor

    sr, n = 22050, 22050
    t = np.arange(n) / sr
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], axis=1)
    path = _write(tmp_path / "stereo.wav", stereo, sr)
    wav, rate = apply_effects_file(str(path), [["channels", "1"], ["rate", "16000"], ["gain", "-3.0"]])
    assert rate == 16000 and wav.dtype == torch.float32 and wav.shape == (1, 16000)
    peak = wav[0, 1000:-1000].abs().max().item()  # the mean of the channels is a 0.4 sine
    assert peak == pytest.approx(0.4 * 10 ** (-3 / 20), rel=0.01)
    same, _ = apply_effects_tensor(torch.from_numpy(stereo.T).float(), sr, [["channels", "1"]])
    assert torch.allclose(same[0], torch.from_numpy(stereo.mean(1)).float(), atol=1e-4)  # 16-bit file vs float
    with pytest.raises(NotImplementedError, match="reverb"):
        apply_effects_file(str(path), [["reverb", "50"]])


@pytest.mark.integration  # imports s3prl
def test_speech_commands_loader_reads_through_the_shim(shimmed, tmp_path):
    """s3prl's own speech_commands test-set loader, which imports torchaudio.sox_effects at module level."""
    from s3prl.downstream.speech_commands.dataset import SpeechCommandsTestingDataset

    (tmp_path / "yes").mkdir()
    _write(tmp_path / "yes" / "a_nohash_0.wav", 0.2 * np.ones(12000), 16000)
    wav, label, fileid = SpeechCommandsTestingDataset(speech_commands_test_root=str(tmp_path))[0]
    assert (label, fileid) == (0, "yes-a_nohash_0.wav")
    assert wav.shape == (12000,) and np.allclose(wav, 0.2 * 10 ** (-3 / 20), atol=1e-3)


def test_torchaudio_load_stand_in(shimmed, tmp_path):
    import torchaudio

    if "torchaudio.load" not in shimmed:  # torchcodec present: the real torchaudio.load is kept
        assert torchaudio.load.__module__.startswith("torchaudio")
        return
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (800, 2))
    path = _write(tmp_path / "x.wav", data, 8000)
    wav, rate = torchaudio.load(str(path))
    assert rate == 8000 and wav.shape == (2, 800)
    assert torch.allclose(wav, torch.from_numpy(sf.read(path, dtype="float32")[0].T))


def test_removed_hub_names_explain_themselves(shimmed):
    from huggingface_hub import HfFolder, Repository

    with pytest.raises(RuntimeError, match="huggingface_hub 1.0"):
        Repository(local_dir=".")
    with pytest.raises(RuntimeError, match="HfFolder"):
        HfFolder.get_token()


def test_namespace_checkpoints_load(shimmed):
    buf = io.BytesIO()
    torch.save({"Args": argparse.Namespace(upstream="hear_sela", seed=1337), "Step": 6}, buf)
    buf.seek(0)
    assert torch.load(buf)["Args"].upstream == "hear_sela"


def test_existing_attributes_are_never_replaced():
    """A stack that still has these names keeps its own; the shims only fill gaps."""
    import huggingface_hub
    import torchaudio

    with _isolated():
        sentinel_fn, sentinel_cls = (lambda backend: None), type("HfFolder", (), {})
        fake_sox, fake_catalyst = types.ModuleType("torchaudio.sox_effects"), types.ModuleType("catalyst")
        torchaudio.set_audio_backend = sentinel_fn
        huggingface_hub.HfFolder = sentinel_cls
        sys.modules["torchaudio.sox_effects"], sys.modules["catalyst"] = fake_sox, fake_catalyst
        applied = apply_shims()
        assert not {"torchaudio.set_audio_backend", "huggingface_hub.HfFolder", "torchaudio.sox_effects",
                    "catalyst.data.sampler"} & set(applied)
        assert torchaudio.set_audio_backend is sentinel_fn and huggingface_hub.HfFolder is sentinel_cls
        assert sys.modules["torchaudio.sox_effects"] is fake_sox and sys.modules["catalyst"] is fake_catalyst


def test_catalyst_stand_in_imports_and_partitions_each_draw(shimmed):
    from catalyst.data.sampler import DistributedSamplerWrapper as Imported
    from torch.utils.data import WeightedRandomSampler

    assert Imported is DistributedSamplerWrapper
    weights = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]

    def sampler():
        return WeightedRandomSampler(weights, 7, generator=torch.Generator().manual_seed(3))

    shares = [list(DistributedSamplerWrapper(sampler(), num_replicas=2, rank=r)) for r in (0, 1)]
    together, drawn = Counter(shares[0] + shares[1]), Counter(sampler())  # ranks seeded alike draw alike
    assert len(shares[0]) == len(shares[1]) == 4  # DistributedSampler pads 7 positions to 8
    assert drawn - together == Counter() and sum((together - drawn).values()) == 1


def test_register_keeps_an_existing_entry():
    hub = types.ModuleType("fake_hub")
    theirs = lambda **kw: None  # noqa: E731  (an in-tree copy of the upstream, say)
    hub.hear_sela = theirs
    served = register_upstream(hub)
    assert hub.hear_sela is theirs and "hear_sela" not in served
    assert "hear_sela_local" in served and callable(hub.hear_sela_local)


def test_launcher_usage(capsys):
    assert launcher_main([]) == 2
    assert launcher_main(["shims"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(SHIMS)


class _RunsCode:
    """Unpickling this creates the file `path`: a stand-in for a checkpoint that runs code when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_launcher_never_unpickles_code_whatever_the_environment(tmp_path):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns s3prl's bare torch.load into a full unpickler; the launcher drops it
    and refuses such a file in one line."""
    marker, evil = tmp_path / "code_ran", tmp_path / "EVIL.pt"
    torch.save({"Args": _RunsCode(marker)}, evil)
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    out = subprocess.run([sys.executable, "-m", "hear_sela.s3prl_compat", "run_downstream", "-m", "evaluate",
                          "-e", str(evil)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert not marker.exists()
    assert out.returncode == 1, out.stderr[-2000:]
    assert "refused to load a checkpoint that holds more than weights" in out.stderr
    assert "EVIL.pt" in out.stderr.splitlines()[-1] and "Traceback" not in out.stderr
