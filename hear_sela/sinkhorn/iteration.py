"""The solve: input checks, the scaling iteration with its stopping rule, over-relaxation and rebuilds, and its
result types.

Legend: H heads, N_r samples on this rank, K clusters.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from hear_sela import distributed
from hear_sela.sinkhorn.kernels import _build_kernel, _Built, _column_logsumexp, _labels, _SparseStore
from hear_sela.sinkhorn.marginals import _target_marginals
from hear_sela.sinkhorn.sources import KernelKind, _FeatureSource, _LogitSource

# The iteration's constants.
_LOG_GUARD = 40.0  # scaling factors beyond e^±40 are absorbed before products of them can leave float32's range
# Sparse kernel: entries below e^-50 of their row's mass are dropped. Lower ε keeps more entries (1.0 % instead of
# 0.7 % at e^-40 on realistic logits) but lets the duals drift further before a rebuild (each costs ~500 sweeps).
_LOG_EPS = -50.0
_CHUNK_BYTES = {"cuda": 256 << 20, "cpu": 16 << 20}  # one (H, chunk, K) block; CPU: stay in the last-level cache
_OMEGA_MAX = 1.8  # ω = 1.9 diverges on realistic logits; the estimate gives ~1.7 there


@dataclass
class Duals:
    """Cluster log-duals u = log r of a solve in the solver's gauge; the next solve's warm start.

    The sample duals follow from them (one exact c-update), so (H, K) numbers are the whole state.
    """

    log_r: Tensor  # (H, K) float64, defined up to a constant per head
    lamb: float
    omega: Tensor | None = None  # (H,) over-relaxation each head ended with; reused by an adaptive warm start


@dataclass
class SinkhornResult:
    labels: Tensor  # (H, N_r) int64, this rank's samples
    confidences: Tensor  # (H, N_r) float32: Q's posterior of the chosen cluster
    duals: Duals
    iterations: Tensor  # (H,) int64, SeLa's count (r- and c-update pairs)
    error: Tensor  # (H,) float64, the last checked Σ|c/c' − 1| over all ranks' samples
    converged: Tensor  # (H,) bool
    seconds: float
    rebuilds: int  # kernel (re)builds, each one exact log-domain iteration
    kernel: str  # "sparse" | "dense" | "recompute", as used by the last build
    density: float  # kept fraction of the kernel in the last build (this rank)
    passes: int  # full passes over the logits (for features: GEMMs over all rows), labels pass included


def float32_error_floor(n_total: int) -> float:
    """Where SeLa's error Σ_i |c_i/c'_i − 1| settles in float32 for N = n_total samples (all ranks), worst kernel:
    ~4·N·eps (measured with column sums accumulated in float64 per block, realistic logits, K = 100, after 151
    iterations at tol 0: dense kernel 0.050 at N = 100k, sparse 0.0028). The one place for this fact: the solver's
    warning and the label update's auto dtype rule use it."""
    return 4.0 * n_total * torch.finfo(torch.float32).eps


def _check_finite(*tensors: Tensor | None, device: torch.device, chunk: int = 1 << 24) -> None:
    """Reject NaN and +inf (−inf logits are allowed: a cluster a sample can never take). Agreed across ranks so
    that no rank raises while the others wait in a collective."""
    bad = False
    for x in tensors:
        if x is None:
            continue
        # Slices of a flat view, or per leading index when flattening would copy the whole tensor.
        parts = x.view(-1).split(chunk) if x.is_contiguous() else x.unbind(0)
        for part in parts:
            bad = bad or bool((torch.isnan(part) | (part == math.inf)).any())
    flag = distributed.all_reduce(torch.tensor([float(bad)], device=device), "max")
    if flag.item() > 0:
        raise ValueError("solve_labels: inputs contain NaN or +inf")


