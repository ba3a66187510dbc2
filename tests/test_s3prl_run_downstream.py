"""End to end: s3prl's own run_downstream, through our launcher, trains speech_commands on our upstream for a few
steps on CPU with the embedded default weights (no -k), then evaluates the saved checkpoint; and s3prl.nn's
S3PRLUpstream API over the same upstream. The data is a tiny Speech Commands v0.01 built here in its real layout:
train/<word>/<speaker>_nohash_<k>.wav (16 kHz, 16-bit), train/_background_noise_/*.wav (the _silence_ source,
longer than 1 s), train/validation_list.txt and testing_list.txt, and test/<word|_unknown_|_silence_>/*.wav (the
separate test set). Words are tones; speakers are chosen so that the dataset's hashing rule (its README: sha1 of
the speaker id as a percentage, < 10 validation, < 20 testing; s3prl splits by it) fills every split."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_sela.hear import load_weights

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[1] / "upstream" / "hear_sela" / "configs"
CLASSES = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"}
SR = 16000
WORDS = {"yes": 300.0, "no": 450.0, "up": 650.0, "down": 900.0, "bed": 1300.0}  # "bed" is an _unknown_ word


def which_set(filename: str, validation_pct: float = 10.0, testing_pct: float = 10.0) -> str:
    """The Speech Commands split of a file, from its speaker id (README of the dataset)."""
    speaker = re.sub(r"_nohash_.*$", "", filename)
    max_per_class = 2**27 - 1
    pct = (int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (max_per_class + 1)) * (100.0 / max_per_class)
    return "validation" if pct < validation_pct else "testing" if pct < validation_pct + testing_pct else "training"


def _speakers(counts: dict[str, int]) -> dict[str, list[str]]:
    """The first speaker ids (8 hex digits, as in the dataset) that fill `counts` per split."""
    out: dict[str, list[str]] = {k: [] for k in counts}
    for i in itertools.count():
        spk = f"{i * 2654435761 % 2**32:08x}"
        split = which_set(f"{spk}_nohash_0.wav")
        if len(out[split]) < counts[split]:
            out[split].append(spk)
        if all(len(out[k]) == n for k, n in counts.items()):
            return out


def _tone(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    env = np.sin(np.pi * t / t[-1]) ** 2  # fade in and out, like a spoken word
    wav = 0.4 * env * (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t))
    return (wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_speech_commands(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write the dataset under `root`; returns (train root, test root). Clips last 0.6-1.0 s (unequal lengths)."""
    rng = np.random.default_rng(seed)
    train, test = root / "train", root / "test"
    speakers = _speakers({"training": 4, "validation": 2, "testing": 1})
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for word, freq in WORDS.items():
        (train / word).mkdir(parents=True, exist_ok=True)
        for split, spks in speakers.items():
            for spk in spks:
                name = f"{spk}_nohash_0.wav"
                sf.write(train / word / name, _tone(freq, rng.uniform(0.6, 1.0), rng), SR, subtype="PCM_16")
                if split in lists:
                    lists[split].append(f"{word}/{name}")
    for split, files in lists.items():
        (train / f"{split}_list.txt").write_text("".join(f"{f}\n" for f in sorted(files)))
    (train / "_background_noise_").mkdir(exist_ok=True)
    sf.write(train / "_background_noise_" / "white_noise.wav", 0.05 * rng.standard_normal(2 * SR), SR,
             subtype="PCM_16")
    test_classes = {"yes": WORDS["yes"], "no": WORDS["no"], "up": WORDS["up"], "down": WORDS["down"],
                    "_unknown_": WORDS["bed"], "_silence_": None}
    for cls, freq in test_classes.items():
        (test / cls).mkdir(parents=True, exist_ok=True)
        for k in range(2):
            wav = 0.01 * rng.standard_normal(SR) if freq is None else _tone(freq, rng.uniform(0.6, 1.0), rng)
            sf.write(test / cls / f"clip{k}_nohash_0.wav", wav, SR, subtype="PCM_16")
    return train, test


