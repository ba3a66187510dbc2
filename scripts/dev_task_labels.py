"""Labels CSVs for the dev tasks, from the file layout of each source (scripts/make_dev_tasks.sh runs this).

python scripts/dev_task_labels.py TASK SOURCE_DIR OUT_CSV
  keywords      Speech Commands v0.01 subset: label = word (folder), speaker = id in <speaker>_nohash_<n>.wav
  speakers      same audio: label = speaker (those with >= 11 clips), word = the group (no word in two folds)
  sound_sources interactive-sound-keyboard: label = animals | musical_instruments | transportation, one row per file
  pitch         Philharmonia notes (1 s and 0.5 s, normal articulation): label = pitch class, group = instrument
  instrument    the same notes: label = instrument, group = note (no pitch in two folds)
  events        Philharmonia single notes and percussion hits (0.25-1.5 s files) for `hear-sela tasks --events`:
                label = family (brass | percussion | strings | woodwind), group = instrument + note (percussion:
                the instrument), so the same note at another dynamic or length never sits in another split
  drums         smpldsnds/drum-machines one-shots (8 drum machines; TR-808 and 808-mini left out, see DRUM_SKIP) for
                `hear-sela tasks --events`: label = kick | snare | tom | hihat | cymbal | percussion, group = machine
                + label, so the pitch or length variants of one machine's drum never sit in two splits
Deterministic: subsampling uses a fixed seed.
"""

from __future__ import annotations

import csv
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

PER_CLASS = 100  # Philharmonia tasks: clips per class (12 classes -> 1200 clips)
MIN_SPEAKER_CLIPS = 11
SOUND_CATEGORIES = ("animals", "musical_instruments", "transportation")
# absent from the snapshot the dev tasks were built from (its largest blobs); left out so a fresh clone
# gives the same task
SOUND_ABSENT = frozenset({"musical_instruments/piano4.mp3", *(f"transportation/train{i}.wav" for i in range(1, 6))})
# events: the families the snapshot holds (its violin, viola, trumpet and tuba folders are among the absent blobs)
FAMILIES = {"brass": ("french horn", "trombone"), "strings": ("cello", "double bass"),
            "woodwind": ("bass clarinet", "bassoon", "clarinet", "contrabassoon", "cor anglais", "flute", "oboe",
                         "saxophone")}
PER_FAMILY = 60  # events: sounds per family (4 families -> 240 sounds)
SHORT_NOTE = re.compile(r"^(?P<inst>[a-z-]+)_(?P<note>[A-G]s?[0-9])_(?:025|05|1)_[a-z-]+_(?:arco-)?normal\.mp3$")
PERCUSSION_HIT = re.compile(r"^(?P<inst>[A-Za-z-]+)__(?:025|05|1|15)_[a-z-]+_[a-z-]+\.mp3$")
# drums: file stem (lower case) -> label, first match wins; every .ogg must match one (a new file fails loudly)
DRUM_LABELS = (("kick", r"kick|^dt_kick"), ("snare", r"snare|-sd$|shortsn|brush"),
               ("tom", r"tom"), ("hihat", r"hihat|hithat|^hh|-ch$|-oh$|closedhat|openhat|shorthi"),
               ("cymbal", r"crash|ride|cymbal"),
               ("percussion", r"clap|clave|cowbell|conga|cabasa|tambo|shaker|rimshot|stick"))
# the Michael Fischer TR-808 set (TR-808, and probably 808-mini) circulates widely, also in drum-kit packages; kept
# out so the dev task cannot share sounds with a held-out drum task
DRUM_SKIP = ("TR-808", "808-mini")
# audible (above 5 % of the peak) for under the 20 ms an event sound needs (hear_sela.data.event_tasks.trim_sound)
DRUM_TOO_SHORT = frozenset({"Roland-CR-8000/clave.ogg", "Yamaha-MR10/chihat.ogg"})
PHILHARMONIA_NOTE = re.compile(r"^(?P<inst>[a-z-]+)_(?P<pc>[A-G]s?)(?P<oct>[0-9])_(?P<dur>1|05)_[a-z-]+_"
                               r"(?:arco-)?normal\.mp3$")