def _check_feasible(logits: Tensor | None, bias: Tensor | None, heads: int, clusters: int, device: torch.device,
                    chunk: int) -> None:
    """Reject clusters whose logits are −inf for every sample of all ranks: no sample can take their target mass, so
    the problem has no solution and the iteration would drive their duals to infinity. logits: (H, N_r, K), or for
    features only the bias (H, K) can make a logit −inf. Agreed across ranks."""
    col_max = torch.full((heads, clusters), -math.inf, device=device)
    if logits is not None:
        for start in range(0, logits.shape[1], chunk):
            col_max = torch.maximum(col_max, logits[:, start:start + chunk].amax(1).to(device, torch.float32))
    elif bias is None:
        return
    else:
        col_max = torch.where(bias.to(device) == -math.inf, -math.inf, 0.0)
    dead = distributed.all_reduce(col_max, "max") == -math.inf
    if bool(dead.any()):
        where = "; ".join(f"head {h}: cluster(s) {dead[h].nonzero().flatten().tolist()}"
                          for h in range(heads) if bool(dead[h].any()))
        raise ValueError(f"solve_labels: infeasible problem, logits are -inf for every sample in {where}; no sample "
                         "can take those clusters' target mass (give each cluster a finite logit somewhere)")


@contextlib.contextmanager
def _matmul_precision(precision: str):
    """Full-fp32 GEMMs by default: TF32 logits err by ~1e-3, i.e. by e^(λ·1e-3·|L|) in the kernel."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


@torch.no_grad()
def solve_labels(logits: Tensor | None = None, *, features: Tensor | None = None, weights: Tensor | None = None,
                 bias: Tensor | None = None, lamb: float = 25.0, marginals: Tensor | None = None, tol: float = 0.1,
                 check_every: int = 10, max_iters: int = 2000, warm_start: Duals | None = None,
                 kernel: KernelKind = "auto", chunk_size: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 overrelax: float | Literal["auto"] = "auto", matmul_precision: str = "highest") -> SinkhornResult:
    """Solve SeLa's label assignment for all heads at once; see the module docstring.

    logits: (H, N_r, K) this rank's rows (any float dtype, any device), or, matrix-free,
    features (N_r, D) + weights (H, K, D) + bias (H, K) | None, with logits = features · weightsᵀ + bias.
    marginals: cluster targets, None (uniform) | (K,) | (H, K), normalised here.
    tol / check_every / max_iters: SeLa's rule err = Σ_i |c_i/c'_i − 1| ≤ tol, tested when (t − 1) % check_every
    == 0 and at t = max_iters. Heads stop independently. In float32 err has a noise floor of about N·5e-7
    (`float32_error_floor`, N = all ranks' rows; measured): use dtype=torch.float64 for tolerances near it (e.g.
    the audio SeLa 1e-4).
    warm_start: duals of the previous solve (same H, K). kernel: "auto" (sparse unless dense is cheaper),
    "sparse", or "dense" (stored G for logits, G recomputed per chunk for features).
    chunk_size: rows per streamed block (default: ~16 MiB of (H, rows, K) on CPU, 256 MiB on CUDA).
    device: where to compute (default: the input's device).
    overrelax: ω of over-relaxed Sinkhorn (same fixed point, ~5x fewer iterations on realistic logits): "auto"
    estimates it per head from the first checks' contraction (and reuses a warm start's), 1.0 runs SeLa's exact
    iterate sequence (same iteration counts as the float64 loop).
    matmul_precision: torch float32 matmul precision for the features path ("highest" = true fp32).
    """
    t0 = time.perf_counter()
    if (logits is None) == (features is None):
        raise ValueError("pass either logits (H, N, K) or features (N, D) with weights (H, K, D)")
    if overrelax != "auto" and not 0.0 < float(overrelax) < 2.0:
        raise ValueError(f"overrelax must be 'auto' or in (0, 2), got {overrelax}")
    if lamb <= 0 or tol < 0 or check_every < 1 or max_iters < 1:
        raise ValueError(f"need lamb > 0, tol >= 0, check_every >= 1, max_iters >= 1; got {lamb}, {tol}, "
                         f"{check_every}, {max_iters}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if logits is not None:
        if logits.dim() != 3:
            raise ValueError(f"logits must be (H, N, K), got {tuple(logits.shape)}")
        dev = torch.device(device) if device is not None else logits.device
        source: _LogitSource | _FeatureSource = _LogitSource(logits, dev, dtype)
    else:
        if weights is None or features.dim() != 2 or weights.dim() != 3 or weights.shape[2] != features.shape[1]:
            raise ValueError("features must be (N, D) and weights (H, K, D)")
        if bias is not None and bias.shape != weights.shape[:2]:
            raise ValueError(f"bias must be (H, K) = {tuple(weights.shape[:2])}, got {tuple(bias.shape)}")
        dev = torch.device(device) if device is not None else features.device
        source = _FeatureSource(features, weights, bias, dev, dtype)
    _check_finite(logits if logits is not None else features, weights, bias, device=dev)
    n_heads, rows, k = source.heads, source.rows, source.clusters
    chunk = chunk_size or max(1, _CHUNK_BYTES["cuda" if dev.type == "cuda" else "cpu"] // (4 * n_heads * k))
    _check_feasible(logits, bias, n_heads, k, dev, chunk)

    log_floor = math.log(torch.finfo(dtype).tiny) + 2.0  # dense kernel entries below e^log_floor are set to 0
    # float64 needs a smaller ε for the same relative effect of the dropped entries
    log_eps = _LOG_EPS if dtype == torch.float32 else 2 * _LOG_EPS
    n_total = int(distributed.all_reduce(torch.tensor([float(rows)], dtype=torch.float64, device=dev)).item())
    if dtype == torch.float32 and tol < float32_error_floor(n_total) and distributed.is_main():
        warnings.warn(f"tol={tol} is near float32's noise floor of the error (~{float32_error_floor(n_total):.2g} "
                      f"for N={n_total}); it may run to max_iters. Consider dtype=torch.float64.", stacklevel=2)
    target = _target_marginals(marginals, n_heads, k, dev) * n_total  # (H, K): cluster sums N·a

    plan = _Plan(lamb=lamb, tol=tol, check_every=check_every, max_iters=max_iters, kernel=kernel, chunk=chunk,
                 log_eps=log_eps, log_floor=log_floor, n_total=n_total, overrelax=overrelax)
    with _matmul_precision(matmul_precision):
        out = _iterate(source, target, plan, warm_start)
        labels, conf = out.labels, out.confidences
        missing = tuple(torch.nonzero(labels[:, 0] < 0).flatten().tolist()) if rows else ()
        if missing:  # heads that retired from a dense or recomputed kernel: one exact pass
            idx = torch.tensor(missing, device=dev)
            labels[idx], conf[idx] = _labels(source, missing, out.log_r[idx], lamb, chunk)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    log_r = out.log_r - out.log_r.mean(1, keepdim=True)  # fix the gauge: keeps magnitudes small for a warm start
    return SinkhornResult(labels, conf, Duals(log_r, lamb, out.omega), out.iterations, out.error, out.converged,
                          time.perf_counter() - t0, out.rebuilds, out.kind, out.density, source.passes)


def _relaxation(err: Tensor, err_last: Tensor, omega_last: Tensor, gap: int, omega: Tensor, settled: Tensor,
                grew: Tensor, n_checks: int) -> tuple[Tensor, Tensor, Tensor]:
    """Adaptive over-relaxation per head, updated at a check.  # (H_a,) each -> ω, settled, grew (H_a,)

    Plain SK contracts the error by a steady ρ per iteration once past the first checks; over-relaxation with
    ω = 2/(1 + √(1 − ρ)) has the same fixed point and contracts by ~ω − 1 (Thibault et al. 2017; Lehmann et al.
    2021, "A note on overrelaxation in the Sinkhorn algorithm"). It is not globally monotone: a head whose error
    grows at two checks in a row has its over-relaxation halved (one rise is the usual transient after a start).
    The error measures a step, which is ω times SK's, so errors are compared per unit of ω (omega: in force since
    the last check; omega_last: before it).
    """
    ratio = ((err / omega) / (err_last / omega_last)).nan_to_num_(nan=1.0, posinf=1.0)
    if n_checks >= 3:  # the first check's error (from c = 1/N or the warm start) is a transient
        rho = ratio.clamp(0.0, 1.0) ** (1.0 / gap)
        fresh = ~settled
        omega = torch.where(fresh, (2.0 / (1.0 + torch.sqrt(1.0 - rho))).clamp(1.0, _OMEGA_MAX), omega)
        settled = settled | fresh
    rising = settled & (ratio > 1.0)
    omega = torch.where(rising & grew, 1.0 + (omega - 1.0) / 2, omega)
    return omega, settled, rising


@dataclass
class _Heads:
    """State of the heads still iterating; every tensor follows the order of `ids`."""

    ids: tuple[int, ...]
    target: Tensor  # (H_a, K) float64 cluster sums N·a
    alpha: Tensor  # (H_a, K) float64 absorbed cluster duals
    log_r: Tensor  # (H_a, K) log r~ = u − α
    colsum: Tensor | None  # (H_a, K) Gᵀc~ over all ranks: the next r-update's denominator
    c: Tensor | None  # (H_a, N_r) c~ of the last sweep; None right after a build, where c~ = 1
    v_prev: Tensor | None  # (H_a, N_r) float64 log c of the previous iteration, for the error
    omega: Tensor  # (H_a,) float64 (CPU) over-relaxation
    settled: Tensor  # (H_a,) bool (CPU) ω estimated (from now on only damped)
    err_last: Tensor  # (H_a,) float64 (CPU) error at the last check
    omega_last: Tensor  # (H_a,) float64 (CPU) ω in force during the interval that ended at the last check
    grew: Tensor  # (H_a,) bool (CPU) the error rose at the last check

    def log_c(self, kb: _Built) -> Tensor:
        """# -> (H_a, N_r) float64"""
        return kb.beta if self.c is None else kb.beta + torch.log(self.c.double())

    def keep(self, keep: Tensor, kb: _Built) -> None:
        """Drop the heads where `keep` (H_a,) is False, here and in the kernel."""
        keep_dev = keep.to(self.target.device)
        self.ids = tuple(h for h, kept in zip(self.ids, keep.tolist()) if kept)
        for name in ("target", "alpha", "log_r", "colsum", "c", "v_prev"):
            x = getattr(self, name)
            setattr(self, name, None if x is None else x[keep_dev])
        for name in ("omega", "settled", "err_last", "omega_last", "grew"):
            setattr(self, name, getattr(self, name)[keep])
        kb.beta, kb.row_dropped, kb.col_dropped = kb.beta[keep_dev], kb.row_dropped[keep_dev], \
            kb.col_dropped[keep_dev]
        kb.store.drop(keep_dev)


