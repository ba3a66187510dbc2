"""SeLaVi's multi-view labels and decorrelated head groups (sela.views, sela.view_kind, sela.head_groups)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import hear_sela.objectives.label_views as label_views
from hear_sela.config import ConfigError, load_config
from hear_sela.embed import embed_segments
from hear_sela.objectives.base import RunContext
from hear_sela.objectives.label_update import mean_pairwise_nmi, nmi
from hear_sela.objectives.label_views import combine_views, head_groups
from hear_sela.sinkhorn import solve_labels
from hear_sela.training.state import build_objective
from helpers.training import cpu_config, memory_cache

CPU = torch.device("cpu")


def product_reference(view_logits: list[np.ndarray], lamb: float, tol: float = 1e-13, max_iters: int = 100_000
                      ) -> tuple[np.ndarray, np.ndarray]:
    """SeLaVi's label rule, plainly in float64: per head, P = (Π_v softmax(z_v))^λ (N, K), Sinkhorn-Knopp to
    cluster sums N/K and sample sums 1, labels = argmax_k Q, confidence = max_k Q / Σ_k Q. (H, N, K) each ->
    labels (H, N), confidences (H, N)."""
    labels, confs = [], []
    for h in range(view_logits[0].shape[0]):
        p = np.ones(view_logits[0].shape[1:])
        for z in view_logits:
            e = np.exp(z[h] - z[h].max(1, keepdims=True))
            p = p * e / e.sum(1, keepdims=True)
        p = p ** lamb  # (N, K)
        n, k = p.shape
        col, row = np.ones(k), np.ones(n)
        for _ in range(max_iters):
            col = (n / k) / (p * row[:, None]).sum(0)
            new_row = 1.0 / (p * col[None, :]).sum(1)
            done = np.abs(row / new_row - 1).sum() < tol
            row = new_row
            if done:
                break
        q = p * row[:, None] * col[None, :]
        labels.append(q.argmax(1))
        confs.append(q.max(1) / q.sum(1))
    return np.stack(labels), np.stack(confs)


@pytest.mark.parametrize(("views", "seed"), [(2, 0), (2, 1), (3, 2)])
def test_solve_on_summed_log_softmaxes_equals_the_float64_product_of_softmaxes(views, seed):
    gen = torch.Generator().manual_seed(seed)
    lamb = 4.0
    zs = [torch.randn(2, 80, 5, generator=gen) * 2 for _ in range(views)]  # V x (H, N, K)
    result = solve_labels(combine_views(zs), lamb=lamb, tol=1e-11, dtype=torch.float64, max_iters=100_000)
    labels, conf = product_reference([z.double().numpy() for z in zs], lamb)
    assert result.converged.all()
    np.testing.assert_array_equal(result.labels.numpy(), labels)
    np.testing.assert_allclose(result.confidences.double().numpy(), conf, rtol=1e-5, atol=1e-6)
    # one view alone gives other labels here: the second view counts
    alone, _ = product_reference([zs[0].double().numpy()], lamb)
    assert (alone != labels).any()


class Recorder:
    """Wraps label_views.embed_segments: keeps every pass's inputs (N, F, T') and embeddings (N, D)."""

    def __init__(self, monkeypatch):
        self.inputs: list[torch.Tensor] = []
        self.embeddings: list[torch.Tensor] = []
        monkeypatch.setattr(label_views, "embed_segments", self)

    def __call__(self, *args, transform, **kwargs):
        seen = []

        def record(indices, seg):
            x = transform(indices, seg)
            seen.append(x.clone())
            return x

        emb = embed_segments(*args, transform=record, **kwargs)
        self.inputs.append(torch.cat(seen))
        self.embeddings.append(emb.clone())
        return emb


def _update(cfg, cache, updates: int = 0):
    objective = build_objective(cfg, len(cache), CPU)
    objective.store.updates = updates
    stats = objective.update_labels(RunContext(cfg=cfg, device=CPU, features=cache.features))
    return objective, stats


def _cfg(tmp_path, cache, **over):
    return dataclasses.replace(cpu_config(tmp_path, **over), frontend=cache.frontend)


@pytest.mark.parametrize("kind", ["crops", "augment"])
def test_multi_view_update_labels_from_the_product_of_the_views_softmaxes(tmp_path, monkeypatch, kind):
    cache = memory_cache()
    cfg = _cfg(tmp_path, cache, **{"sela.views": 2, "sela.view_kind": kind, "sela.tol": 1e-10,
                                   "sela.solver_dtype": "float64", "sela.max_iters": 100_000})
    rec = Recorder(monkeypatch)
    objective, _ = _update(cfg, cache)
    assert len(rec.embeddings) == 2 and not torch.equal(rec.inputs[0], rec.inputs[1])
    heads = objective.net.heads
    w, b = heads.weight.detach().double().numpy(), heads.bias.detach().double().numpy()  # (H, K, D), (H, K)
    zs = [np.einsum("nd,hkd->hnk", e.double().numpy(), w) + b[:, None, :] for e in rec.embeddings]
    labels, conf = product_reference(zs, cfg.sela.lamb)
    np.testing.assert_array_equal(objective.store.labels.numpy(), labels)
    np.testing.assert_allclose(objective.store.confidences.double().numpy(), conf, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["crops", "augment"])
def test_one_view_one_group_is_the_plain_whole_segment_pass(tmp_path, kind):
    """views = 1, head_groups = 1 (whatever view_kind): today's update, embed -> logits -> solve, bit for bit."""
    cache = memory_cache()
    cfg = _cfg(tmp_path, cache, **{"sela.view_kind": kind})
    objective = build_objective(cfg, len(cache), CPU)
    heads = objective.net.heads
    emb = embed_segments(objective.encoder, cache.features, cfg.frontend, cfg.sela.update_batch_size, CPU)  # (N, D)
    heads.eval()
    s = cfg.sela
    expected = solve_labels(heads.logits(emb, s.chunk_size), lamb=s.lamb, tol=s.tol, check_every=s.check_every,
                            max_iters=s.max_iters)
    heads.train()
    objective.update_labels(RunContext(cfg=cfg, device=CPU, features=cache.features))
    assert torch.equal(objective.store.labels, expected.labels)
    assert torch.equal(objective.store.confidences, expected.confidences.float())


