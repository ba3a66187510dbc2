"""SeLaVi's Gaussian marginals as SeLaVi draws them (sela.marginals=gauss_selavi): one draw of sizes per head for
the run, re-sorted to the current cluster masses at each update, kept across a resume; gauss_redraw (alias gauss)
draws afresh."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import hear_sela.objectives.label_update as label_update
from hear_sela.objectives.base import RunContext
from hear_sela.sinkhorn import soft_cluster_mass
from hear_sela.training.state import build_objective
from helpers.training import cpu_config, memory_cache


@pytest.fixture
def solves(monkeypatch):
    """The marginals and cluster masses each label update hands the solver, in order."""
    seen: list[dict[str, torch.Tensor]] = []
    solve = label_update.solve_labels

    def spy(**kw):
        seen.append({"marginals": kw["marginals"].clone()})
        return solve(**kw)

    monkeypatch.setattr(label_update, "solve_labels", spy)
    return seen


def _objective(tmp_path: Path, marginals: str):
    cache = memory_cache()
    cfg = cpu_config(tmp_path, **{"sela.marginals": marginals, "sela.gauss_sd": 0.3})
    cfg = dataclasses.replace(cfg, frontend=cache.frontend)
    objective = build_objective(cfg, len(cache), torch.device("cpu"))
    return objective, RunContext(cfg=cfg, device=torch.device("cpu"), features=cache.features)


def _perturb(objective, seed: int) -> None:
    """Another network state between updates, so the cluster masses reorder."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        objective.net.heads.weight.add_(torch.randn(objective.net.heads.weight.shape, generator=gen))


def _mass(objective, run) -> torch.Tensor:  # (H, K) the current soft cluster mass, as the update computes it
    from hear_sela.embed import embed_segments

    emb = embed_segments(objective.encoder, run.features, run.cfg.frontend, 8, run.device)
    return soft_cluster_mass(objective.net.heads.logit_chunks(emb))


def test_selavi_draw_keeps_its_sizes_across_updates_sorted_to_the_mass(tmp_path, solves):
    objective, run = _objective(tmp_path, "gauss_selavi")
    masses = []
    for i in range(3):
        masses.append(_mass(objective, run))
        objective.update_labels(run)
        _perturb(objective, i)
    m = [s["marginals"] for s in solves]
    for later in m[1:]:  # the same multiset of sizes per head at every update
        torch.testing.assert_close(later.sort(1).values, m[0].sort(1).values, rtol=1e-12, atol=0)  # sum order
    assert not torch.equal(m[0], m[1])  # ... assigned to other clusters as the masses moved
    for marg, mass in zip(m, masses):  # the heaviest cluster gets the largest size
        by_mass = marg.gather(1, mass.argsort(1))  # (H, K) targets from the lightest cluster to the heaviest
        assert (by_mass.diff(dim=1) >= 0).all()
    assert torch.allclose(m[0].sum(1), torch.ones(3, dtype=torch.float64))


def test_redraw_draws_new_sizes_and_the_old_name_is_the_redraw(tmp_path, solves):
    for name in ("gauss_redraw", "gauss", "gauss_selavi"):
        objective, run = _objective(tmp_path / name, name)
        for i in range(2):
            objective.update_labels(run)
            _perturb(objective, i)
    redraw, alias, selavi = solves[0:2], solves[2:4], solves[4:6]
    for a, b in zip(redraw, alias):
        assert torch.equal(a["marginals"], b["marginals"])
    assert not torch.equal(redraw[1]["marginals"].sort(1).values, redraw[0]["marginals"].sort(1).values)
    assert torch.equal(selavi[0]["marginals"], redraw[0]["marginals"])  # the first update: the same first draw


def test_resume_keeps_the_draw(tmp_path, solves):
    straight, run = _objective(tmp_path / "a", "gauss_selavi")
    straight.update_labels(run)
    _perturb(straight, 0)
    straight.update_labels(run)

    first, run = _objective(tmp_path / "b", "gauss_selavi")
    first.update_labels(run)
    state = {k: v for k, v in first.state_dict().items()}
    resumed, run = _objective(tmp_path / "b", "gauss_selavi")
    resumed.load_state_dict(state)
    resumed.net.load_state_dict(first.net.state_dict())
    _perturb(resumed, 0)
    resumed.update_labels(run)
    assert torch.equal(solves[3]["marginals"], solves[1]["marginals"])
    assert torch.equal(resumed.store.gauss_sizes, straight.store.gauss_sizes)
