"""SeLa pieces: heads, label store, loss and confidence weighting, update schedule, LR schedule."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from hear_sela.config import OptimConfig, SelaConfig
from hear_sela.objectives.heads import MultiHead
from hear_sela.objectives.label_store import LabelStore
from hear_sela.objectives.sela import label_update_steps, sela_loss
from hear_sela.training.schedules import lr_factor
from helpers.training import cpu_config, memory_cache


def test_multihead_equals_separate_linears_in_eval():
    torch.manual_seed(0)
    heads = MultiHead(dim=8, heads=3, clusters=5, dropout=0.5).eval()
    x = torch.randn(4, 8)
    out = heads(x)
    assert out.shape == (4, 3, 5)
    for h in range(3):
        torch.testing.assert_close(out[:, h], F.linear(x, heads.weight[h], heads.bias[h]))


def test_multihead_dropout_masks_differ_per_head():
    torch.manual_seed(0)
    heads = MultiHead(dim=64, heads=2, clusters=3, dropout=0.5).train()
    with torch.no_grad():
        heads.weight.copy_(torch.eye(3, 64).expand(2, 3, 64))  # each head reads the first 3 inputs
    out = heads(torch.ones(16, 64))
    assert not torch.equal(out[:, 0], out[:, 1])  # independent masks
    assert set(out.unique().tolist()) <= {0.0, 2.0}  # inverted dropout: 0 or 1 / (1 - p)


def test_initial_labels_are_shuffled_i_mod_k_per_head():
    store = LabelStore.initial(heads=3, n=103, clusters=10, seed=0)
    assert store.labels.shape == (3, 103) and store.labels.dtype == torch.int64
    for h in range(3):
        counts = torch.bincount(store.labels[h], minlength=10)
        assert counts.max() - counts.min() <= 1  # i % K: equal sizes
    assert not torch.equal(store.labels[0], store.labels[1])
    assert torch.equal(store.labels, LabelStore.initial(3, 103, 10, seed=0).labels)
    assert (store.confidences == 1).all()


def test_label_store_state_round_trip_and_shape_check():
    a = LabelStore.initial(2, 20, 4, seed=0)
    a.updates, a.duals = 3, {"log_r": torch.randn(2, 4)}
    b = LabelStore.initial(2, 20, 4, seed=1)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.labels, b.labels) and b.updates == 3 and torch.equal(a.duals["log_r"], b.duals["log_r"])
    with pytest.raises(ValueError, match="heads, segments"):
        LabelStore.initial(2, 21, 4, seed=0).load_state_dict(a.state_dict())


def test_loss_is_mean_over_heads_of_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, 5)  # (B, H, K)
    labels = torch.randint(0, 5, (3, 6))  # (H, B)
    expected = torch.stack([F.cross_entropy(logits[:, h], labels[h]) for h in range(3)]).mean()
    torch.testing.assert_close(sela_loss(logits, labels), expected)
    # alpha = 0 ignores confidences
    torch.testing.assert_close(sela_loss(logits, labels, torch.rand(3, 6), alpha=0.0), expected)


def test_confidence_weighting_reweights_samples_at_constant_scale():
    torch.manual_seed(0)
    logits = torch.randn(4, 2, 5)
    labels = torch.randint(0, 5, (2, 4))
    conf = torch.tensor([[1.0, 0.5, 0.25, 0.25], [0.9, 0.9, 0.9, 0.9]])
    alpha = 2.0
    ce = torch.stack([F.cross_entropy(logits[:, h], labels[h], reduction="none") for h in range(2)])  # (H, B)
    w = conf**alpha
    w = w / w.mean(dim=1, keepdim=True)  # batch-mean normalised per head
    expected = (ce * w).mean()
    got = sela_loss(logits, labels, conf, alpha)
    torch.testing.assert_close(got, expected)
    assert not torch.isclose(got, sela_loss(logits, labels))  # weighting changes head 0's loss
    # equal confidences in a head: that head's loss is unchanged (weights normalise to 1)
    torch.testing.assert_close(sela_loss(logits[:, 1:], labels[1:], conf[1:], alpha), sela_loss(logits[:, 1:],
                                                                                               labels[1:]))
    # uniform weights give exactly the plain loss: the scale is comparable across alpha
    torch.testing.assert_close(sela_loss(logits, labels, torch.full((2, 4), 0.3), 3.0), sela_loss(logits, labels))


def test_audio_sela_schedule_has_25_updates_the_first_before_training():
    cfg = SelaConfig()
    steps = label_update_steps(cfg, epochs=200, steps_per_epoch=100, n_segments=51200, global_batch=512)
    assert len(steps) == 25
    assert steps[0] == 0
    # the audio SeLa code's 1-based epochs 1,2,3,4, 6..56/5, 61..111/10, 121..181/20 = our 0-based epoch starts
    epochs_1based = [1, 2, 3, 4, *range(6, 57, 5), *range(61, 112, 10), *range(121, 182, 20)]
    assert steps == [(e - 1) * 100 for e in epochs_1based]
    # a shorter run keeps only the updates that fall inside it, plus one after its last step if listed
    assert label_update_steps(cfg, epochs=4, steps_per_epoch=10, n_segments=100, global_batch=10) == [0, 10, 20, 30]
    assert label_update_steps(cfg, epochs=5, steps_per_epoch=10, n_segments=100, global_batch=10) == [0, 10, 20, 30,
                                                                                                      50]


def test_quadratic_schedule_is_seLa_spacing_from_step_zero():
    cfg = dataclasses.replace(SelaConfig(), schedule="quadratic", n_updates=20)
    n, gb, epochs, spe = 10000, 100, 40, 100
    steps = label_update_steps(cfg, epochs, spe, n, gb)
    assert steps[0] == 0
    assert steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[-1] > 5 * gaps[1]  # dense early, sparse late
    # SeLa: update k at samples (epochs + 1.01) N (k / (n - 1))**2; the last ones fall after the run and are dropped
    for k, s in enumerate(steps):
        t = (epochs + 1.01) * n * (k / 19) ** 2
        assert s >= t / gb and (s - 1) * gb < t or s == steps[k - 1] + 1
    assert len(steps) == 19  # the 20th time (41.01 epochs) lies past 40 epochs


def test_bad_schedule_names_the_key():
    with pytest.raises(ValueError, match="sela.schedule"):
        label_update_steps(dataclasses.replace(SelaConfig(), schedule="cubic"), 1, 1, 1, 1)
    with pytest.raises(ValueError, match="optim.schedule"):
        lr_factor(dataclasses.replace(OptimConfig(), schedule="poly"), 0, 10, 1)


def test_lr_schedules():
    step = OptimConfig()  # audio SeLa: StepLR(5, 0.98) per epoch
    assert lr_factor(step, 0, 10, 200) == 1.0
    assert lr_factor(step, 49, 10, 200) == 1.0
    assert lr_factor(step, 50, 10, 200) == pytest.approx(0.98)
    assert lr_factor(step, 100, 10, 200) == pytest.approx(0.98**2)
    cos = dataclasses.replace(step, schedule="cosine", warmup_epochs=1)
    assert lr_factor(cos, 0, 10, 11) == pytest.approx(0.1)  # linear warm-up
    assert lr_factor(cos, 10, 10, 11) == pytest.approx(1.0)
    assert lr_factor(cos, 60, 10, 11) == pytest.approx(0.5)
    assert lr_factor(cos, 110, 10, 11) == pytest.approx(0.0, abs=1e-9)
    assert lr_factor(dataclasses.replace(step, schedule="constant"), 999, 10, 2) == 1.0


def test_heads_on_a_projector_give_the_same_logits_every_way():
    """With sela.projector the heads read the projector's output: forward (eval), the chunked logits, and the
    matrix-free path (project_all, then the heads on the projected rows) agree; without it nothing is projected."""
    torch.manual_seed(0)
    heads = MultiHead(dim=12, heads=3, clusters=5, dropout=0.5, projector=(16, 6)).eval()
    emb = torch.randn(40, 12)
    direct = heads(emb).permute(1, 0, 2)  # (H, N, K)
    torch.testing.assert_close(heads.logits(emb, chunk=7), direct)
    projected = heads.project_all(emb, chunk=9)
    assert projected.shape == (40, 6)
    chunks = torch.cat(list(heads.logit_chunks(projected, chunk=11, projected=True)), dim=1)
    torch.testing.assert_close(chunks, direct)
    plain = MultiHead(dim=12, heads=3, clusters=5)
    assert plain.project_all(emb) is emb and plain.weight.shape == (3, 5, 12)
    assert heads.weight.shape == (3, 5, 6)


def test_a_projector_run_trains_and_its_label_update_matches_the_matrix_free_solve(tmp_path, monkeypatch):
    """A run with sela.projector trains end to end; forcing the label update's matrix-free path (a zero logits
    budget) gives the labels of the stored-logits path."""
    import dataclasses

    import hear_sela.objectives.label_update as lu
    from hear_sela.objectives.base import RunContext
    from hear_sela.training.state import build_objective

    cache = memory_cache()
    cfg = dataclasses.replace(cpu_config(tmp_path, "sela", **{"sela.projector": [16, 8]}), frontend=cache.frontend)
    run = RunContext(cfg=cfg, device=torch.device("cpu"), features=cache.features)
    stored = build_objective(cfg, len(cache.features), torch.device("cpu"))
    assert stored.net.heads.weight.shape[-1] == 8
    stored.update_labels(run)
    monkeypatch.setattr(lu, "LOGITS_BUDGET_BYTES", 0)
    free = build_objective(cfg, len(cache.features), torch.device("cpu"))
    free.update_labels(run)
    assert torch.equal(stored.store.labels, free.store.labels)
