"""The yardstick for hear_sela.sinkhorn: SeLa's Sinkhorn-Knopp loop, written plainly in float64.

Transcribed from yukimasano/self-label sinkhornknopp.py::optimize_L_sk (numpy) and its torch twin: P = softmax^λ
seen as K × N, r = a / (P c), c' = (1/N) / (rᵀ P), err = Σ|c/c' − 1| every `check_every` iterations, labels =
argmax of diag(r) P diag(c). Heads are solved one after another, as SeLa does. Imported by tests/test_sinkhorn.py
and benchmarks/sinkhorn.py; deliberately free of any trick the solver under test uses.

`sela_reference_log` is the same iterate sequence with every product written in logs (log P = λ·log_softmax), for
inputs where P^λ underflows float64: peaked logits with a dead cluster (its whole row of P^λ is 0 and SeLa's loop
ends in NaN), or λ = 100 (a third to 90 % of the entries are 0, measured on the tests' logits). It shares no code
with the solver either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ReferenceResult:
    labels: np.ndarray  # (H, N) int64
    confidences: np.ndarray  # (H, N) float64
    iterations: np.ndarray  # (H,) int64
    error: np.ndarray  # (H,) float64
    seconds: float
    log_r: torch.Tensor | None = None  # (H, K) float64 final log r, mean 0 per head (sela_reference_log only)


def _softmax_np(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(1, keepdims=True)


def _one_head_numpy(logits: np.ndarray, lamb: float, a: np.ndarray, tol: float, check_every: int,
                    max_iters: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """# (N, K), (K,) -> labels (N,), confidences (N,), iterations, error"""
    n = logits.shape[0]
    p = _softmax_np(logits.astype(np.float64)).T ** lamb  # (K, N)
    c = np.ones((n, 1)) / n
    a = a.reshape(-1, 1)
    err, counter = np.inf, 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while err > tol and counter < max_iters:
            r = a / (p @ c)
            c_new = (1.0 / n) / (r.T @ p).T
            if counter % check_every == 0 or counter + 1 == max_iters:
                err = np.nansum(np.abs(c / c_new - 1))
            c = c_new
            counter += 1
        q = p * c.T * r
        labels = np.nanargmax(q, 0)
        conf = q[labels, np.arange(n)] / q.sum(0)
    return labels, conf, counter, float(err)


def _one_head_torch(logits: torch.Tensor, lamb: float, a: torch.Tensor, tol: float, check_every: int,
                    max_iters: int) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """# (N, K), (K,) -> labels (N,), confidences (N,), iterations, error"""
    n = logits.shape[0]
    # Softmax in place, stable as SeLa's util.py::py_softmax: one N × K float64 buffer (24 GB at 1M × 3000).
    p = logits.to(torch.float64, copy=True)
    p.sub_(p.amax(1, keepdim=True)).exp_()
    p = p.div_(p.sum(1, keepdim=True)).T.pow_(lamb)  # (K, N)
    c = torch.full((n, 1), 1.0 / n, dtype=torch.float64, device=p.device)
    a = a.reshape(-1, 1).to(p)
    err, counter = float("inf"), 0
    while err > tol and counter < max_iters:
        r = a / (p @ c)
        c_new = (1.0 / n) / (r.T @ p).T
        if counter % check_every == 0 or counter + 1 == max_iters:
            err = float(torch.nansum(torch.abs(c / c_new - 1)))
        c = c_new
        counter += 1
    q = p * c.T * r
    labels = torch.argmax(torch.nan_to_num(q, nan=-1.0), 0)
    conf = q[labels, torch.arange(n, device=p.device)] / q.sum(0)
    return labels, conf, counter, err


