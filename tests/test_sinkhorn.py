"""hear_sela.sinkhorn against SeLa's float64 loop (tests/sinkhorn_reference.py), on CPU, small sizes."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from sinkhorn_reference import plan_marginals, sela_reference, sela_reference_log

from hear_sela import distributed
from hear_sela.sinkhorn import gaussian_marginals, soft_cluster_mass, solve_labels, uniform_marginals


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # At these sizes each op is microseconds; OpenMP fork/join across busy cores costs more than it saves.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def realistic(heads: int, n: int, k: int, *, d: int = 64, centres: int = 20, scale: float = 2.5,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """gpu_anchors.md's "realistic logits", scaled down: clips = 0.6·centre + 0.8·noise, logits = scale·F Wᵀ/√D.

    Returns features (N, D) and head weights (H, K, D) with the scale folded in.
    """
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(centres, d, generator=g)
    feats = 0.6 * centre[torch.randint(0, centres, (n,), generator=g)] + 0.8 * torch.randn(n, d, generator=g)
    weights = torch.randn(heads, k, d, generator=g) * (scale / d**0.5)
    return feats, weights


def logits_of(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """# (N, D), (H, K, D) -> (H, N, K), the same bmm the matrix-free path runs"""
    return torch.bmm(feats.expand(weights.shape[0], -1, -1), weights.transpose(1, 2))


def agreement(a, b) -> float:
    return float((np.asarray(a) == np.asarray(b)).mean())


@pytest.fixture(scope="module")
def structured():
    feats, weights = realistic(2, 4000, 50)
    return logits_of(feats, weights)


@pytest.mark.parametrize("kind", ["random", "structured"])
def test_plain_iterates_match_float64_sela(kind, structured):
    random = torch.randn(2, 3000, 30, generator=torch.Generator().manual_seed(1))
    logits = structured if kind == "structured" else random
    ref = sela_reference(logits)
    res = solve_labels(logits, overrelax=1.0)
    assert res.converged.all()
    assert res.iterations.tolist() == ref.iterations.tolist()  # the same iterate sequence, in float32
    np.testing.assert_allclose(res.error.numpy(), ref.error, rtol=1e-2)
    assert agreement(res.labels, ref.labels) >= 0.999
    np.testing.assert_allclose(res.confidences.numpy(), ref.confidences, atol=1e-4)


def test_overrelaxed_agrees_with_float64_in_far_fewer_iterations(structured):
    ref = sela_reference(structured)
    res = solve_labels(structured)
    assert res.converged.all()
    assert agreement(res.labels, ref.labels) >= 0.999
    assert (res.iterations.numpy() * 2 <= ref.iterations).all(), (res.iterations, ref.iterations)


