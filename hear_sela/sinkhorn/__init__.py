"""SeLa's Sinkhorn-Knopp label solver: float32-safe, all heads batched, sharded over ranks, matrix-free at scale.

Problem, per head h: P = softmax_K(L)^λ seen as K × N; find Q = diag(r) P diag(c) whose cluster sums are the target
marginals a (uniform 1/K or a prior) and whose sample sums are 1/N; label_i = argmax_k Q[k, i] and
confidence_i = max_k Q[k, i] / Σ_k Q[k, i]. The iteration, its start (r = 1/K, c = 1/N) and its stopping rule
(err = Σ_i |c_i / c'_i − 1| every `check_every` iterations) are SeLa's (yukimasano/self-label, sinkhornknopp.py).

Formulation (why it is exact in float32):
- P^λ = exp(λ(L − rowmax)) × a per-sample factor, and per-sample factors are absorbed by c, so the solver works on the
  log kernel A = λ(L − rowmax) ≤ 0 (H, N, K) and never forms p^λ, which underflows in float32 for p < ~0.03.
  The problem is rescaled to sample sums 1 and cluster sums N·a (same Q up to a factor N, same ratios c/c').
- Stabilised scaling (Schmitzer 2016): the duals u = log r, v = log c are split into absorbed parts α (H, K) and
  β (H, N), kept in float64, and scaling factors r~, c~. The kernel G = exp(A + α + β) is built row-normalised, so
  an iteration is two mat-vecs whose factors start at 1. When a factor would pass e^±40, or when the entries G
  dropped (below) could move a row or column sum by more than 8 float32 ulps, the iteration is done exactly in the
  log domain instead: column logsumexp over samples streamed in chunks where needed (dead clusters, whose column of
  G underflows), duals absorbed, G rebuilt. That happens 1-3 times per solve on realistic logits. The iterate
  sequence is SeLa's in exact arithmetic whichever way each iteration is computed.
- Kernel entries below e^-50 of their row are dropped; every build measures the mass it dropped per row and per
  column, which bounds the error of the linear updates that follow. At λ = 25 ~1 % of the entries survive, so the
  default kernel is a block-diagonal CSR matrix over all heads (two sparse mat-vecs per iteration), falling back to
  the dense G (stored logits) or to recomputing G chunk by chunk (features) when the kernel is not sparse.
- Labels are read from the exact log kernel with the final duals: argmax_k (A_ik + u_k), independent of truncation.
- Over-relaxation (optional, on by default): u ← u + ω(u_SK − u), v likewise, with ω estimated per head from the
  plain iteration's contraction. Same fixed point, 3-5x fewer iterations; overrelax=1.0 gives SeLa's iterates.

Sharding: each rank passes only its own rows (samples). Per iteration the ranks all-reduce the (H, K) column sums
and the (H,) error; an exact iteration all-reduces an (H, K) column max then sum (logsumexp across ranks). Decisions
(rebuild, convergence) depend only on all-reduced numbers, so every rank takes the same branch. No rank gathers N × K.
"""

from hear_sela.sinkhorn.iteration import Duals, SinkhornResult, float32_error_floor, solve_labels
from hear_sela.sinkhorn.marginals import (
    gaussian_marginals,
    gaussian_sizes,
    soft_cluster_mass,
    sort_to_mass,
    uniform_marginals,
)
from hear_sela.sinkhorn.sources import KernelKind

__all__ = ["Duals", "KernelKind", "SinkhornResult", "float32_error_floor", "gaussian_marginals", "gaussian_sizes",
           "soft_cluster_mass", "solve_labels", "sort_to_mass", "uniform_marginals"]
