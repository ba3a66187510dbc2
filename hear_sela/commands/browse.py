"""hear-sela browse CKPT_OR_ANALYSIS --out DIR: a static HTML site to see and hear a run's emergent classes.

Given a checkpoint, runs `hear-sela analyze` first (into DIR/analysis unless --analysis says where); given an
analysis folder, reads what analyze wrote there. Open DIR/index.html in a browser: no server, no network. See
docs/analysis.md, "hear-sela browse".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_sela.commands.analyze import add_analysis_options, run_analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="SeLa training checkpoint (.pt), or an analysis folder of `hear-sela analyze`")
    p.add_argument("--out", required=True, help="site folder (index.html goes here)")
    p.add_argument("--analysis", help="where to write the analysis of a checkpoint (default: OUT/analysis)")
    p.add_argument("--central", type=int, default=8, help="clips closest to the centre per cluster page")
    p.add_argument("--border", type=int, default=2, help="borderline clips per cluster page")
    p.add_argument("--nearest", type=int, default=5, help="nearest clusters listed per cluster page")
    p.add_argument("--audio-format", choices=["opus", "ogg", "mp3", "flac"], default="opus",
                   help="excerpt format: Ogg Opus at ~12 kbit/s (smallest; slowest to write), Ogg Vorbis (~3x larger, "
                        "~10x faster to write), MP3 (plays in every browser, Safari too) or FLAC (lossless)")
    p.add_argument("--max-seconds", type=float, default=5.0, help="longest excerpt (a segment plays whole up to it)")
    p.add_argument("--page-size", type=int, default=50, help="cluster rows per page of the index table")
    p.add_argument("--workers", type=int, default=1,
                   help="processes decoding clips and encoding excerpts (most of a large site's build time)")
    add_analysis_options(p)


def main(args: argparse.Namespace) -> int:
    from hear_sela.analysis.browse import BrowseOptions, build_site, read_analysis

    source = Path(args.source)
    folder = source
    if source.is_file():
        folder = Path(args.analysis or Path(args.out) / "analysis")
        run_analysis(str(source), str(folder), args)
    opts = BrowseOptions(central=args.central, border=args.border, nearest=args.nearest,
                         audio_format=args.audio_format, max_seconds=args.max_seconds, page_size=args.page_size,
                         workers=args.workers)
    result = build_site(read_analysis(folder), args.out, opts, progress=True)
    print(f"{result.pages} cluster pages, {result.excerpts} audio excerpts, {result.bytes / 2**20:.1f} MiB in "
          f"{result.seconds:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in result.timings.items())})")
    print(f"open {result.index}")
    return 0
