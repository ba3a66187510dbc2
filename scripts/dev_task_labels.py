"""Labels CSVs for the dev tasks, from the file layout of each source (scripts/make_dev_tasks.sh runs this).

python scripts/dev_task_labels.py TASK SOURCE_DIR OUT_CSV [--keep-v002-test]
  keywords      Speech Commands v0.01 subset: label = word (folder), speaker = id in <speaker>_nohash_<n>.wav;
                speakers that Speech Commands' own split hash puts in the v0.02 test partition are left out
                (their v0.01 clips can be v0.02 test clips, a held-out set) unless --keep-v002-test (dev suite v1)
  speakers      same audio: label = speaker (those with >= 11 clips), word = the group (no word in two folds)
  sound_sources interactive-sound-keyboard: label = animals | musical_instruments | transportation, one row per file
  pitch         Philharmonia notes (1 s and 0.5 s, normal articulation): label = pitch class, group = instrument
  instrument    the same notes: label = instrument, group = note (no pitch in two folds)
  dynamics      Philharmonia notes of normal articulation: label = dynamic (pianissimo .. fortissimo; mezzo-piano
                left out: 5 instruments hold nearly all of it), group = instrument (no instrument in two folds)
  articulation  Philharmonia: label = articulation family (normal, trill, staccato, tremolo, nonlegato, legato,
                fluttertonguing, tenuto, glissando), group = instrument + note (no note of an instrument in two folds)
  game_sfx      CDDA-Soundpacks CC-Sounds: label = coarse sound class of the top folder (footsteps, ambience,
                impact, gunfire, melee, creature, vehicle, door), group = the file (one clip per file)
  emotion       RAVDESS speech (audio only): label = emotion (8), group = actor (no actor in two folds)
  actors        the same clips: label = actor (24), group = emotion (no emotion in two folds)
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
import hashlib
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
# every Philharmonia note file: instrument_note_duration_dynamic_articulation.mp3
PHILHARMONIA_FILE = re.compile(r"^(?P<inst>[a-z-]+)_(?P<note>[A-G]s?[0-9])_(?P<dur>025|05|1|15|phrase|long|very-long)_"
                               r"(?P<dyn>[a-z-]+)_(?P<art>[a-z-]+)\.mp3$")
DYNAMICS = ("pianissimo", "piano", "mezzo-forte", "forte", "fortissimo")
PER_DYNAMIC = 120  # 5 dynamics -> 600 clips
# the source's articulation names -> one family each (names absent here, or too rare, are left out)
ARTICULATIONS = {"normal": "normal", "arco-normal": "normal", "major-trill": "trill", "minor-trill": "trill",
                 "arco-major-trill": "trill", "arco-minor-trill": "trill", "staccato": "staccato",
                 "staccatissimo": "staccato", "arco-staccato": "staccato", "arco-spiccato": "staccato",
                 "tremolo": "tremolo", "nonlegato": "nonlegato", "legato": "legato", "arco-legato": "legato",
                 "fluttertonguing": "fluttertonguing", "tenuto": "tenuto", "glissando": "glissando"}
PER_ARTICULATION = 80  # the rarer families keep all they have (44-76): 619 clips
# CDDA-Soundpacks CC-Sounds: top folder -> coarse class (menus, music and clean-up sounds left out)
GAME_SFX = {"plmove": "footsteps", "environment": "ambience", "smash_success": "impact", "smash_fail": "impact",
            "smash": "impact", "fire_gun": "gunfire", "reload": "gunfire", "explosion": "gunfire",
            "melee_swing": "melee", "melee_hit_flesh": "melee", "melee_attack": "melee", "deal_damage": "melee",
            "speech": "creature", "mon_bite": "creature", "mon_death": "creature", "vehicle": "vehicle",
            "vehicle_open": "vehicle", "vehicle_close": "vehicle", "engine_start": "vehicle",
            "engine_stop": "vehicle", "engine_working_internal": "vehicle", "engine_working_external": "vehicle",
            "open_door": "door", "close_door": "door"}
GAME_SFX_SUFFIXES = (".ogg", ".wav")
# RAVDESS: modality 03 (audio) - channel 01 (speech) - emotion - intensity - statement - repetition - actor
RAVDESS_FILE = re.compile(r"^03-01-(?P<emo>0[1-8])-0[12]-0[12]-0[12]-(?P<actor>[0-9]{2})\.wav$")
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                    "07": "disgust", "08": "surprised"}
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


def v002_partition(speaker: str) -> str:
    """Speech Commands' own split (`which_set` in its README and paper): a hash of the speaker id, so every clip of
    a speaker, in v0.01 and v0.02 alike, falls in the same partition (validation 10 %, testing 10 %)."""
    max_per_class = 2**27 - 1
    percent = (int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (max_per_class + 1)) * (100.0 / max_per_class)
    return "validation" if percent < 10 else "testing" if percent < 20 else "training"


def speech_commands(root: Path, keep_v002_test: bool = False) -> list[tuple[str, str, str]]:
    """(fname, word, speaker) for every clip (less those of v0.02 test speakers unless keep_v002_test)."""
    clips = [(p.relative_to(root).as_posix(), p.parent.name, p.name.split("_nohash_")[0])
             for p in sorted(root.glob("*/*_nohash_*.wav"))]
    return [c for c in clips if keep_v002_test or v002_partition(c[2]) != "testing"]


def philharmonia(root: Path) -> list[tuple[str, str, str, str]]:
    """(fname, instrument, pitch class, note) for every plain single note of 0.5 or 1 s."""
    out = []
    for p in sorted(root.rglob("*.mp3")):
        m = PHILHARMONIA_NOTE.match(p.name)
        if m and m["inst"] not in ("banjo", "guitar", "mandolin"):  # too few notes of these
            out.append((p.relative_to(root).as_posix(), m["inst"], m["pc"].replace("s", "#"), m["pc"] + m["oct"]))
    return out


def philharmonia_files(root: Path) -> list[tuple[str, dict[str, str]]]:
    """(fname, its name's fields: inst, note, dur, dyn, art) for every pitched note file."""
    return [(p.relative_to(root).as_posix(), m.groupdict()) for p in sorted(root.rglob("*.mp3"))
            if (m := PHILHARMONIA_FILE.match(p.name))]


def dynamics(root: Path) -> list[tuple[str, str, str]]:
    """(fname, dynamic, instrument) for the plain notes (normal articulation) of the DYNAMICS."""
    return [(f, m["dyn"], m["inst"]) for f, m in philharmonia_files(root)
            if ARTICULATIONS.get(m["art"]) == "normal" and m["dyn"] in DYNAMICS
            and m["inst"] not in ("banjo", "guitar", "mandolin")]


def articulations(root: Path) -> list[tuple[str, str, str]]:
    """(fname, articulation family, instrument_note) for every note of a known articulation."""
    return [(f, ARTICULATIONS[m["art"]], f"{m['inst']}_{m['note']}") for f, m in philharmonia_files(root)
            if m["art"] in ARTICULATIONS]


def game_sfx(root: Path) -> list[tuple[str, str, str]]:
    """(fname, coarse class, fname) for every sound under a GAME_SFX folder."""
    return [(f, GAME_SFX[f.split("/")[0]], f) for p in sorted(root.rglob("*"))
            if p.suffix in GAME_SFX_SUFFIXES and (f := p.relative_to(root).as_posix()).split("/")[0] in GAME_SFX]


def ravdess(root: Path) -> list[tuple[str, str, str]]:
    """(fname, emotion, actor) for every speech clip under Actor_NN/."""
    return [(p.relative_to(root).as_posix(), RAVDESS_EMOTIONS[m["emo"]], f"actor{m['actor']}")
            for p in sorted(root.glob("Actor_*/*.wav")) if (m := RAVDESS_FILE.match(p.name))]


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


def main(task: str, src: Path, out: Path, keep_v002_test: bool = False) -> None:
    if task == "keywords":
        header, rows = ["fname", "labels", "speaker"], [(f, w, s) for f, w, s in speech_commands(src, keep_v002_test)]
    elif task == "speakers":
        clips = speech_commands(src, keep_v002_test)
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
    elif task == "dynamics":
        header, rows = ["fname", "labels", "instrument"], balanced(dynamics(src), 1, PER_DYNAMIC, seed=4)
    elif task == "articulation":
        header, rows = ["fname", "labels", "note"], balanced(articulations(src), 1, PER_ARTICULATION, seed=5)
    elif task == "game_sfx":
        header, rows = ["fname", "labels", "source"], game_sfx(src)
    elif task == "emotion":
        header, rows = ["fname", "labels", "actor"], ravdess(src)
    elif task == "actors":
        header, rows = ["fname", "labels", "emotion"], [(f, a, e) for f, e, a in ravdess(src)]
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
    args = [a for a in sys.argv[1:] if a != "--keep-v002-test"]
    if len(args) != 3:
        sys.exit(__doc__)
    main(args[0], Path(args[1]), Path(args[2]), keep_v002_test="--keep-v002-test" in sys.argv[1:])
