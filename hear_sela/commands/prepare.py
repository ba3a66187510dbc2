"""hear-sela prepare RECIPE [key=value ...]: decode, resample, segment and log-mel a dataset into its feature cache.

Reruns open the finished cache, resume an interrupted build, or rebuild a stale one (data.on_stale).
Examples:
    hear-sela prepare recipes/demo.yaml
    hear-sela prepare recipes/fsd50k_sela.yaml data.root=/data/FSD50K data.split=dev data.num_workers=8
    hear-sela prepare recipes/demo.yaml data.source=folder data.root=~/sounds data.cache_dir=runs/sounds_cache
"""

from __future__ import annotations

import argparse
import logging
import time

from hear_sela.config import ConfigError, load_config

log = logging.getLogger("hear_sela.prepare")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="YAML recipe: a path, or a packaged recipe's name (hear-sela recipes)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted config overrides, e.g. data.root=/data/FSD50K data.on_bad_file=error")
    p.add_argument("--rebuild", action="store_true", help="delete this config's cache first and build it again")
    p.add_argument("--cpu", action="store_true", help="compute the log-mel on the CPU even if CUDA is present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def main(args: argparse.Namespace) -> int:
    from hear_sela.data.audio import AudioError
    from hear_sela.data.cache import OWN_FILES, CacheError
    from hear_sela.data.prepare import cache_dir_of, prepare_cache
    from hear_sela.data.records import DataError

    t0 = time.perf_counter()
    try:
        cfg = load_config(args.recipe, args.overrides)
        if args.rebuild:
            root = cache_dir_of(cfg)
            for name in OWN_FILES:
                (root / name).unlink(missing_ok=True)
            log.info("removed the cache in %s", root)
        cache = prepare_cache(cfg, device="cpu" if args.cpu else None, progress=not args.no_progress)
    except (ConfigError, DataError, CacheError, AudioError) as e:  # expected failures: one clear line, no trace
        log.error("%s", e)
        return 1
    n, f, t = cache.features.shape
    print(f"cache:        {cache.root}")
    print(f"segments:     {n} x {f} mels x {t} frames (float16, {cache.disk_bytes() / 2**20:.1f} MiB on disk)")
    print(f"clips:        {len(cache.clips)} used, {len(cache.bad_files)} bad file(s) skipped, "
          f"{len(cache.manifest['too_short'])} too short")
    print(f"audio:        {cache.audio_seconds:.1f} s ({cache.audio_seconds / 3600:.2f} h)")
    print(f"log-mel:      mean {cache.mean:.4f}, std {cache.std:.4f} (frontend.norm_mean / norm_std)")
    print(f"build time:   {cache.manifest['build_seconds']:.1f} s (this call {time.perf_counter() - t0:.1f} s)")
    for bad in cache.bad_files[:10]:
        print(f"  bad: {bad['path']}: {bad['reason']}")
    if len(cache.bad_files) > 10:
        print(f"  ... and {len(cache.bad_files) - 10} more in {cache.root / 'manifest.json'}")
    return 0