@pytest.mark.parametrize("prior", ["uniform", "per-head"])
def test_marginals_of_q_match_targets(prior, structured):
    h, n, k = structured.shape
    if prior == "uniform":
        target = uniform_marginals(h, k)
    else:
        target = torch.rand(h, k, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.5
        target /= target.sum(1, keepdim=True)
    res = solve_labels(structured, marginals=None if prior == "uniform" else target)
    rows, cols = plan_marginals(structured, res.duals.log_r, 25.0)
    np.testing.assert_allclose(rows.numpy(), 1.0 / n, rtol=1e-9)
    np.testing.assert_allclose(cols.numpy(), target.numpy(), rtol=2e-3)


def test_nonuniform_prior_sets_cluster_sizes():
    feats, weights = realistic(1, 6000, 12, seed=3)
    prior = torch.tensor([2.0**-(i / 3) for i in range(12)], dtype=torch.float64)  # sizes spread 13x
    prior /= prior.sum()
    res = solve_labels(logits_of(feats, weights), marginals=prior)
    sizes = torch.bincount(res.labels[0], minlength=12).double() / 6000
    assert res.converged.all()
    np.testing.assert_allclose(sizes.numpy(), prior.numpy(), rtol=0.1)


def test_peaked_logits_and_dead_clusters_stay_finite():
    logits = torch.randn(2, 3000, 30, generator=torch.Generator().manual_seed(4)) * 50
    logits[:, :, 3] -= 1e4  # no sample favours cluster 3 (its p^λ is 0 even in float64)
    logits[1, :, 7] -= 1e6
    res = solve_labels(logits, max_iters=300)
    for t in (res.confidences, res.duals.log_r, res.error):
        assert torch.isfinite(t).all()
    assert ((res.labels >= 0) & (res.labels < 30)).all()
    assert ((res.confidences > 0) & (res.confidences <= 1)).all()
    # Near-permutation kernels fill a dead cluster a few samples per ten iterations (float64 does the same): at 300
    # iterations the dead ones have started to fill and the live ones are balanced.
    sizes = torch.stack([torch.bincount(lab, minlength=30) for lab in res.labels])
    assert (sizes[:, 3] > 0).all() and sizes[1, 7] > 0
    _, cols = plan_marginals(logits, res.duals.log_r, 25.0)
    live = torch.ones(2, 30, dtype=torch.bool)
    live[:, 3] = live[1, 7] = False
    assert ((cols * 30)[live] - 1).abs().max() < 0.2


@pytest.mark.parametrize("n, k", [(1500, 2000), (400, 10_000)])
def test_lambda_100_many_clusters_stays_finite(n, k):
    logits = torch.randn(1, n, k, generator=torch.Generator().manual_seed(5)) * 3
    res = solve_labels(logits, lamb=100.0, max_iters=100)
    for t in (res.confidences, res.duals.log_r, res.error):
        assert torch.isfinite(t).all()
    assert ((res.labels >= 0) & (res.labels < k)).all()
    _, cols = plan_marginals(logits, res.duals.log_r, 100.0)
    assert (cols * k).sub(1).abs().max() < 0.5  # far from converged at 100 iterations, but balanced


def _assert_same_solution(res, ref, logits: torch.Tensor, lamb: float) -> None:
    """The solver's duals against the float64 log-domain reference's: what defines the assignment.

    Duals are compared to float32's resolution of the largest one (the solver's r~ runs in float32; a dead
    cluster's log r is ~λ·1e6 here); the plan's cluster sums, which a wrong column normalisation moves first, to
    0.1 % of their target 1/K (observed: < 1e-4).
    """
    k = logits.shape[2]
    scale = ref.log_r.abs().amax(1)  # (H,)
    gap = (res.duals.log_r - ref.log_r).abs().amax(1)
    assert (gap <= 4 * torch.finfo(torch.float32).eps * scale).all(), (gap, scale)
    _, cols = plan_marginals(logits, res.duals.log_r, lamb)
    _, ref_cols = plan_marginals(logits, ref.log_r, lamb)
    assert ((cols - ref_cols).abs() * k).max() < 1e-3


def test_peaked_logits_and_dead_clusters_follow_the_log_domain_reference():
    """P^λ underflows float64 here (cluster 3's entries are e^-2.5e5), so SeLa's loop divides by zero; the
    log-domain loop runs the same iterates. Plain SK for 100 iterations: the same iterate sequence."""
    logits = torch.randn(2, 1000, 30, generator=torch.Generator().manual_seed(4)) * 50
    logits[:, :, 3] -= 1e4
    logits[1, :, 7] -= 1e6
    ref = sela_reference_log(logits, max_iters=100)
    res = solve_labels(logits, max_iters=100, overrelax=1.0)
    assert res.iterations.tolist() == ref.iterations.tolist() == [100, 100]
    np.testing.assert_allclose(res.error.numpy(), ref.error, rtol=1e-3)
    assert agreement(res.labels, ref.labels) >= 0.999
    _assert_same_solution(res, ref, logits, 25.0)


def test_lambda_100_converges_to_the_log_domain_reference():
    logits = torch.randn(1, 1000, 20, generator=torch.Generator().manual_seed(5)) * 3
    ref = sela_reference_log(logits, lamb=100.0)  # ~2200 plain iterations
    res = solve_labels(logits, lamb=100.0)  # over-relaxed: another iterate sequence, the same fixed point
    assert ref.error.item() <= 0.1 and res.converged.all()
    assert agreement(res.labels, ref.labels) >= 0.999
    # Both stop at tol 0.1, not at the fixed point: the duals differ by up to ~1 of ~36, the plan's cluster sums by
    # < 0.05 % of 1/K (observed).
    _, cols = plan_marginals(logits, res.duals.log_r, 100.0)
    _, ref_cols = plan_marginals(logits, ref.log_r, 100.0)
    assert ((cols - ref_cols).abs() * 20).max() < 2e-3


def test_lambda_100_more_clusters_than_samples_follows_the_log_domain_reference():
    """N < K: each sample's mass is split over ~K/N clusters whose Q entries tie at the fixed point (the reference's
    own top-two gaps are 0 to 1e-12), so labels are a rounding choice; duals, plan and confidences are not."""
    logits = torch.randn(1, 100, 1000, generator=torch.Generator().manual_seed(5)) * 3
    ref = sela_reference_log(logits, lamb=100.0, max_iters=50)
    res = solve_labels(logits, lamb=100.0, max_iters=50, overrelax=1.0)
    assert res.iterations.tolist() == ref.iterations.tolist() == [50]
    np.testing.assert_allclose(res.error.numpy(), ref.error, rtol=1e-3)
    np.testing.assert_allclose(res.confidences.numpy(), ref.confidences, atol=1e-5)
    _assert_same_solution(res, ref, logits, 100.0)


def test_negative_infinite_logits_are_never_chosen(structured):
    logits = structured.clone()
    logits[:, ::2, 0] = -torch.inf  # even samples may not take cluster 0
    res = solve_labels(logits)
    assert torch.isfinite(res.confidences).all()
    assert not (res.labels[:, ::2] == 0).any()
    assert (res.labels[:, 1::2] == 0).any()


@pytest.mark.parametrize("kernel", ["sparse", "dense"])
def test_matrix_free_equals_stored(kernel):
    feats, weights = realistic(2, 3000, 40, seed=6)
    bias = torch.randn(2, 40, generator=torch.Generator().manual_seed(7)) * 0.1
    stored = solve_labels(logits_of(feats, weights) + bias[:, None], kernel=kernel)
    free = solve_labels(features=feats, weights=weights, bias=bias, kernel=kernel)
    assert free.kernel == ("sparse" if kernel == "sparse" else "recompute")
    assert free.iterations.tolist() == stored.iterations.tolist()
    assert agreement(free.labels, stored.labels) >= 0.9995
    torch.testing.assert_close(free.duals.log_r, stored.duals.log_r, atol=1e-3, rtol=0)


@pytest.mark.parametrize("kernel", ["sparse", "dense"])
def test_labels_are_the_argmax_of_q_for_the_returned_duals(kernel, structured):
    res = solve_labels(structured, kernel=kernel)
    log_q = torch.log_softmax(structured.double(), -1) * 25.0 + res.duals.log_r.unsqueeze(1)  # log r_k P_ki + const
    assert agreement(res.labels, log_q.argmax(-1)) >= 0.9999
    np.testing.assert_allclose(res.confidences.numpy(), torch.softmax(log_q, -1).amax(-1).numpy(), atol=1e-5)


def test_kernels_and_chunking_agree(structured):
    base = solve_labels(structured, kernel="sparse")
    assert base.kernel == "sparse" and base.density < 0.2
    for kw in ({"kernel": "dense"}, {"kernel": "sparse", "chunk_size": 97}, {"kernel": "dense", "chunk_size": 97}):
        other = solve_labels(structured, **kw)
        assert agreement(other.labels, base.labels) >= 0.999, kw
        assert (other.iterations - base.iterations).abs().max() <= 10, kw


@pytest.mark.parametrize("kernel", ["sparse", "dense"])
def test_heads_batched_equal_heads_alone(kernel):
    # Different sharpness: the heads converge at different checks, exercising per-head retirement.
    feats, weights = realistic(3, 3000, 30, seed=8)
    weights = weights * torch.tensor([0.4, 1.0, 1.6])[:, None, None]
    logits = logits_of(feats, weights)
    batched = solve_labels(logits, kernel=kernel, overrelax=1.0)
    assert len(set(batched.iterations.tolist())) > 1
    for h in range(3):
        alone = solve_labels(logits[h:h + 1], kernel=kernel, overrelax=1.0)
        assert alone.iterations.item() == batched.iterations[h].item()
        assert agreement(alone.labels[0], batched.labels[h]) >= 0.999


@pytest.mark.parametrize("overrelax", ["auto", 1.0])
def test_warm_start_same_labels_fewer_iterations(overrelax):
    feats, weights = realistic(2, 5000, 50)
    before = solve_labels(logits_of(feats, weights), overrelax=overrelax)
    # A label update's worth of change: the heads move, ~10 % of the labels change.
    moved = weights + 0.1 * weights.std() * torch.randn(weights.shape, generator=torch.Generator().manual_seed(5))
    after = logits_of(feats, moved)
    cold = solve_labels(after, overrelax=overrelax)
    warm = solve_labels(after, overrelax=overrelax, warm_start=before.duals)
    assert 0.05 < 1 - agreement(cold.labels, before.labels) < 0.2
    assert warm.converged.all()
    assert agreement(warm.labels, cold.labels) >= 0.999
    assert (warm.iterations < cold.iterations).all()
    if overrelax == "auto":  # at least 3x fewer iterations than SeLa's plain (unrelaxed) cold start
        plain_cold = solve_labels(after, overrelax=1.0)
        assert (warm.iterations * 3 <= plain_cold.iterations).all(), (warm.iterations, plain_cold.iterations)


def test_float64_meets_the_audio_sela_tolerance():
    feats, weights = realistic(1, 2000, 20, seed=9)
    logits = logits_of(feats, weights)
    ref = sela_reference(logits, tol=1e-4)
    res = solve_labels(logits, tol=1e-4, dtype=torch.float64, overrelax=1.0)
    assert res.converged.all() and res.error.item() <= 1e-4
    assert res.iterations.tolist() == ref.iterations.tolist()
    assert agreement(res.labels, ref.labels) == 1.0


def test_iteration_cap_reports_not_converged(structured):
    res = solve_labels(structured, max_iters=7)
    assert res.iterations.tolist() == [7, 7]
    assert not res.converged.any()
    assert torch.isfinite(res.error).all() and (res.error > 0.1).all()


def test_gaussian_marginals_sorted_to_cluster_mass():
    mass = torch.rand(3, 40, generator=torch.Generator().manual_seed(10))
    a = gaussian_marginals(mass, n_total=4000, sd=0.1, generator=torch.Generator().manual_seed(11))
    b = gaussian_marginals(mass, n_total=4000, sd=0.1, generator=torch.Generator().manual_seed(11))
    assert a.shape == (3, 40) and torch.equal(a, b)
    torch.testing.assert_close(a.sum(1), torch.ones(3, dtype=torch.float64))
    # r ∝ sizes (not SeLaVi's 1/sizes): the heaviest cluster gets the largest target, the order is the mass order.
    assert torch.equal(torch.argsort(a, dim=1), torch.argsort(mass, dim=1))
    assert 0.02 < (a * 40).std().item() < 0.2
    torch.testing.assert_close(gaussian_marginals(mass, 4000, sd=0.0), uniform_marginals(3, 40))


def test_soft_cluster_mass(structured):
    torch.testing.assert_close(soft_cluster_mass(structured, chunk_size=333),
                               torch.softmax(structured.double(), -1).sum(1))


def test_rejects_bad_input(structured):
    bad = structured.clone()
    bad[0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        solve_labels(bad)
    with pytest.raises(ValueError, match="marginals"):
        solve_labels(structured, marginals=torch.ones(7))
    with pytest.raises(ValueError, match="marginals"):
        solve_labels(structured, marginals=torch.zeros(50))
    with pytest.raises(ValueError, match="overrelax"):
        solve_labels(structured, overrelax=2.5)
    with pytest.raises(ValueError, match="either"):
        solve_labels(structured, features=torch.zeros(4000, 8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    feats, weights = realistic(3, 5000, 60, seed=13)
    logits = logits_of(feats, weights)
    for kw in ({"kernel": "sparse"}, {"kernel": "dense"}, {"overrelax": 1.0}):
        cpu = solve_labels(logits, **kw)
        gpu = solve_labels(logits.cuda(), **kw)
        assert gpu.labels.is_cuda and gpu.iterations.tolist() == cpu.iterations.tolist(), kw
        assert agreement(gpu.labels.cpu(), cpu.labels) >= 0.999, kw
        hosted = solve_labels(logits, device="cuda", **kw)  # logits stay on the host, chunks are copied
        assert agreement(hosted.labels.cpu(), cpu.labels) >= 0.999, kw
    free = solve_labels(features=feats.cuda(), weights=weights.cuda())
    warm = solve_labels(logits.cuda(), warm_start=free.duals)
    assert agreement(free.labels.cpu(), cpu.labels) >= 0.999 and warm.converged.all()


# ---------------------------------------------------------------------------------------------------------------
# Two gloo ranks, each holding half the rows, against one process.

_DIST_CASES = {
    "sparse": {"kernel": "sparse"},
    "dense": {"kernel": "dense"},
    "plain": {"overrelax": 1.0},
}


def _dist_problem():
    feats, weights = realistic(2, 3001, 40, seed=12)  # odd N: the shards differ in size
    return feats, weights, logits_of(feats, weights)


def _run_cases(feats, weights, logits, rows: slice) -> dict[str, dict]:
    out = {}
    for name, kw in _DIST_CASES.items():
        res = solve_labels(logits[:, rows], **kw)
        out[name] = {"labels": distributed.all_gather_cat(res.labels, dim=1), "iterations": res.iterations,
                     "log_r": res.duals.log_r}
    free = solve_labels(features=feats[rows], weights=weights)
    out["matrix-free"] = {"labels": distributed.all_gather_cat(free.labels, dim=1), "iterations": free.iterations,
                          "log_r": free.duals.log_r}
    warm = solve_labels(logits[:, rows] * 1.05, warm_start=free.duals)
    out["warm"] = {"labels": distributed.all_gather_cat(warm.labels, dim=1), "iterations": warm.iterations,
                   "log_r": warm.duals.log_r}
    return out


def _dist_worker(rank: int, world: int, port: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        feats, weights, logits = _dist_problem()
        start, stop = distributed.shard_range(logits.shape[1])
        out = _run_cases(feats, weights, logits, slice(start, stop))
        if rank == 0:
            torch.save(out, path)
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
@pytest.mark.integration
def test_two_gloo_ranks_equal_one_process(tmp_path):
    path = str(tmp_path / "rank0.pt")
    mp.spawn(_dist_worker, args=(2, _free_port(), path), nprocs=2, join=True)
    sharded = torch.load(path)
    feats, weights, logits = _dist_problem()
    single = _run_cases(feats, weights, logits, slice(None))
    for name, one in single.items():
        two = sharded[name]
        assert two["labels"].shape == one["labels"].shape, name
        assert two["iterations"].tolist() == one["iterations"].tolist(), name
        assert agreement(two["labels"], one["labels"]) >= 0.9995, name
        torch.testing.assert_close(two["log_r"], one["log_r"], atol=1e-3, rtol=0, msg=name)


# ---------------------------------------------------------------------------------------------------------------
# Float32 at realistic N, infeasible problems, the solver dtype rule.


@pytest.mark.parametrize("path", ["dense", "matrix-free"])
def test_float32_reaches_tol_at_50k_on_flat_logits(path):
    """A first label update (fresh heads: flat logits) at N = 50k: float32 column sums accumulated over all rows
    in float32 left the error at ~1 after 150 iterations where float64 converges in ~11."""
    g = torch.Generator().manual_seed(14)
    feats, weights = torch.randn(50_000, 64, generator=g), torch.randn(1, 100, 64, generator=g) * 0.0125
    kw = ({"logits": logits_of(feats, weights)} if path == "dense" else {"features": feats, "weights": weights})
    f64 = solve_labels(**kw, kernel="dense", dtype=torch.float64)
    f32 = solve_labels(**kw, kernel="dense", max_iters=60)
    assert f64.converged.all() and f32.kernel == ("dense" if path == "dense" else "recompute")
    assert f32.converged.all(), f32.error
    assert (f32.iterations - f64.iterations).abs().max() <= 10
    assert agreement(f32.labels, f64.labels) >= 0.999


def test_infeasible_cluster_is_refused_up_front(structured):
    logits = structured.clone()
    logits[1, :, 3] = -torch.inf  # no sample of head 1 may take cluster 3, yet its target is 1/K
    with pytest.raises(ValueError, match=r"infeasible.*head 1: cluster\(s\) \[3\]"):
        solve_labels(logits, max_iters=50)
    feats, weights = realistic(2, 500, 10, seed=15)
    bias = torch.zeros(2, 10)
    bias[0, 7] = -torch.inf
    with pytest.raises(ValueError, match=r"infeasible.*head 0: cluster\(s\) \[7\]"):
        solve_labels(features=feats, weights=weights, bias=bias, max_iters=50)


def test_auto_solver_dtype_follows_the_float32_floor():
    from hear_sela.config import SelaConfig
    from hear_sela.objectives.label_update import solver_dtype
    from hear_sela.sinkhorn import float32_error_floor

    assert solver_dtype(SelaConfig(tol=0.1), 100_000) == torch.float32  # SeLa's tol at 100k segments
    assert solver_dtype(SelaConfig(tol=1e-4), 40_000) == torch.float64  # the audio SeLa code's tol
    assert solver_dtype(SelaConfig(tol=0.1), 200_000) == torch.float64
    assert solver_dtype(SelaConfig(tol=1e-4, solver_dtype="float32"), 40_000) == torch.float32
    # What the rule promises: float32 reaches the smallest tolerance it is chosen for.
    from hear_sela.objectives.label_update import FLOAT32_TOL_MARGIN

    feats, weights = realistic(1, 20_000, 50, seed=16)
    tol = FLOAT32_TOL_MARGIN * float32_error_floor(20_000)
    res = solve_labels(logits_of(feats, weights), kernel="dense", tol=tol, max_iters=400)
    assert res.converged.all(), (res.error, tol)
