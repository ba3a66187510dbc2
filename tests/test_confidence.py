"""Confidence weights after seed 003 (objectives/confidence.py): each term and the quantity on hand-made cases
(values derived by hand in the comments), and alpha = 0 reproducing the default run bitwise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hear_sela.config import ConfigError, load_config
from hear_sela.objectives.confidence import (
    agreement_term,
    check_terms,
    combined_confidence,
    size_term,
    update_terms,
    view_agreement,
)
from helpers.training import cpu_config, memory_cache


def test_size_term_by_hand():
    labels = torch.tensor([[0, 0, 0, 1, 1, 2]])
    # uniform targets 1/3; shares 1/2, 1/3, 1/6 -> 1 - (1/6)/(1/3) = 1/2, 1, 1 - (1/6)/(1/3) = 1/2
    got = size_term(labels, torch.full((3,), 1 / 3, dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor([[0.5, 0.5, 0.5, 1.0, 1.0, 0.5]]))
    # prior targets (1/2, 1/4, 1/4): cluster 0 exactly on target -> 1; 1/3 and 1/6 are 1/12 off 1/4 -> 2/3
    got = size_term(labels, torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor([[1.0, 1.0, 1.0, 2 / 3, 2 / 3, 2 / 3]]))
    # twice the target or more: 0, not negative
    torch.testing.assert_close(size_term(torch.tensor([[0, 0, 0, 1]]), torch.tensor([0.25, 0.75],
                                                                                      dtype=torch.float64)),
                               torch.tensor([[0.0, 0.0, 0.0, 1 - 0.5 / 0.75]]))


def test_agreement_term_by_hand():
    h0 = [0, 0, 1, 1]  # clusters {0,1}, {2,3}
    h1 = [4, 4, 4, 7]  # clusters {0,1,2}, {3}: other ids, only co-membership counts
    # segment 0, 1: n_ab = 2 of sizes 2 and 3 -> 2/sqrt(6); segment 2: 1/sqrt(6); segment 3: 1/sqrt(2 * 1)
    pair = torch.tensor([2 / math.sqrt(6), 2 / math.sqrt(6), 1 / math.sqrt(6), 1 / math.sqrt(2)])
    got = agreement_term(torch.tensor([h0, h1]))
    torch.testing.assert_close(got, torch.stack([pair, pair]))
    # a third head identical to head 0 agrees fully with it (1) and like head 0 with head 1: mean of the two
    got = agreement_term(torch.tensor([h0, h1, h0]))
    torch.testing.assert_close(got[0], (pair + 1) / 2)
    torch.testing.assert_close(got[1], pair)
    assert torch.equal(agreement_term(torch.tensor([h0])), torch.ones(1, 4))  # one head: nothing to disagree with


def test_view_agreement_is_the_share_of_views_choosing_the_label():
    labels = torch.tensor([[1, 2, 3]])  # (H, N)
    views = torch.tensor([[[1, 2, 0]], [[1, 0, 0]]])  # (V, H, N)
    torch.testing.assert_close(view_agreement(views, labels), torch.tensor([[1.0, 0.5, 0.0]]))


def test_quantity_by_hand():
    labels = torch.tensor([[0, 0, 0, 1, 1, 2]])
    posterior = torch.tensor([[1.0, 0.5, 1.0, 1.0, 0.8, 1.0]])
    uniform = torch.full((3,), 1 / 3, dtype=torch.float64)
    # size terms 0.5, 0.5, 0.5, 1, 1, 0.5 (test above); C = 0.5, 0.25, 0.5, 1, 0.8, 0.5; C^2 sums to 2.4525 over 6
    terms, stats = update_terms(["posterior", "size"], labels, posterior, uniform, alpha=2.0)
    assert stats["confidence_quantity"] == pytest.approx(2.4525 / 6)
    assert stats["confidence_size_mean"] == pytest.approx(4 / 6)
    assert set(terms) == {"size"}
    # the posterior alone at alpha 1: its mean, 5.3 / 6; at alpha 0 every weight is 1
    assert update_terms(["posterior"], labels, posterior, uniform, 1.0)[1]["confidence_quantity"] == \
        pytest.approx(5.3 / 6)
    assert update_terms(["posterior", "size", "agreement"], labels, posterior, uniform, 0.0)[1] == \
        {"confidence_quantity": 1.0, "confidence_size_mean": pytest.approx(4 / 6), "confidence_agreement_mean": 1.0}
    # without the posterior, C is the size term alone: 4 x 0.5^2 + 2 x 1 = 3 over 6
    assert update_terms(["size"], labels, posterior, uniform, 2.0)[1]["confidence_quantity"] == pytest.approx(0.5)


def test_combined_confidence_of_the_default_is_the_posterior_itself():
    post = torch.rand(2, 5)
    assert combined_confidence(["posterior"], post, {"size": torch.zeros(2, 9)}, torch.arange(5)) is post
    size = torch.rand(2, 9)
    idx = torch.tensor([8, 0, 3])
    torch.testing.assert_close(combined_confidence(["posterior", "size"], post[:, :3], {"size": size}, idx),
                               post[:, :3] * size[:, idx])
    torch.testing.assert_close(combined_confidence(["size"], post[:, :3], {"size": size}, idx), size[:, idx])
    # before the first update no term is computed yet: it counts as 1
    assert torch.equal(combined_confidence(["posterior", "agreement"], post, {}, idx), post)


def test_bad_terms_are_refused():
    with pytest.raises(ConfigError, match=r"sela.confidence\[1\] must be one of"):
        load_config(None, ["sela.confidence=[posterior, fit]"])
    with pytest.raises(ValueError, match="distinct"):
        check_terms(["size", "size"])


def _train(tmp_path: Path, name: str, **over) -> dict:
    """{"weights": encoder and heads, "store": the label store} of a short run."""
    from hear_sela.training.loop import train
    from hear_sela.training.state import read_checkpoint

    cfg = cpu_config(tmp_path / name, **{"train.epochs": 2, "sela.update_epochs": [0, 1, 2], **over})
    train(cfg, cache=memory_cache())
    objective = read_checkpoint(tmp_path / name / "final.pt").build_objective()
    return {"weights": objective.net.state_dict(), "store": objective.store}  # net: the encoder and the heads


def _log(tmp_path: Path, name: str) -> list[dict]:
    rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "labels"]


def test_alpha_zero_reproduces_the_default_run_bitwise_and_the_terms_matter_at_alpha_one(tmp_path: Path):
    terms = ["posterior", "size", "agreement"]
    base = _train(tmp_path, "default")
    zero = _train(tmp_path, "alpha0", **{"sela.confidence": terms})
    one = _train(tmp_path, "alpha1", **{"sela.confidence": terms, "sela.confidence_alpha": 1.0})
    post = _train(tmp_path, "post1", **{"sela.confidence_alpha": 1.0})
    for key, value in base["weights"].items():
        assert torch.equal(value, zero["weights"][key]), key
    assert torch.equal(base["store"].labels, zero["store"].labels)
    assert any(not torch.equal(v, one["weights"][k]) for k, v in base["weights"].items())
    assert any(not torch.equal(v, post["weights"][k]) for k, v in one["weights"].items())  # the extra terms count
    # the logged quantity of the last update is the mean of the stored terms' product (alpha 1)
    store = one["store"]
    product = store.confidences * store.terms["size"] * store.terms["agreement"]
    assert _log(tmp_path, "alpha1")[-1]["confidence_quantity"] == pytest.approx(float(product.double().mean()))
    assert all(r["confidence_quantity"] == 1.0 for r in _log(tmp_path, "alpha0"))
    assert 0 < _log(tmp_path, "post1")[-1]["confidence_quantity"] < 1