def sela_reference(logits, lamb: float = 25.0, marginals=None, tol: float = 0.1, check_every: int = 10,
                   max_iters: int = 100_000, backend: str = "numpy", device: str | None = None) -> ReferenceResult:
    """SeLa's float64 loop per head. logits: (H, N, K) array or tensor; marginals None | (K,) | (H, K)."""
    if isinstance(logits, torch.Tensor) and backend == "numpy":
        logits = logits.detach().cpu().numpy()
    h, _, k = logits.shape
    if marginals is None:
        targets = np.full((h, k), 1.0 / k)
    else:
        m = np.asarray(marginals.cpu() if isinstance(marginals, torch.Tensor) else marginals, dtype=np.float64)
        targets = np.broadcast_to(m, (h, k)) / np.broadcast_to(m, (h, k)).sum(1, keepdims=True)
    t0 = time.perf_counter()
    out = []
    for head in range(h):
        if backend == "numpy":
            out.append(_one_head_numpy(np.asarray(logits[head]), lamb, targets[head], tol, check_every, max_iters))
        else:
            x = torch.as_tensor(logits[head], device=device)
            lab, conf, it, err = _one_head_torch(x, lamb, torch.as_tensor(targets[head]), tol, check_every,
                                                 max_iters)
            out.append((lab.cpu().numpy(), conf.cpu().numpy(), it, err))
    if backend != "numpy" and device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return ReferenceResult(np.stack([o[0] for o in out]), np.stack([o[1] for o in out]),
                           np.array([o[2] for o in out]), np.array([o[3] for o in out]), seconds)


def sela_reference_log(logits: torch.Tensor, lamb: float = 25.0, tol: float = 0.1, check_every: int = 10,
                       max_iters: int = 100_000) -> ReferenceResult:
    """SeLa's loop in the log domain, float64, uniform marginals, all heads at once (no head is retired early: each
    head's iterate sequence is its own, the error and count are recorded when it first meets tol).

    logits: (H, N, K). Returns labels (H, N), confidences (H, N), iterations (H,), error (H,) as sela_reference,
    and the final log r (H, K), mean 0 per head.
    """
    t0 = time.perf_counter()
    h, n, k = logits.shape
    log_p = torch.log_softmax(logits.double(), -1) * lamb  # (H, N, K) log P^λ
    log_a, log_b = -np.log(k), -np.log(n)  # uniform targets: each cluster a = 1/K, each sample 1/N
    log_c = torch.full((h, n), log_b, dtype=torch.float64)  # (H, N) c = 1/N
    iterations = np.zeros(h, dtype=np.int64)
    error = np.full(h, np.inf)
    done = np.zeros(h, dtype=bool)
    final_log_r = torch.zeros(h, k, dtype=torch.float64)
    counter = 0
    while not done.all() and counter < max_iters:
        log_r = log_a - torch.logsumexp(log_p + log_c[:, :, None], 1)  # (H, K) r = a / (P c)
        log_c_new = log_b - torch.logsumexp(log_p + log_r[:, None, :], 2)  # (H, N) c' = (1/N) / (rᵀ P)
        counter += 1
        if (counter - 1) % check_every == 0 or counter == max_iters:
            err = torch.expm1(log_c - log_c_new).abs().sum(1).numpy()  # Σ|c/c' − 1|
            stop = ~done & ((err <= tol) | (counter == max_iters))
            iterations[stop], error[stop] = counter, err[stop]
            final_log_r[torch.from_numpy(stop)] = log_r[torch.from_numpy(stop)]
            done |= stop
        log_c = log_c_new
    log_q = log_p + final_log_r[:, None, :]  # (H, N, K) log of diag(r) P up to the row factor c
    labels = log_q.argmax(-1)
    conf = torch.softmax(log_q, -1).amax(-1)
    final_log_r -= final_log_r.mean(1, keepdim=True)
    return ReferenceResult(labels.numpy(), conf.numpy(), iterations, error, time.perf_counter() - t0, final_log_r)


def plan_marginals(logits: torch.Tensor, log_r: torch.Tensor, lamb: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column sums of Q = diag(r) P^λ diag(c) in float64, c from one exact c-update given r = exp(log_r).

    (H, N, K), (H, K) -> (H, N) sample sums (1/N each by construction), (H, K) cluster sums (the tested ones)
    """
    x = torch.log_softmax(logits.double(), dim=-1) * lamb + log_r.double().unsqueeze(1)  # log of r_k P_ki
    n = logits.shape[1]
    log_q = x - torch.logsumexp(x, dim=-1, keepdim=True) - np.log(n)  # c-update: each sample sums to 1/N
    q = log_q.exp()
    return q.sum(-1), q.sum(1)