def test_head_groups_see_different_draws_redrawn_alike_for_the_same_seed_and_update(tmp_path, monkeypatch):
    cache = memory_cache()
    cfg = _cfg(tmp_path, cache, **{"sela.head_groups": 2})
    rec = Recorder(monkeypatch)
    _update(cfg, cache)
    first = list(rec.inputs), list(rec.embeddings)
    assert len(first[0]) == 2  # one pass per group
    assert not torch.equal(first[0][0], first[0][1]) and not torch.equal(first[1][0], first[1][1])
    rec.inputs.clear(), rec.embeddings.clear()
    _update(cfg, cache)  # a fresh process state (as after a resume), same seed and update index: same draws
    for a, b in zip(first[0] + first[1], rec.inputs + rec.embeddings):
        assert torch.equal(a, b)
    rec.inputs.clear()
    _update(cfg, cache, updates=1)  # the next update draws afresh
    assert not torch.equal(first[0][0], rec.inputs[0])
    rec.inputs.clear()
    _update(_cfg(tmp_path, cache, **{"sela.head_groups": 2, "train.seed": 1}), cache)  # so does another seed
    assert not torch.equal(first[0][0], rec.inputs[0])


def test_crop_views_do_not_depend_on_the_batch_size(tmp_path, monkeypatch):
    cache = memory_cache()
    rec = Recorder(monkeypatch)
    for batch in (5, 16):
        _update(_cfg(tmp_path, cache, **{"sela.views": 2, "sela.update_batch_size": batch}), cache)
    assert torch.equal(rec.inputs[0], rec.inputs[2]) and torch.equal(rec.inputs[1], rec.inputs[3])


def test_head_groups_partition_the_heads():
    groups = head_groups(7, 3, torch.Generator().manual_seed(0))
    assert [len(g) for g in groups] == [3, 2, 2]
    assert sorted(torch.cat(groups).tolist()) == list(range(7))
    assert [g.tolist() for g in head_groups(4, 1, torch.Generator())] == [[0, 1, 2, 3]]


