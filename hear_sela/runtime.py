"""Process-wide settings for the `hear-sela` command line (never applied on `import hear_sela`: a library must not
change its host process's allocator).

glibc's malloc serves blocks above its mmap threshold (dynamic, at most 32 MiB) with fresh mmap()s and returns
them to the kernel on free, so every training step's activations (the label update's 256-segment batches are
~0.8 GB) are page-faulted and zeroed again: measured on a 2-core CPU, ~40 % of a SeLa run's CPU time was system
time. Keeping freed memory in the heap cuts the system time ~3x and a training step ~1.5x
(benchmarks/cpu_allocator.py), at the price of a resident size that stays at its peak.
"""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt() parameters (malloc.h) and the largest value an int setting takes.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 2**31 - 1
# The same settings as environment variables, read by glibc when a process starts (so subprocesses, e.g.
# heareval's runners, inherit them). A user who sets either keeps their own value.
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPT_OUT = "HEAR_SELA_DEFAULT_MALLOC"  # =1: leave glibc's defaults alone


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (mallopt) and in its future subprocesses (environment).
    Returns whether this process's allocator was changed: False off glibc, when opted out or when the user set
    the variables."""
    if os.environ.get(OPT_OUT) == "1" or any(v in os.environ for v in MALLOC_VARIABLES):
        return False
    try:  # the C library already loaded in this process (no library search, which may spawn ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no mallopt (macOS, Windows): nothing to tune
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    if ok:
        for var in MALLOC_VARIABLES:
            os.environ[var] = str(KEEP_BYTES)
    return ok


def release_freed_memory() -> bool:
    """Give the heap's free memory back to the kernel now (glibc's malloc_trim), so that a later allocation is
    page-faulted afresh and shows in the resident size: what a peak-memory measurement by VmHWM needs, since freed
    memory is otherwise reused without a fault (always with `keep_freed_memory`, and below glibc's dynamic mmap
    threshold by default). Returns False where there is no malloc_trim (not glibc)."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    malloc_trim(0)
    return True
