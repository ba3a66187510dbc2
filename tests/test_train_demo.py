"""The main job's acceptance check (slow, minutes on a CPU): SeLa trained with recipes/demo.yaml on the embedded
corpus gives labels whose NMI against the generating classes rises by >= 0.2 over the labels of the untrained
encoder and beats k-means (same K) on the untrained encoder's embeddings. Run: pytest -m slow tests/test_train_demo.py
or `python tests/test_train_demo.py OUT_DIR` to print the numbers."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def demo_nmi(out_dir: Path, overrides: list[str] = ()) -> dict[str, float]:
    """Train demo.yaml (or resume it) into out_dir; NMI (sklearn, segment level, mean over heads) against the
    generating class of: the untrained encoder's labels (the first label update, before any training), k-means on
    the untrained encoder's segment embeddings, and the trained run's final labels."""
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from hear_sela.analysis.core import kmeans_labels
    from hear_sela.config import load_config
    from hear_sela.data.prepare import prepare_cache
    from hear_sela.embed import embed_segments
    from hear_sela.objectives.base import RunContext
    from hear_sela.training.loop import train
    from hear_sela.training.state import build_objective, read_checkpoint

    cfg = load_config(RECIPE, [f"train.out_dir={out_dir}", *overrides])
    cache = prepare_cache(cfg)
    classes = sorted({c.labels[0] for c in cache.clips})
    truth = np.array([classes.index(cache.clips[i].labels[0]) for i in cache.segment_clip])  # (N,)
    # the untrained network exactly as the run starts it (same seed), and its first label update
    untrained = build_objective(cfg, len(cache), torch.device("cpu"))
    run_cfg = dataclasses.replace(cfg, frontend=cache.frontend)  # as the run: the cache's statistics
    untrained.update_labels(RunContext(cfg=run_cfg, device=torch.device("cpu"), features=cache.features))
    emb = embed_segments(untrained.encoder, cache.features, cache.frontend, cfg.sela.update_batch_size,
                         torch.device("cpu")).numpy()
    final = train(cfg, resume="auto", cache=cache)
    trained = read_checkpoint(final).label_store.labels.numpy()  # (H, N), solved after the last step

    def mean_nmi(labels: np.ndarray) -> float:
        return float(np.mean([nmi(truth, h) for h in labels]))

    return {"segments": len(cache), "classes": len(classes), "clusters": cfg.sela.clusters,
            "untrained_sela": mean_nmi(untrained.store.labels.numpy()),
            "kmeans_untrained": float(nmi(truth, kmeans_labels(emb, cfg.sela.clusters, seed=0))),
            "trained_sela": mean_nmi(trained), "trained_sela_head0": float(nmi(truth, trained[0]))}


@pytest.mark.slow
def test_demo_sela_labels_align_with_the_generating_classes(tmp_path: Path):
    r = demo_nmi(tmp_path / "demo")
    assert r["trained_sela"] >= r["untrained_sela"] + 0.2, r
    assert r["trained_sela"] > r["kmeans_untrained"], r


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(demo_nmi(Path(sys.argv[1]), sys.argv[2:]), indent=1))
