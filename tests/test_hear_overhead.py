"""benchmarks/hear_overhead.py: its peak-memory probe sees what a call allocates, and nothing when it allocates
nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hear_overhead.py"

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("hear_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hear_overhead"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("keep_freed", [False, True])
def test_peak_memory_is_the_calls_own_allocation(bench, keep_freed):
    """Also when glibc keeps freed memory (hear_sela.runtime, as the CLI sets it; once set in this process by any
    test) and a freed 64 MiB block is already resident: the measurement must still see the call's allocation."""
    cpu = torch.device("cpu")
    if keep_freed:
        from hear_sela.runtime import keep_freed_memory

        keep_freed_memory()
        torch.ones(64 * 2**20 // 4).sum()  # leaves a freed, resident 64 MiB block in the heap
    big = bench._peak_mb(lambda: torch.ones(64 * 2**20 // 4).sum(), cpu)  # a 64 MiB temporary, freed on return
    small = bench._peak_mb(lambda: torch.zeros(4).sum(), cpu)
    assert 60 <= big <= 80
    assert small < 8
