"""Size and build time of `hear-sela browse` on a larger synthetic run, to extrapolate to FSD50K scale.

Builds (or reuses) a synth corpus of 17 classes x N clips and its feature cache, gives it H heads x K clusters of
made-up labels (each clip's head label follows its class with noise, as a trained head's roughly would; no training),
runs the real `analyze` (mean log-mel as the map embedding) and then `build_site`, and prints the site's size by kind
of file, the time of each stage, and the per-excerpt / per-page figures to scale from.

  python benchmarks/browse_size.py --out /tmp/browse_bench [--clips-per-class 300] [--heads 4] [--clusters 100]
      [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from hear_sela.analysis.browse import BrowseOptions, build_site, read_analysis
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--clips-per-class", type=int, default=300)
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--workers", type=int, default=1, help="processes for the audio excerpts")
    args = p.parse_args()
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