def test_crop_views_refuse_crops_as_long_as_the_segment(tmp_path):
    cache = memory_cache()  # 24 frames
    cfg = _cfg(tmp_path, cache, **{"sela.views": 2, "augment.crop_frames": 24})
    with pytest.raises(ValueError, match="crop_frames < the segments' 24 frames"):
        _update(cfg, cache)


def test_mean_pairwise_head_nmi_on_a_hand_made_case_and_in_the_log(tmp_path):
    same, renamed, crossed = [0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]
    assert mean_pairwise_nmi(np.array([same, renamed])) == pytest.approx(1.0)
    assert mean_pairwise_nmi(np.array([same, crossed])) == pytest.approx(0.0)
    assert mean_pairwise_nmi(np.array([same, renamed, crossed])) == pytest.approx(1 / 3)  # pairs 1, 0, 0
    assert np.isnan(mean_pairwise_nmi(np.array([same])))
    cache = memory_cache()
    objective, stats = _update(_cfg(tmp_path, cache), cache)
    labels = objective.store.labels.numpy()
    pairs = [nmi(labels[a], labels[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert stats["head_nmi"] == pytest.approx(np.mean(pairs)) and 0 < stats["head_nmi"] < 1


@pytest.mark.parametrize(("override", "message"), [
    ("sela.views=0", "sela.views must be >= 1, got 0"),
    ("sela.head_groups=5", r"sela.head_groups must be in 1..sela.heads \(4\), got 5"),
    ("sela.view_kind=midside", "sela.view_kind must be one of 'crops', 'augment'"),
])
def test_bad_view_settings_fail_at_load_naming_the_recipe_and_key(override, message):
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "real_sela.yaml"
    with pytest.raises(ConfigError, match=f"real_sela.yaml \\+ overrides: {message}"):
        load_config(recipe, [override])


def test_the_ablation_overrides_load_onto_the_real_recipe():
    """recipes/ablations/overrides/*.yaml (recipes/ablations/README.md): dotted keys onto recipes/real_sela.yaml."""
    from hear_sela.commands.ablate import read_variant
    from hear_sela.config import load_yaml

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    loaded = {}
    for path in sorted((recipes / "ablations" / "overrides").glob("*.yaml")):
        over = load_yaml(path.read_text())
        assert isinstance(over, dict) and (over or path.stem == "baseline"), path  # baseline: the recipe as is
        # as `hear-sela ablate` reads them: a relative path setting (marg_prior's .npy) is relative to the file
        loaded[path.stem] = load_config(recipes / "real_sela.yaml", read_variant(path))
    assert (loaded["views2"].sela.views, loaded["views2"].sela.head_groups) == (2, 1)
    assert (loaded["groups2"].sela.views, loaded["groups2"].sela.head_groups) == (1, 2)


def test_with_views_the_agreement_term_is_the_share_of_views_whose_argmax_is_the_shared_label(tmp_path, monkeypatch):
    from hear_sela.objectives.confidence import agreement_term, view_agreement

    cache = memory_cache()
    cfg = _cfg(tmp_path, cache, **{"sela.views": 3, "sela.confidence": ["agreement"], "sela.confidence_alpha": 1.0})
    rec = Recorder(monkeypatch)
    objective, _ = _update(cfg, cache)
    heads = objective.net.heads
    heads.eval()
    with torch.no_grad():  # each view's own argmax, from the embeddings the update computed
        own = torch.stack([heads.logits(e, cfg.sela.chunk_size).argmax(-1) for e in rec.embeddings])  # (V, H, N)
    labels = objective.store.labels  # (H, N)
    expected = view_agreement(own, labels)
    torch.testing.assert_close(objective.store.terms["agreement"], expected)
    assert not torch.equal(expected, agreement_term(labels))  # the heads' co-membership would be another term
    assert set(torch.unique(expected * 3).round().tolist()) <= {0.0, 1.0, 2.0, 3.0}
