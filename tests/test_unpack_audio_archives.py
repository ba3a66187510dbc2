"""scripts/unpack_audio_archives.sh: the audio inside .zip, .pk3 and .wz archives of an extracted package lands in
DIR/_unzipped/<archive name>/ with its inner folders; other members stay packed, and an archive without audio is no
error."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "unpack_audio_archives.sh"

pytestmark = pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip is not installed")


def _zip(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _run(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=60)


def test_audio_inside_zip_pk3_and_wz_is_unpacked(tmp_path: Path):
    pkg = tmp_path / "pkg"
    _zip(pkg / "usr/share/game/base.wz", {"audio/sfx/boom.ogg": b"o", "audio/voice/hello.wav": b"w", "a.txt": b"t"})
    _zip(pkg / "data/pak0.pk3", {"sound/step.flac": b"f", "maps/m.bsp": b"b"})
    _zip(pkg / "extra.zip", {"music/song.mp3": b"m"})
    _zip(pkg / "textures.pk3", {"t.png": b"p"})  # no audio: unzip exits 11, which is fine
    res = _run(pkg)
    assert res.returncode == 0, res.stderr
    out = pkg / "_unzipped"
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == ["base/audio/sfx/boom.ogg", "base/audio/voice/hello.wav", "extra/music/song.mp3",
                     "pak0/sound/step.flac"]


def test_a_corrupt_archive_fails(tmp_path: Path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "broken.wz").write_bytes(b"not a zip at all")
    assert _run(pkg).returncode != 0


def test_a_missing_folder_is_a_usage_error(tmp_path: Path):
    res = _run(tmp_path / "nope")
    assert res.returncode == 2 and "usage" in res.stderr
