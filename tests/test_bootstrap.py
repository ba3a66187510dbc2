"""scripts/bootstrap.sh stays quiet when it works and shows everything when it fails, run against stand-ins for
pip and uv (no network, no real environment)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PATH = "/usr/bin:/bin"

# python3 stand-in: `-m pip install ... --target .tools` says what pip says on a root account with a find-links
# folder that does not exist, and puts a uv stand-in into .tools/bin; that one makes the venv, and its `pip install`
# warns on success or fails with an error when FAIL_UV is set.
PYTHON = """#!/bin/bash
for i in 1 2 3; do
  echo "WARNING: Location 'file:///nowhere/wheels' is ignored: it is either a non-existing path or lacks a" \
    "specific scheme." >&2
done
echo "WARNING: Running pip as the 'root' user can result in broken permissions" >&2
mkdir -p .tools/bin
cat > .tools/bin/uv <<'UV'
#!/bin/bash
if [[ $1 == venv ]]; then
  venv=${@: -1}; mkdir -p "$venv/bin"; printf '#!/bin/bash\\n' > "$venv/bin/python"; chmod +x "$venv/bin/python"; exit 0
fi
if [[ -n ${FAIL_UV:-} ]]; then echo "error: no solution found: numpy==1.19.2 has no wheel" >&2; exit 1; fi
echo "warning: a resolver remark nobody needs on success" >&2
UV
chmod +x .tools/bin/uv
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap.sh", root / "scripts")
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(REPO / "requirements", root / "requirements")
    python = tmp_path / "python3"
    python.write_text(PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root


def _bootstrap(root: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "HEAR_SELA", "VIRTUAL_ENV"))}
    return subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=root, capture_output=True, text=True, timeout=60,
                          env={**base, "PATH": SYSTEM_PATH, "PYTHON": str(root.parent / "python3"), **env})


@pytest.mark.skipif(shutil.which("uv", path=SYSTEM_PATH) is not None, reason="a system uv would be used instead")
def test_bootstrap_is_quiet_on_success_and_shows_a_failure(tmp_path):
    root = _checkout(tmp_path)
    ok = _bootstrap(root)
    assert ok.returncode == 0, ok.stderr
    assert all(line.startswith("bootstrap: ") for line in ok.stderr.splitlines()), ok.stderr
    assert (root / ".venv" / ".hear_sela_stamp").is_file()

    root = _checkout(tmp_path / "again")
    failed = _bootstrap(root, FAIL_UV="1")
    assert failed.returncode == 1
    assert "error: no solution found: numpy==1.19.2 has no wheel" in failed.stderr
    assert "bootstrap: failed (1)" in failed.stderr and not (root / ".venv" / ".hear_sela_stamp").exists()
