"""A wheel and an sdist built from this checkout carry everything a user runs, used as pip users install it.

Builds both (`uv build`: the sdist, then the wheel from the sdist, so the sdist is complete too), installs the wheel
with `--no-deps` into a scratch target outside the checkout and, from a folder outside the checkout, with only that
target and the environment's site-packages on the path (run by the base interpreter, so the editable install's
finder, which maps `hear_sela` to a checkout, is never loaded), runs: the console script's --help, recipes by name,
the HEAR API on the embedded default weights, the s3prl hub entry, and hear-validator on the installed module.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds and installs the wheel, runs hear-validator on it

REPO = Path(__file__).resolve().parents[1]


def _uv() -> str:
    """uv from PATH, or the copy scripts/bootstrap.sh puts in .tools/ (beside the checkout or the environment)."""
    for candidate in (shutil.which("uv"), REPO / ".tools/bin/uv", Path(sys.prefix).parent / ".tools/bin/uv"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise AssertionError("uv not found (PATH, .tools/bin/uv): run `make env`, which installs it")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.resolve().is_relative_to(REPO), "the scratch folder must be outside the checkout"
    uv = _uv()
    dist = tmp / "dist"
    build_log = _run([uv, "build", "--offline", "--no-build-isolation", "-p", sys.executable, "-o", str(dist),
                      str(REPO)], cwd=tmp)
    assert "Deprecat" not in build_log, build_log  # e.g. setuptools' `project.license` table (a 2027 deadline)
    wheel, = dist.glob("hear_sela-*.whl")
    sdist, = dist.glob("hear_sela-*.tar.gz")
    target = tmp / "target"
    _run([uv, "pip", "install", "--offline", "--no-deps", "-p", sys.executable, "--target", str(target),
          str(wheel)], cwd=tmp)
    outside = tmp / "elsewhere"
    outside.mkdir()
    site = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HEAR_SELA"))}
    env.update(PYTHONPATH=os.pathsep.join([str(target), site]), TF_CPP_MIN_LOG_LEVEL="3")
    python = getattr(sys, "_base_executable", sys.executable)
    return {"wheel": wheel, "sdist": sdist, "target": target, "cwd": outside, "env": env, "python": python}


def test_wheel_and_sdist_carry_recipes_upstream_assets_and_licences(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    recipes = sorted(p.name for p in (REPO / "recipes").glob("*.yaml"))
    assert {f"hear_sela/recipes/{r}" for r in recipes} <= names
    upstream = sorted(p.relative_to(REPO / "upstream/hear_sela").as_posix()
                      for p in (REPO / "upstream/hear_sela").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert {f"hear_sela/s3prl_upstream/{f}" for f in upstream} <= names
    assert {"hear_sela/assets/default.safetensors", "hear_sela/assets/audioset_ontology.LICENSE.md"} <= names
    licences = {n.split("/licenses/", 1)[1] for n in names if "/licenses/" in n}
    assert {"LICENSE", "upstream/hear_sela/configs/LICENSE"} <= licences
    with tarfile.open(installed["sdist"]) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {f"recipes/{r}" for r in recipes} | {f"upstream/hear_sela/{f}" for f in upstream} <= members


def test_installed_console_script_and_recipes_by_name(installed):
    script = installed["target"] / "bin" / "hear-sela"
    run = [installed["python"], str(script)]
    assert "recipes" in _run([*run, "--help"], installed["cwd"], installed["env"])
    listing = _run([*run, "recipes", "--paths"], installed["cwd"], installed["env"])
    assert "fsd50k_sela " in listing and "Audio SeLa on FSD50K" in listing
    assert str(installed["target"] / "hear_sela" / "recipes" / "demo.yaml") in listing
    bad = subprocess.run([*run, "train", "no_such_recipe"], cwd=installed["cwd"], env=installed["env"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "packaged recipes: demo, fsd50k_byola" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_installed_module_embeds_resolves_recipes_and_serves_s3prl(installed):
    target = str(installed["target"])
    code = textwrap.dedent(f"""
        import torch, hear_sela
        from pathlib import Path
        target = Path({target!r})
        assert Path(hear_sela.__file__).is_relative_to(target), hear_sela.__file__
        from hear_sela.config import load_config
        from hear_sela.commands.demo import default_recipe
        from hear_sela.resources import resolve_recipe
        assert resolve_recipe("fsd50k_sela") == target / "hear_sela/recipes/fsd50k_sela.yaml"
        assert default_recipe().is_relative_to(target)
        assert load_config("fsd50k_sela").model.encoder == "resnet18"
        assert load_config("demo.yaml").name == "demo"
        model = hear_sela.load_model()
        audio = torch.rand(2, 16000) * 2 - 1
        scene = hear_sela.get_scene_embeddings(audio, model)
        emb, ts = hear_sela.get_timestamp_embeddings(audio, model)
        assert scene.shape == (2, model.scene_embedding_size) and emb.shape[:2] == ts.shape
        from hear_sela import s3prl_compat
        assert s3prl_compat.upstream_dir() == target / "hear_sela/s3prl_upstream"
        from hear_sela.s3prl_compat.__main__ import with_config_paths
        assert with_config_paths(["-c", "speech_commands"])[1] == str(
            target / "hear_sela/s3prl_upstream/configs/speech_commands.yaml")
        hub = s3prl_compat.prepare_hub()
        expert = hub.hear_sela()
        import sys
        assert Path(sys.modules[type(expert).__module__].__file__).is_relative_to(target)
        hidden = expert([audio[0]])["hidden_states"]
        assert hidden[0].shape[0] == 1
        print("ok")
    """)
    assert "ok" in _run([installed["python"], "-c", code], installed["cwd"], installed["env"])


def test_hear_validator_on_the_installed_module(installed):
    if importlib.util.find_spec("hearvalidator") is None:
        raise AssertionError("hearvalidator is not installed: the `hear` extra is part of the test environment")
    out = _run([installed["python"], "-m", "hearvalidator.validate", "hear_sela", "-d", "cpu"],
               installed["cwd"], installed["env"], timeout=600)
    assert "Looks good!" in out, out
