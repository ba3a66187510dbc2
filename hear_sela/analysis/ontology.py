"""The AudioSet ontology (vendored in hear_sela/assets/audioset_ontology.json, CC BY-SA 4.0, see the .LICENSE.md
beside it): map FSD50K labels or AudioSet mids to their top-level ancestors.

The ontology is a DAG (a few classes have two parents), so a label may have several top-level ancestors; each clip's
top-level label set is the union over its labels. Labels are matched by mid when a mid is known, else by name:
FSD50K spells the ontology's names with "_" for spaces and "_and_" for ", " ("Male speech, man speaking" ->
"Male_speech_and_man_speaking"), so both are compared after lower-casing, turning ", " into " and " and dropping
everything that is not a letter or digit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

ONTOLOGY_FILE = "audioset_ontology.json"


def normalise_name(name: str) -> str:
    """Spelling-insensitive key shared by ontology names and FSD50K labels."""
    return re.sub(r"[^0-9a-z]", "", name.lower().replace(", ", " and "))


@dataclass(frozen=True)
class Ontology:
    names: dict[str, str]  # mid -> display name
    parents: dict[str, tuple[str, ...]]  # mid -> parent mids
    roots: tuple[str, ...]  # top-level mids, in file order
    by_name: dict[str, str]  # normalise_name(name) -> mid

    def top_level(self, mid: str) -> tuple[str, ...]:
        """Names of the top-level ancestors of `mid` (itself if it is top-level), sorted."""
        if mid not in self.names:
            raise KeyError(f"mid {mid!r} is not in the AudioSet ontology ({ONTOLOGY_FILE})")
        seen, stack, tops = set(), [mid], set()
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            ups = self.parents.get(node, ())
            if not ups:
                tops.add(self.names[node])
            stack.extend(ups)
        return tuple(sorted(tops))

    def resolve(self, label: str, vocabulary: Mapping[str, str] | None = None) -> str | None:
        """The mid of a label: via `vocabulary` (label -> mid, e.g. FSD50K's vocabulary.csv), a mid itself,
        or a name match; None if unknown."""
        if vocabulary and label in vocabulary and vocabulary[label] in self.names:
            return vocabulary[label]
        if label in self.names:
            return label
        return self.by_name.get(normalise_name(label))


@lru_cache(maxsize=1)
def load_ontology() -> Ontology:
    """Parse the vendored ontology once."""
    text = resources.files("hear_sela.assets").joinpath(ONTOLOGY_FILE).read_text(encoding="utf-8")
    entries = json.loads(text)
    names = {e["id"]: e["name"] for e in entries}
    parents: dict[str, list[str]] = {}
    for e in entries:
        for child in e["child_ids"]:
            parents.setdefault(child, []).append(e["id"])
    roots = tuple(e["id"] for e in entries if e["id"] not in parents)
    by_name = {normalise_name(e["name"]): e["id"] for e in entries}
    return Ontology(names, {k: tuple(v) for k, v in parents.items()}, roots, by_name)


def to_top_level(label_sets: Iterable[Iterable[str]], vocabulary: Mapping[str, str] | None = None
                 ) -> tuple[list[tuple[str, ...]], list[str]]:
    """Each item's labels -> the union of their top-level AudioSet classes.

    Returns (top-level label sets, labels that matched nothing in the ontology). Unmatched labels are dropped from
    the top-level sets (an item with only unmatched labels gets an empty set) and reported once each.
    """
    onto = load_ontology()
    cache: dict[str, tuple[str, ...] | None] = {}
    unmatched: list[str] = []
    out = []
    for labels in label_sets:
        tops: set[str] = set()
        for lab in labels:
            if lab not in cache:
                mid = onto.resolve(lab, vocabulary)
                cache[lab] = onto.top_level(mid) if mid is not None else None
                if mid is None:
                    unmatched.append(lab)
            tops.update(cache[lab] or ())
        out.append(tuple(sorted(tops)))
    return out, unmatched
