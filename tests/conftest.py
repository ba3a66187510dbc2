"""Shared test fixtures. Names and contents are stable: other test files rely on them.

Session-scoped (built once per pytest run, in a temporary folder; treat as read-only):
    tiny_corpus   SynthCorpus(root, records, clips_per_class=2, clip_seconds=2.0, seed=0): every synth class
                  (hear_sela.data.synth.SYNTH_CLASSES), 2 clips each, 2 s, 16 kHz WAV, with labels.csv; written by
                  `write_synth_corpus`, so `scan_folder(root, root / "labels.csv")` gives the same records.
    tiny_cache    FeatureCache of tiny_corpus with the default (BYOL-A) frontend, 1.0 s segments, 1.0 s hop,
                  0.5 s minimum: 2 segments per clip, features (34, 64, 101) float16, un-normalised log-mel;
                  `tiny_cache.frontend` carries the cache's mean/std.
    resnet18_checkpoint  path (str) of a training checkpoint of a freshly initialised timm resnet18 encoder with the
                  `sela_audio` frontend preset: the second encoder family, for tests that load "a given checkpoint".
    tiny_sela_run (root, cache): root/final.pt, a SeLa checkpoint in the training loop's format (audiontt_d512
                  encoder untrained, 2 heads x 8 clusters) over a 1-clip-per-class synth corpus (2 s clips, 1 s
                  segments) and its cache; head 0's label store follows the generating class (mod 8), head 1 keeps
                  the random initial labels. Analyses write under root.
Function-scoped:
    tiny_config   a fresh Config describing exactly tiny_corpus + tiny_cache (data.source=synth, data.root and
                  data.cache_dir pointing at them, the same segment settings, num_workers=0) with
                  train.out_dir = a per-test tmp folder. `prepare_cache(tiny_config)` opens tiny_cache without
                  rebuilding. data.on_stale=error, so a test that changes the frontend or segments and calls
                  prepare_cache gets a CacheError instead of silently rebuilding the shared cache: point
                  data.cache_dir elsewhere (e.g. tmp_path / "cache") for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hear_sela.config import Config, config_from_dict
from hear_sela.data.records import ClipRecord

TINY_CLIPS_PER_CLASS = 2
TINY_CLIP_SECONDS = 2.0
TINY_SEGMENT = {"segment_seconds": 1.0, "hop_seconds": 1.0, "min_segment_seconds": 0.5}


@dataclass(frozen=True)
class SynthCorpus:
    root: Path
    records: list[ClipRecord]
    clips_per_class: int
    clip_seconds: float
    seed: int


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> SynthCorpus:
    from hear_sela.data.synth import write_synth_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    records = write_synth_corpus(root, TINY_CLIPS_PER_CLASS, TINY_CLIP_SECONDS, seed=0, progress=False)
    return SynthCorpus(root, records, TINY_CLIPS_PER_CLASS, TINY_CLIP_SECONDS, 0)


def _tiny_config_dict(corpus: SynthCorpus, cache_dir: Path, out_dir: Path) -> dict:
    return {
        "name": "tiny",
        "data": {"source": "synth", "root": str(corpus.root), "cache_dir": str(cache_dir), "num_workers": 0,
                 "on_stale": "error", **TINY_SEGMENT,
                 "synth": {"clips_per_class": corpus.clips_per_class, "clip_seconds": corpus.clip_seconds,
                           "seed": corpus.seed}},
        "train": {"out_dir": str(out_dir), "device": "cpu"},
    }


@pytest.fixture(scope="session")
def tiny_cache(tiny_corpus, tmp_path_factory):
    from hear_sela.data.prepare import prepare_cache

    base = tmp_path_factory.mktemp("tiny_cache")
    cfg = config_from_dict(_tiny_config_dict(tiny_corpus, base / "cache", base / "run"))
    return prepare_cache(cfg, device="cpu", progress=False)


@pytest.fixture(scope="session")
def resnet18_checkpoint(tmp_path_factory) -> str:
    from hear_sela.checkpoint import encoder_checkpoint_state, save_checkpoint
    from hear_sela.encoders import build_encoder

    cfg = config_from_dict({"model": {"encoder": "resnet18"}, "frontend": {"preset": "sela_audio"}})
    path = tmp_path_factory.mktemp("resnet18") / "resnet18.pt"
    save_checkpoint(path, encoder_checkpoint_state(cfg, build_encoder(cfg)))
    return str(path)


@pytest.fixture
def tiny_config(tiny_corpus, tiny_cache, tmp_path) -> Config:
    return config_from_dict(_tiny_config_dict(tiny_corpus, tiny_cache.root, tmp_path / "run"))


@pytest.fixture(scope="session")
def tiny_sela_run(tmp_path_factory):
    import dataclasses

    import numpy as np
    import torch

    from hear_sela.checkpoint import encoder_checkpoint_state, save_checkpoint
    from hear_sela.config import load_config
    from hear_sela.data.prepare import prepare_cache
    from hear_sela.encoders import build_encoder
    from hear_sela.objectives.sela import SelaObjective

    root = tmp_path_factory.mktemp("run")
    cfg = load_config(None, ["model.encoder=audiontt_d512", "sela.heads=2", "sela.clusters=8",
                             "data.synth.clips_per_class=1", "data.synth.clip_seconds=2.0",
                             "data.segment_seconds=1.0", "data.hop_seconds=1.0", f"train.out_dir={root}"])
    cache = prepare_cache(cfg, progress=False)
    cfg = dataclasses.replace(cfg, frontend=cache.frontend)  # as training stores it: with the norm stats
    torch.manual_seed(0)
    objective = SelaObjective(cfg.sela, build_encoder(cfg), len(cache), seed=0)
    # labels that follow the generating class on head 0 (as a trained run's would), shuffled on head 1
    cls = np.array([sorted({c.labels[0] for c in cache.clips}).index(cache.clips[i].labels[0])
                    for i in cache.segment_clip])
    objective.store.labels[0] = torch.from_numpy(cls % 8)
    objective.store.confidences[0] = 0.9
    state = {**encoder_checkpoint_state(cfg, objective.encoder), **objective.state_dict(), "objective": "sela"}
    save_checkpoint(root / "final.pt", state)
    return root, cache
