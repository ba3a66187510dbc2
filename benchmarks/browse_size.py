"""Size and build time of `hear-sela browse` on a larger synthetic run, to extrapolate to FSD50K scale.

Builds (or reuses) a synth corpus of 17 classes x N clips and its feature cache, gives it H heads x K clusters of
made-up labels (each clip's head label follows its class with noise, as a trained head's roughly would; no training),
runs the real `analyze` (mean log-mel as the map embedding) and then `build_site`, and prints the site's size by kind
of file, the time of each stage, and the per-excerpt / per-page figures to scale from.

`--plan-only` writes nothing: at full scale (default 51,197 clips of 200 classes, 10 heads x 1000 clusters, FSD50K's
dev + eval) it makes up class-structured clip embeddings and labels and runs the pages' selection
(`site.plan_head`), to count the distinct clips the site would show, i.e. how many excerpts and thumbnails it writes
(one per clip shown, shared by every head), beside two bounds: every shown (head, clip) pair apart, and independent
heads.

  python benchmarks/browse_size.py --out /tmp/browse_bench [--clips-per-class 300] [--heads 4] [--clusters 100]
      [--workers 1]
  python benchmarks/browse_size.py --plan-only [--clips 51197] [--classes 200] [--heads 10] [--clusters 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from hear_sela.analysis.browse import BrowseOptions, build_site, read_analysis
from hear_sela.analysis.browse.site import plan_head, shown_clips
from hear_sela.analysis.core import AnalysisInputs, analyze
from hear_sela.analysis.sources import clip_mean, mean_log_mel
from hear_sela.config import config_from_dict
from hear_sela.data.prepare import prepare_cache


def made_up_labels(cls: np.ndarray, seg_clip: np.ndarray, heads: int, k: int, seed: int) -> np.ndarray:
    """(H, S) segment labels: per head a random class -> cluster block map, 20% of clips elsewhere, 10% of
    segments flipped."""
    rng = np.random.default_rng(seed)
    n_cls = int(cls.max()) + 1
    out = []
    for _ in range(heads):
        block = rng.permutation(k)[: n_cls * (k // n_cls)].reshape(n_cls, -1)  # each class owns k // 17 clusters
        clip = block[cls, rng.integers(0, block.shape[1], len(cls))]
        moved = rng.random(len(cls)) < 0.2
        clip[moved] = rng.integers(0, k, moved.sum())
        seg = clip[seg_clip]
        flip = rng.random(len(seg)) < 0.1
        seg[flip] = rng.integers(0, k, flip.sum())
        out.append(seg)
    return np.stack(out)


def count_shown(clips: int, classes: int, heads: int, clusters: int, opts: BrowseOptions, seed: int = 0) -> dict:
    """Distinct clips the site of a made-up run would show; each clip has one segment (the count needs no more)."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, classes, clips)  # (C,)
    emb = rng.normal(size=(classes, 64))[cls] + rng.normal(scale=0.7, size=(clips, 64))  # (C, 64) classes apart
    labels = made_up_labels(cls, np.arange(clips), heads, clusters, seed)  # (H, C)
    y = np.zeros((clips, 0), dtype=bool)
    plans = [plan_head(emb, labels[h], np.full(clips, 0.9), y, clusters, opts) for h in range(heads)]
    pairs = sum(len(m) for p in plans for d in (p.central, p.border) for m in d.values())
    per_head = opts.central + opts.border
    independent = clips * (1.0 - (1.0 - min(1.0, clusters * per_head / clips)) ** heads)
    return {"clips": clips, "classes": classes, "heads": heads, "clusters": clusters, "pages": sum(len(p.central)
            for p in plans), "shown (head, clip) pairs": pairs, "distinct clips shown": int(len(shown_clips(plans))),
            "independent heads would show": round(independent)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out")
    p.add_argument("--clips-per-class", type=int, default=300)
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--workers", type=int, default=1, help="processes for the audio excerpts")
    p.add_argument("--plan-only", action="store_true", help="count the excerpts of a full-scale site, write nothing")
    p.add_argument("--clips", type=int, default=51197, help="--plan-only: clips")
    p.add_argument("--classes", type=int, default=200, help="--plan-only: classes the made-up labels follow")
    args = p.parse_args()
    if args.plan_only:
        t = time.perf_counter()
        report = count_shown(args.clips, args.classes, args.heads, args.clusters, BrowseOptions())
        print(json.dumps({**report, "seconds": round(time.perf_counter() - t, 1)}, indent=2))
        return
    if not args.out:
        p.error("--out is required (or --plan-only)")
    out = Path(args.out)
    times = {}
    t = time.perf_counter()
    cfg = config_from_dict({"data": {"source": "synth", "root": str(out / "corpus"), "cache_dir": str(out / "cache"),
                                     "segment_seconds": 2.0, "hop_seconds": 1.0, "num_workers": 0,
                                     "synth": {"clips_per_class": args.clips_per_class,
                                               "clip_seconds": args.clip_seconds}},
                            "train": {"out_dir": str(out), "device": "cpu"}})
    cache = prepare_cache(cfg, device="cpu", progress=False)
    times["corpus + cache"] = time.perf_counter() - t

    t = time.perf_counter()
    names = sorted({c.labels[0] for c in cache.clips})
    cls = np.array([names.index(c.labels[0]) for c in cache.clips])
    seg_clip = np.asarray(cache.segment_clip)
    labels = made_up_labels(cls, seg_clip, args.heads, args.clusters, 0)
    emb = clip_mean(mean_log_mel(cache.features, cache.segment_frames), seg_clip, len(cache.clips))
    inputs = AnalysisInputs(labels=labels, confidences=np.full(labels.shape, 0.9), n_clusters=args.clusters,
                            segment_clip=seg_clip, segment_start=np.asarray(cache.segment_start),
                            clip_ids=[c.clip_id for c in cache.clips], clip_labels=[c.labels for c in cache.clips],
                            embeddings={"mean log-mel": emb}, source=f"{out} (made-up labels)",
                            cache_dir=str(Path(cache.root).resolve()))
    analyze(inputs, out / "analysis")
    times["analyze"] = time.perf_counter() - t

    t = time.perf_counter()
    data = read_analysis(out / "analysis")
    times["read analysis"] = time.perf_counter() - t
    site = out / "site"
    res = build_site(data, site, BrowseOptions(workers=args.workers))
    times.update({f"site: {k}": v for k, v in res.timings.items()})
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for f in site.rglob("*"):
        if f.is_file():
            sizes[f.suffix] += f.stat().st_size
            counts[f.suffix] += 1
    report = {"workers": args.workers,
              "clips": len(cache.clips), "segments": len(cache), "heads": args.heads, "clusters": args.clusters,
              "pages": res.pages, "excerpts": res.excerpts, "site_mib": res.bytes / 2**20,
              "site_seconds": res.seconds, "by_suffix_mib": {k: v / 2**20 for k, v in sizes.items()},
              "files_by_suffix": dict(counts), "seconds": times}
    print(json.dumps(report, indent=2))
    (out / "browse_size.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