# ---------------------------------------------------------------- runs


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "hear_sela.s3prl_compat", "run_downstream", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"run_downstream {args[:2]} failed:\n{run.stderr[-4000:]}"
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train 6 steps (batch 4, evaluation on dev and test at step 6), without -k: the embedded default weights."""
    work = tmp_path_factory.mktemp("s3prl")
    train, test = write_speech_commands(work / "speech_commands")
    overrides = ",,".join([
        "config.runner.total_steps=6", "config.runner.log_step=3", "config.runner.eval_step=6",
        "config.runner.save_step=6", f"config.downstream_expert.datarc.speech_commands_root='{train}'",
        f"config.downstream_expert.datarc.speech_commands_test_root='{test}'",
        "config.downstream_expert.datarc.num_workers=0", "config.downstream_expert.datarc.batch_size=4",
    ])
    run = _launch(["-m", "train", "-n", "sc", "-u", "hear_sela", "-d", "speech_commands",
                   "-c", str(CONFIGS / "speech_commands.yaml"), "--device", "cpu", "-o", overrides], work)
    return work, work / "result" / "downstream" / "sc", run


def _test_acc(log: str, step: int) -> float:
    found = re.findall(rf"^test at step {step}: ([0-9.]+)$", log, flags=re.M)
    assert len(found) == 1, log
    return float(found[0])


def test_train_runs_and_writes_results(trained):
    work, expdir, run = trained
    default = load_weights(None)  # what `-u hear_sela` without -k loads
    rate = default.config.frontend.hop_length * default.encoder.time_stride
    assert f"downsample rate is {rate}\n" in run.stderr  # s3prl's Featurizer accepted it on its 1 s probe
    layers = len(default.encoder.intermediate_stages()[0]) + 2  # the log-mel input, each stage, the final features
    assert f"Take a list of {layers} features" in run.stderr
    assert (expdir / "states-6.ckpt").is_file()
    log = (expdir / "log.log").read_text()
    assert re.search(r"^train at step 3: ", log, flags=re.M) and re.search(r"^dev at step 6: ", log, flags=re.M)
    assert 0.0 <= _test_acc(log, 6) <= 1.0
    predictions = (expdir / "test_predict.txt").read_text().splitlines()
    test_files = sorted("-".join(p.parts[-2:]) for p in (work / "speech_commands" / "test").glob("*/*.wav"))
    assert sorted(line.split()[0] for line in predictions) == test_files
    assert {line.split()[1] for line in predictions} <= CLASSES
    args = next(expdir.glob("args_*.yaml")).read_text()
    assert "upstream: hear_sela" in args and "upstream_ckpt: null" in args  # default weights


def test_evaluate_reproduces_the_test_result(trained):
    work, expdir, _ = trained
    during_training = (expdir / "test_predict.txt").read_text()
    _launch(["-m", "evaluate", "-e", str(expdir / "states-6.ckpt"), "--device", "cpu"], work)
    log = (expdir / "log.log").read_text()
    assert _test_acc(log, 0) == _test_acc(log, 6)
    assert sorted((expdir / "test_predict.txt").read_text().splitlines()) == sorted(during_training.splitlines())


def test_s3prl_nn_upstream_api(tmp_path):
    """s3prl.nn.S3PRLUpstream("hear_sela") through our helper: its lengths rule is ceil(len / rate)."""
    script = (
        "import json, torch\n"
        "from hear_sela.s3prl_compat import s3prl_upstream\n"
        "up = s3prl_upstream().eval()\n"
        "lens = torch.tensor([16000, 9000, 700])\n"
        "wavs = 0.1 * torch.randn(3, 16000) * (torch.arange(16000)[None] < lens[:, None])\n"
        "with torch.no_grad():\n"
        "    hs, hl = up(wavs, lens)\n"
        "print(json.dumps({'layers': up.num_layers, 'rates': up.downsample_rates, "
        "'shapes': [list(h.shape) for h in hs], 'lens': [l.tolist() for l in hl]}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    rate = out["rates"][0]
    expected_lens = [-(-n // rate) for n in (16000, 9000, 700)]
    layers = len(load_weights(None).encoder.intermediate_stages()[0]) + 2  # the default weights' encoder
    assert out["layers"] == layers and out["rates"] == [rate] * layers
    assert all(shape[:2] == [3, max(expected_lens)] for shape in out["shapes"])
    assert all(lens == expected_lens for lens in out["lens"])