def _linear_update_ok(kb: _Built, colsum: Tensor, log_r: Tensor, delta: float) -> tuple[Tensor, bool]:
    """Can the next sweep use r~ = exp(log_r) on the current kernel? # (H_a, K), (H_a, K) -> col_ok (H_a, K), all ok

    Built only from all-reduced numbers, so every rank decides alike.
    """
    lo, hi = log_r.amin(1, keepdim=True).double(), log_r.amax(1, keepdim=True).double()  # (H_a, 1)
    # Column k's linear r-update is off by at most its dropped mass × max c~ (≤ 1/min r~) / its sum.
    col_ok = kb.col_dropped.double() <= delta * colsum.double() * torch.exp(lo)
    # A row's sum is off by at most its dropped mass × max r~ / (min r~ · its kept mass, ~1).
    row_ok = torch.log(kb.row_dropped) + (hi - lo).squeeze(1) <= math.log(delta)
    fine = col_ok.all() & row_ok.all() & (log_r.abs() <= _LOG_GUARD).all() & torch.isfinite(log_r).all()
    return col_ok, bool(fine)


@dataclass(frozen=True)
class _Plan:
    """What one solve iterates under: SeLa's stopping rule and the kernel's settings."""

    lamb: float
    tol: float
    check_every: int
    max_iters: int
    kernel: KernelKind
    chunk: int  # rows per streamed block
    log_eps: float  # kernel entries below e^log_eps of their row are dropped (sparse kernel)
    log_floor: float  # dense kernel entries below e^log_floor are set to 0
    n_total: int  # samples over all ranks
    overrelax: float | Literal["auto"]