def speech_commands(root: Path) -> list[tuple[str, str, str]]:
    """(fname, word, speaker) for every clip."""
    return [(p.relative_to(root).as_posix(), p.parent.name, p.name.split("_nohash_")[0])
            for p in sorted(root.glob("*/*_nohash_*.wav"))]


def philharmonia(root: Path) -> list[tuple[str, str, str, str]]:
    """(fname, instrument, pitch class, note) for every plain single note of 0.5 or 1 s."""
    out = []
    for p in sorted(root.rglob("*.mp3")):
        m = PHILHARMONIA_NOTE.match(p.name)
        if m and m["inst"] not in ("banjo", "guitar", "mandolin"):  # too few notes of these
            out.append((p.relative_to(root).as_posix(), m["inst"], m["pc"].replace("s", "#"), m["pc"] + m["oct"]))
    return out


def family_sounds(root: Path) -> list[tuple[str, str, str]]:
    """(fname, family, group) for every short plain note of FAMILIES and every single percussion hit."""
    out = []
    for family, folders in FAMILIES.items():
        for folder in folders:
            for p in sorted((root / folder).glob("*.mp3")):
                if m := SHORT_NOTE.match(p.name):
                    out.append((p.relative_to(root).as_posix(), family, f"{m['inst']}_{m['note']}"))
    for p in sorted((root / "percussion").rglob("*.mp3")):
        if m := PERCUSSION_HIT.match(p.name):
            out.append((p.relative_to(root).as_posix(), "percussion", m["inst"]))
    return out


def drum_sounds(root: Path) -> list[tuple[str, str, str]]:
    """(fname, label, machine/label) for every .ogg one-shot outside DRUM_SKIP (the .m4a files are copies)."""
    out = []
    for p in sorted(root.glob("*/*.ogg")):
        if p.parent.name in DRUM_SKIP or p.relative_to(root).as_posix() in DRUM_TOO_SHORT:
            continue
        label = next((name for name, pattern in DRUM_LABELS if re.search(pattern, p.stem.lower())), None)
        if label is None:
            sys.exit(f"{p}: no drum label matches {p.stem!r}; add it to DRUM_LABELS")
        out.append((p.relative_to(root).as_posix(), label, f"{p.parent.name}/{label}"))
    return out


def balanced(rows: list, key: int, per_class: int, seed: int) -> list:
    by = defaultdict(list)
    for r in rows:
        by[r[key]].append(r)
    rng = random.Random(seed)
    return sorted(r for k in sorted(by) for r in rng.sample(by[k], min(per_class, len(by[k]))))


def main(task: str, src: Path, out: Path) -> None:
    if task == "keywords":
        header, rows = ["fname", "labels", "speaker"], [(f, w, s) for f, w, s in speech_commands(src)]
    elif task == "speakers":
        clips = speech_commands(src)
        count = Counter(s for _, _, s in clips)
        header = ["fname", "labels", "word"]
        rows = [(f, s, w) for f, w, s in clips if count[s] >= MIN_SPEAKER_CLIPS]
    elif task == "sound_sources":
        header = ["fname", "labels", "source"]
        rows = [(p.relative_to(src).as_posix(), c, p.relative_to(src).as_posix())
                for c in SOUND_CATEGORIES for p in sorted((src / c).iterdir())
                if p.suffix in (".wav", ".mp3") and p.relative_to(src).as_posix() not in SOUND_ABSENT]
    elif task == "pitch":
        header = ["fname", "labels", "instrument"]
        rows = [(f, pc, inst) for f, inst, pc, _ in balanced(philharmonia(src), 2, PER_CLASS, seed=1)]
    elif task == "instrument":
        header = ["fname", "labels", "note"]
        rows = [(f, inst, note) for f, inst, _, note in balanced(philharmonia(src), 1, PER_CLASS, seed=2)]
    elif task == "events":
        header, rows = ["fname", "labels", "source"], balanced(family_sounds(src), 1, PER_FAMILY, seed=3)
    elif task == "drums":
        header, rows = ["fname", "labels", "kit_sound"], drum_sounds(src)
    else:
        sys.exit(f"unknown dev task {task!r}")
    if not rows:
        sys.exit(f"{task}: no clips found under {src}")
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    print(f"{out}: {len(rows)} rows, {len({r[1] for r in rows})} classes, {len({r[2] for r in rows})} groups")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
