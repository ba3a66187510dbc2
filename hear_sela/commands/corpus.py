"""hear-sela corpus OUT: collect, deduplicate and cut audio from source folders into a 16 kHz pretraining corpus.

Sources come from a YAML file (`--sources FILE --base DIR`, as scripts/make_real_corpus.sh uses) and/or
`--source NAME=DIR` pairs. `--dry-run` decodes everything and prints what would be written, hours per source,
without writing clips.
Examples:
    hear-sela corpus runs/real_corpus --sources scripts/real_corpus_sources.yaml --base ~/.cache/hear_sela/debs
    hear-sela corpus runs/field --source field=~/field_recordings --source birds=~/birds --dry-run
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger("hear_sela.corpus")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder (OUT/<source>/..., OUT/labels.csv, OUT/manifest.json)")
    p.add_argument("--sources", help="YAML list of sources (name, root, category, package, licence, max_hours)")
    p.add_argument("--base", default=".", help="folder the YAML roots are relative to (default: .)")
    p.add_argument("--source", action="append", default=[], metavar="NAME=DIR", help="a folder of audio; repeatable")
    p.add_argument("--max-hours-per-source", type=float, help="cap on any one source (default 1.0, or the YAML's)")
    p.add_argument("--cap", action="append", default=[], metavar="CATEGORY=HOURS",
                   help="cap on all sources of one category, e.g. music=1.5; repeatable")
    p.add_argument("--source-cap", action="append", default=[], metavar="CATEGORY=HOURS",
                   help="cap on each source of one category, e.g. music=0.35; repeatable")
    p.add_argument("--max-seconds-per-file", type=float,
                   help="take at most this much audio from one file (default: all, or the YAML's)")
    p.add_argument("--max-clip-seconds", type=float, default=10.0)
    p.add_argument("--min-clip-seconds", type=float, default=1.0)
    p.add_argument("--format", choices=["flac", "wav"], default="flac")
    p.add_argument("--dry-run", action="store_true", help="list what would be collected; write nothing")


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    from hear_sela.data.records import DataError

    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise DataError(f"{what} {item!r}: expected NAME=VALUE")
        out.append((name.strip(), value.strip()))
    return out


def _caps(from_file: dict, items: list[str], what: str) -> dict[str, float]:
    """The YAML's CATEGORY: HOURS caps updated by the command line's CATEGORY=HOURS ones."""
    from hear_sela.data.records import DataError

    caps = dict(from_file)
    try:
        caps.update({k: float(v) for k, v in _pairs(items, what)})
    except ValueError as e:
        raise DataError(f"{what}: {e}") from None
    return caps


def main(args: argparse.Namespace) -> int:
    from hear_sela.data.audio import AudioError
    from hear_sela.data.corpus import CorpusConfig, SourceSpec, collect, load_sources, write_corpus
    from hear_sela.data.records import DataError

    t0 = time.perf_counter()
    try:
        specs, settings = (load_sources(args.sources, args.base) if args.sources else ([], {}))
        specs += [SourceSpec(name, str(Path(d).expanduser())) for name, d in _pairs(args.source, "--source")]
        if not specs:
            raise DataError("no sources: give --sources FILE and/or --source NAME=DIR")
        caps = _caps(settings.get("category_hours", {}), args.cap, "--cap")
        source_caps = _caps(settings.get("category_source_hours", {}), args.source_cap, "--source-cap")
        cfg = CorpusConfig(
            max_clip_seconds=args.max_clip_seconds, min_clip_seconds=args.min_clip_seconds, format=args.format,
            max_hours_per_source=(args.max_hours_per_source if args.max_hours_per_source is not None
                                  else float(settings.get("max_hours_per_source", 1.0))),
            category_hours=caps, category_source_hours=source_caps,
            max_seconds_per_file=(args.max_seconds_per_file if args.max_seconds_per_file is not None
                                  else settings.get("max_seconds_per_file")))
        clips, reports = collect(specs, cfg, keep_audio=not args.dry_run)
        if not clips:
            raise DataError("no clips collected from the sources")
        if not args.dry_run:
            write_corpus(args.out, clips, reports, cfg)
    except (DataError, AudioError) as e:  # expected failures: one clear line, no trace
        log.error("%s", e)
        return 1
    print(f"{'source':28s} {'category':9s} {'files':>6s} {'clips':>6s} {'hours':>6s} {'exact':>6s} {'near':>5s} "
          f"{'bad':>4s}  licence")
    for r in reports:
        print(f"{r.spec.name:28s} {r.spec.category:9s} {r.files_used:6d} {r.clips:6d} {r.seconds / 3600:6.2f} "
              f"{r.exact_duplicates:6d} {r.near_duplicates:5d} {len(r.bad_files):4d}  {r.spec.licence}")
        for b in r.bad_files:
            print(f"  bad file: {b['path']}: {b['reason']}")
    hours = sum(r.seconds for r in reports) / 3600
    verb = "would write" if args.dry_run else f"wrote {args.out}:"
    print(f"{verb} {len(clips)} clips, {hours:.2f} h ({time.perf_counter() - t0:.0f} s)")
    return 0