@dataclass
class _Outcome:
    """What the iteration ends with, per head."""

    log_r: Tensor  # (H, K) float64 final cluster log-duals
    omega: Tensor  # (H,) float64 over-relaxation each head ended with
    iterations: Tensor  # (H,) int64
    error: Tensor  # (H,) float64
    converged: Tensor  # (H,) bool
    labels: Tensor  # (H, N_r) int64 for the heads that retired from a sparse kernel, -1 elsewhere
    confidences: Tensor  # (H, N_r) float32, alongside `labels`
    rebuilds: int = 0  # kernel (re)builds
    kind: str = "none"  # the last kernel's storage
    density: float = 1.0  # the last kernel's kept fraction


def _iterate(source: _LogitSource | _FeatureSource, target: Tensor, plan: _Plan, warm_start: Duals | None
             ) -> _Outcome:
    """SeLa's loop on the stabilised kernel. target: (H, K) cluster sums N·a."""
    n_heads, k, dev, dt = source.heads, source.clusters, source.device, source.dtype
    lamb, tol, check_every, max_iters, chunk = plan.lamb, plan.tol, plan.check_every, plan.max_iters, plan.chunk
    delta = 8 * torch.finfo(dt).eps  # relative error a dropped kernel entry may cause in any row or column sum
    out = _Outcome(log_r=torch.zeros(n_heads, k, dtype=torch.float64, device=dev),
                   omega=torch.ones(n_heads, dtype=torch.float64), iterations=torch.zeros(n_heads, dtype=torch.int64),
                   error=torch.full((n_heads,), math.inf, dtype=torch.float64),
                   converged=torch.zeros(n_heads, dtype=torch.bool),
                   labels=torch.full((n_heads, source.rows), -1, dtype=torch.int64, device=dev),
                   confidences=torch.zeros(n_heads, source.rows, dtype=torch.float32, device=dev))
    adaptive = plan.overrelax == "auto"
    ones = torch.ones(n_heads, dtype=torch.float64)
    hs = _Heads(ids=tuple(range(n_heads)), target=target, alpha=torch.zeros_like(target),
                log_r=torch.zeros(n_heads, k, dtype=dt, device=dev), colsum=None, c=None, v_prev=None,
                omega=ones if adaptive else ones * float(plan.overrelax),
                settled=torch.full((n_heads,), not adaptive),
                err_last=torch.full((n_heads,), math.inf, dtype=torch.float64), omega_last=ones.clone(),
                grew=torch.zeros(n_heads, dtype=torch.bool))

    def rebuild() -> _Built:
        """Kernel for u = hs.alpha, one exact c-update; the scaling factors restart at 1."""
        built = _build_kernel(source, hs.ids, hs.alpha, lamb, chunk, plan.kernel, plan.log_eps, plan.log_floor,
                              plan.n_total)
        out.rebuilds += 1
        out.kind, out.density = built.store.kind, built.density
        hs.log_r.zero_()
        hs.c, hs.colsum = None, built.colsum
        return built

    kb = None  # the current kernel; None before the cold start's first iteration
    if warm_start is not None:
        if warm_start.log_r.shape != (n_heads, k):
            raise ValueError(f"warm_start duals are {tuple(warm_start.log_r.shape)}, expected ({n_heads}, {k})")
        # u is in units of λ·logit; rescaling keeps a warm start useful when λ changes.
        hs.alpha = warm_start.log_r.to(dev, torch.float64) * (lamb / warm_start.lamb)
        if adaptive and warm_start.omega is not None:  # the conditioning changes little between label updates
            hs.omega, hs.settled = warm_start.omega.to(torch.float64).cpu().clone(), ~hs.settled
        kb = rebuild()  # "iteration 0": c from the previous r
        hs.v_prev = kb.beta.clone()
    om_key, om = None, None  # device copy of ω (None: plain SK) and the tensor it was made from

    t, t_last, n_checks = 0, 0, 0
    while hs.ids:
        t += 1
        check = (t - 1) % check_every == 0 or t == max_iters
        if kb is None:  # cold start: iteration 1 from SeLa's c = 1/N, exactly
            lse, hs.v_prev = _column_logsumexp(source, hs.ids, None, lamb, chunk)
            hs.alpha = torch.log(hs.target) - lse
            kb = rebuild()
        else:
            log_r_sk = torch.log(hs.target / hs.colsum.double()).to(dt)  # SK's r-update
            if om_key is not hs.omega:  # ω changes only at checks: copy it to the device then
                om = hs.omega.to(dev, dt).unsqueeze(1) if bool((hs.omega != 1.0).any()) else None  # (H_a, 1)
                om_key = hs.omega
            new_log_r = log_r_sk if om is None else torch.lerp(hs.log_r, log_r_sk, om)
            col_ok, fine = _linear_update_ok(kb, hs.colsum, new_log_r, delta)
            if fine:
                hs.log_r = new_log_r
                hs.c, hs.colsum = kb.store.sweep(new_log_r.exp(), hs.c, om)
                distributed.all_reduce(hs.colsum, "sum")
            else:  # exact, unrelaxed iteration: absorb the duals; log-domain r-update where the linear one is not
                u = hs.alpha + log_r_sk.double()  # trusted
                if not bool(col_ok.all()):
                    lse, _ = _column_logsumexp(source, hs.ids, hs.log_c(kb), lamb, chunk)
                    u = torch.where(col_ok, u, torch.log(hs.target) - lse)
                hs.alpha = u
                kb = None  # free the old kernel before building the new one
                kb = rebuild()
        if not (check or t % check_every == 0 or t + 1 == max_iters):
            continue  # neither this iteration's c nor the next one's is compared
        v_now = hs.log_c(kb)  # (H_a, N_r)
        if not check:
            hs.v_prev = v_now
            continue
        err = distributed.all_reduce(torch.expm1(hs.v_prev - v_now).abs_().sum(1), "sum").cpu()  # Σ|c/c' − 1|
        hs.v_prev = v_now
        n_checks += 1
        omega_now = hs.omega
        if adaptive:
            hs.omega, hs.settled, hs.grew = _relaxation(err, hs.err_last, hs.omega_last, t - t_last, hs.omega,
                                                        hs.settled, hs.grew, n_checks)
        hs.err_last, hs.omega_last, t_last = err, omega_now, t
        done = (err <= tol) | (t >= max_iters)
        if bool(done.any()):
            ids = [h for h, d in zip(hs.ids, done.tolist()) if d]
            done_dev = done.to(dev)
            out.log_r[ids] = hs.alpha[done_dev] + hs.log_r[done_dev].double()
            out.omega[ids] = hs.omega[done]
            out.iterations[ids], out.error[ids], out.converged[ids] = t, err[done], err[done] <= tol
            if isinstance(kb.store, _SparseStore) and source.rows:
                out.labels[ids], out.confidences[ids] = kb.store.labels(done_dev.nonzero().squeeze(1),
                                                                        hs.log_r[done_dev].exp())
            hs.keep(~done, kb)
    return out
