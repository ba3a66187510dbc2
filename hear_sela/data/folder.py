"""Any folder of audio files, searched recursively, with an optional labels CSV (for analysis only).

clip_id = the file's path relative to the root, POSIX separators, without extension ("dogs/bark_01").
Order = sorted by that relative path, so the same folder always gives the same record list (and cache).
Hidden files and folders (name starting with ".", e.g. macOS "._x.wav" resource forks) are ignored; broken symlinks
are not (they are listed, then reported as bad files when decoded).
Labels CSV: FSD50K's format (fname,labels; several labels comma-separated in one quoted field); `fname` may be the
relative path with or without extension.
"""

from __future__ import annotations

from pathlib import Path

from hear_sela.data.audio import SOUNDFILE_EXTENSIONS
from hear_sela.data.records import ClipRecord, DataError, match_label_rows, read_labels_csv

AUDIO_EXTENSIONS: frozenset[str] = SOUNDFILE_EXTENSIONS


def list_audio_files(root: str | Path,
                     extensions: frozenset[str] | set[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under `root` (recursive, hidden names skipped), sorted by relative POSIX path; none is an error.
    A dangling or looping symlink with an audio name is listed too, so decoding reports it with the bad files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"audio folder not found: {root}")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = sorted(
        (p for p in root.rglob("*")
         if p.suffix.lower() in exts and (p.is_file() or p.is_symlink())
         and not any(part.startswith(".") for part in p.relative_to(root).parts)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise DataError(f"no audio files ({', '.join(sorted(exts))}) under {root}")
    return files


def scan_folder(root: str | Path, labels_csv: str | Path | None = None,
                extensions: frozenset[str] | set[str] = AUDIO_EXTENSIONS) -> list[ClipRecord]:
    """All audio files under `root` (recursive), sorted, with labels from `labels_csv` when given."""
    root = Path(root)
    files = list_audio_files(root, extensions)
    seen: dict[str, Path] = {}
    for p in files:
        cid = p.relative_to(root).with_suffix("").as_posix()
        if cid in seen:
            raise DataError(f"two files share clip id {cid!r}: {seen[cid]} and {p}; rename one")
        seen[cid] = p
    records = [ClipRecord(cid, str(p)) for cid, p in seen.items()]
    if labels_csv is None:
        return records
    labels = match_label_rows(records, read_labels_csv(labels_csv), labels_csv)
    return [ClipRecord(r.clip_id, r.path, lab) for r, lab in zip(records, labels)]
