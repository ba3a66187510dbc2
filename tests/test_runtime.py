"""The CLI's allocator setting (hear_sela/runtime.py): applied once per process, inherited by subprocesses, and
never over a user's own choice."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hear_sela import runtime


@pytest.fixture
def clean_env(monkeypatch):
    for var in (*runtime.MALLOC_VARIABLES, runtime.OPT_OUT):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_sets_thresholds_and_exports_them_to_subprocesses(clean_env):
    assert runtime.keep_freed_memory() is True
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(runtime.KEEP_BYTES)


def test_user_setting_and_opt_out_are_left_alone(clean_env):
    clean_env.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert runtime.keep_freed_memory() is False
    assert "MALLOC_TRIM_THRESHOLD_" not in runtime.os.environ
    clean_env.delenv("MALLOC_MMAP_THRESHOLD_")
    clean_env.setenv(runtime.OPT_OUT, "1")
    assert runtime.keep_freed_memory() is False
    assert "MALLOC_MMAP_THRESHOLD_" not in runtime.os.environ


def test_cli_applies_it_before_the_command_runs(clean_env):
    from hear_sela import cli

    assert cli.main(["recipes"]) == 0
    if sys.platform.startswith("linux"):
        assert runtime.os.environ["MALLOC_MMAP_THRESHOLD_"] == str(runtime.KEEP_BYTES)
