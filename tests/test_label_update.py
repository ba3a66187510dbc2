"""The label update: NMI between labelings (numpy, checked against sklearn's definition) and its input
normalisation."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from hear_sela.objectives.label_update import nmi


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_equals_sklearn_on_random_labelings(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 7, 500)
    b = np.where(rng.random(500) < 0.6, a, rng.integers(0, 11, 500))  # related, with other label values
    assert nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


def test_nmi_limit_cases_match_sklearn():
    one = np.zeros(10, dtype=np.int64)
    split = np.arange(10) % 2
    for a, b in [(one, one), (one, split), (split, split), (split, 5 + split[::-1])]:
        assert nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


def _labels_after_one_update(cfg, features):
    from hear_sela.objectives.base import RunContext
    from hear_sela.training.state import build_objective

    objective = build_objective(cfg, len(features), torch.device("cpu"))
    objective.update_labels(RunContext(cfg=cfg, device=torch.device("cpu"), features=features))
    return objective.store.labels  # (H, N)


def test_label_update_normalises_the_cached_segments_with_the_frontend_statistics(tmp_path):
    from helpers.training import cpu_config, memory_cache

    cache = memory_cache()
    cfg = dataclasses.replace(cpu_config(tmp_path), frontend=cache.frontend)  # as the loop runs it
    mean, std = cache.frontend.norm_mean, cache.frontend.norm_std
    pre = ((cache.features.astype(np.float32) - mean) / std)  # the same input, normalised beforehand
    plain = dataclasses.replace(cfg, frontend=dataclasses.replace(cache.frontend, norm_mean=None, norm_std=None))
    labels = _labels_after_one_update(cfg, cache.features)
    assert torch.equal(labels, _labels_after_one_update(plain, pre))
    assert not torch.equal(labels, _labels_after_one_update(plain, cache.features))  # the statistics matter here


def test_training_imports_no_sklearn():
    """sklearn draws from Python's RNG at import; the training path must not import it (resume stays exact whatever
    the import order)."""
    import subprocess
    import sys

    code = "import sys, hear_sela.training.loop, hear_sela.training.relabel; sys.exit('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_zero_prior_entry_is_refused_when_the_objective_is_built(tmp_path):
    from hear_sela.training.state import build_objective
    from helpers.training import cpu_config

    cfg = cpu_config(tmp_path)
    prior = np.ones(cfg.sela.clusters)
    prior[2] = 0.0
    np.save(tmp_path / "prior.npy", prior)
    cfg = dataclasses.replace(cfg, sela=dataclasses.replace(cfg.sela, marginals=str(tmp_path / "prior.npy")))
    with pytest.raises(ValueError, match=r"prior.npy: marginals must be finite and > 0, entries \[\[2\]\]"):
        build_objective(cfg, 10, torch.device("cpu"))


def test_solving_a_label_update_leaves_the_store_as_it_was_and_apply_writes_it(tmp_path):
    """solve_label_update only reads the store; LabelStore.apply is what changes it (labels, confidences, duals,
    count, history), and a relabel outside the schedule (counted=False) keeps the count."""
    from hear_sela.objectives.base import RunContext
    from hear_sela.objectives.label_update import solve_label_update
    from hear_sela.training.state import build_objective
    from helpers.training import cpu_config, memory_cache

    cache = memory_cache()
    cfg = dataclasses.replace(cpu_config(tmp_path), frontend=cache.frontend)
    objective = build_objective(cfg, len(cache.features), torch.device("cpu"))
    store = objective.store
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in vars(store).items()}
    run = RunContext(cfg=cfg, device=torch.device("cpu"), features=cache.features)
    update = solve_label_update(objective.encoder, objective.net.heads, store, run)
    for name, value in before.items():
        now = getattr(store, name)
        assert (torch.equal(now, value) if isinstance(value, torch.Tensor) else now == value), name
    assert update.labels.shape == store.labels.shape and update.stats["update"] == 1
    assert not torch.equal(update.labels, store.labels)  # a real update: the random initial labels change

    store.apply(update, counted=False)
    assert store.updates == 0 and torch.equal(store.labels, update.labels)
    store.apply(update)
    assert store.updates == 1 and store.duals is update.duals and len(store.history) == 2
    assert torch.equal(store.confidences, update.confidences)
