"""Build step beside pyproject.toml: copy the recipes and the s3prl upstream into the built package.

Their source stays at the repository root (recipes/, upstream/hear_sela/); hear_sela/resources.py names the copies
(PACKAGED_COPIES) and finds either the copy (installed wheel) or the source (checkout, editable install). Editable
builds copy nothing: there the source tree is found directly.
"""

import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _packaged_copies() -> dict:
    spec = importlib.util.spec_from_file_location("_hear_sela_resources", ROOT / "hear_sela" / "resources.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.PACKAGED_COPIES


class BuildPyWithResources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for copy, source in _packaged_copies().items():
            src, dst = ROOT / source, Path(self.build_lib) / "hear_sela" / copy
            if not src.is_dir():
                raise FileNotFoundError(f"{src} missing: the sdist or checkout is incomplete (see MANIFEST.in)")
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithResources})
