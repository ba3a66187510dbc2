"""The ground floor: atomic file writes and JSON helpers every layer may use (imports nothing of hear_sela)."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
TMP_SUFFIX = ".tmp"  # atomic_write's temporaries: .<name>.<random>.tmp beside the file
_OUR_TMP = re.compile(rf"^\..+\.[A-Za-z0-9_]{{8}}{re.escape(TMP_SUFFIX)}$")  # mkstemp: 8 random characters
FULL_BELOW_BYTES = 64 * 2**20  # a failed write with less than this left on the device is taken as a full disk


class _WordedOSError(OSError):
    """An OSError whose text is our own full sentence (str() without Python's "[Errno N]" prefix)."""

    def __str__(self) -> str:
        return str(self.strerror)


class DiskFullError(_WordedOSError):
    """A file could not be written because its disk is full (the previous version, if any, is untouched)."""


class FileSizeLimitError(_WordedOSError):
    """A file could not be written because it would exceed the process's file size limit (ulimit -f)."""


# OSErrors a user causes and can fix, as the CLI words them (with the path): see `os_error_line`
USER_OS_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                  errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
                  errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large for this process's file size "
                  "limit (ulimit -f)", errno.EISDIR: "is a directory", errno.ENOTDIR: "not a directory"}


def os_error_line(e: BaseException) -> str | None:
    """One line naming the problem and the path for an OSError in USER_OS_ERRORS (a read-only folder, a full disk,
    a file size limit, ...), else None."""
    if not isinstance(e, OSError) or e.errno not in USER_OS_ERRORS:
        return None
    if e.filename is None:
        return e.strerror or USER_OS_ERRORS[e.errno]
    where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
    return f"{USER_OS_ERRORS[e.errno]}: {where}"


def _file_size_limit() -> int | None:
    """The process's file size limit in bytes (ulimit -f), None when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call `write(tmp_path)` then rename over `path`, so a crash never leaves a half-written file. A write that
    fails on a full disk raises DiskFullError naming the file and the space left: writers such as torch.save report
    it only as an opaque RuntimeError ("unexpected pos ...")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as e:  # name the file we meant to write, not the temporary's random name
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would (0666 less the umask),
    # after `write`, since a writer may replace the file rather than write into it (safetensors does: 0600 again)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        free = shutil.disk_usage(path.parent).free  # measured before the partial file is removed
        limit = _file_size_limit()
        # under a limit, writers report it their own way: torch.save "unexpected pos" with the file cut at the
        # limit; safetensors the OS's text for EFBIG, its file already removed
        if (isinstance(e, OSError) and e.errno == errno.EFBIG) or limit is not None and (
                (os.path.exists(tmp) and os.path.getsize(tmp) >= limit) or os.strerror(errno.EFBIG) in str(e)):
            raise FileSizeLimitError(errno.EFBIG, f"{path}: not written, it would exceed this process's file size "
                                     f"limit ({limit} bytes, ulimit -f); raise the limit and run again") from e
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or free < FULL_BELOW_BYTES:
            raise DiskFullError(errno.ENOSPC, f"{path}: not written, its disk is full ({free / 2**20:.0f} MiB "
                                f"free in {path.parent}); free some space and run again (a training continues "
                                f"from its last checkpoint with --resume)") from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, obj: Any, indent: int = 1) -> Path:
    """Atomically write `obj` as JSON."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=indent)))


def read_json(path: str | Path, error: type[Exception] = ValueError, advice: str = "") -> Any:
    """The JSON in `path`, or None when there is no such file; damaged JSON raises `error` naming the file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{path}: damaged JSON ({e}){'; ' + advice if advice else ''}") from None


@contextmanager
def exclusive_lock(path: str | Path, busy: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing, never deleted: others may wait on it) for the block.
    When another process holds it, `busy()` is called first: it raises to refuse, or returns to wait. A POSIX
    record lock (lockf), not flock: forked DataLoader workers do not inherit it, and it dies with the process that
    took it. Advisory, POSIX only; elsewhere a no-op."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: held by another process
            if busy is not None:
                busy()
            fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete atomic_write's leftovers in `folder` (a writer killed mid-way leaves its hidden .<name>.<random>.tmp,
    up to a checkpoint's size). Call only while no writer of ours can be at work there (holding the folder's lock).
    Returns what was removed."""
    removed = []
    for p in Path(folder).iterdir() if Path(folder).is_dir() else ():
        if _OUR_TMP.match(p.name) and p.is_file():
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            removed.append(p)
            log.info("removed %s (%.1f MiB), left by a write that was interrupted", p, size / 2**20)
    return removed
