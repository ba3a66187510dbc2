"""The weighted deep-clustering loss in low-rank form equals the dense TF x TF formula (paper Eqs. 8-9)."""

import pytest
import torch

from hear_sela.separation.student import weighted_dc_loss


def dense_loss(v: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """||W^1/2 (V V^T - Y Y^T) W^1/2||_F^2 per example, with explicit N x N matrices, averaged over the batch."""
    out = []
    for vb, yb, wb in zip(v, y, w):
        a = vb @ vb.T - yb @ yb.T  # (N, N)
        ws = torch.diag(wb.sqrt())
        out.append((ws @ a @ ws).pow(2).sum())
    return torch.stack(out).mean()


def test_low_rank_equals_dense():
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(3, 37, 5, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.one_hot(torch.randint(0, 2, (3, 37), generator=g), 2).double()
    w = torch.rand(3, 37, generator=g, dtype=torch.float64)
    low = weighted_dc_loss(v, y, w, "none")
    torch.testing.assert_close(low, dense_loss(v, y, w))
    # Eq. 9 elementwise: sum_ij w_i w_j (<v_i,v_j> - <y_i,y_j>)^2
    eq9 = torch.stack([(wb[:, None] * wb[None, :] * (vb @ vb.T - yb @ yb.T).pow(2)).sum()
                       for vb, yb, wb in zip(v, y, w)]).mean()
    torch.testing.assert_close(low, eq9)


def test_zero_for_perfect_embedding_and_zero_weights():
    y = torch.nn.functional.one_hot(torch.tensor([[0, 1, 1, 0, 1]]), 2).double()
    w = torch.rand(1, 5, dtype=torch.float64)
    assert float(weighted_dc_loss(y, y, w, "none")) < 1e-12  # V = Y reproduces the affinity exactly
    v = torch.nn.functional.normalize(torch.randn(1, 5, 3, dtype=torch.float64), dim=-1)
    assert float(weighted_dc_loss(v, y, torch.zeros(1, 5, dtype=torch.float64), "none")) == 0.0


def _grad_rms(w: torch.Tensor, norm: str) -> float:
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(2, 50, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.one_hot(torch.randint(0, 2, (2, 50), generator=g), 2).double()
    weighted_dc_loss(torch.nn.functional.normalize(raw, dim=-1), y, w, norm).backward()
    return float(raw.grad.pow(2).mean().sqrt())


def test_normalised_loss_gradient_does_not_depend_on_the_weights_scale():
    """Issue 27: w(2) = C^2 |X| / sum |X| is orders of magnitude below w(0); unnormalised, its gradient fell below
    Adam's eps. Normalised as nussl, scaling every weight by c changes neither the loss nor the gradient."""
    g = torch.Generator().manual_seed(2)
    w = torch.rand(2, 50, generator=g, dtype=torch.float64) / 50  # like w(0): sums to ~1 per mixture
    conf = torch.rand(2, 50, generator=g, dtype=torch.float64) * 0.05  # a typical C (C_cl C_JSD C_post)
    w2 = w * conf**2  # like w(2): mean weight ~1e-3 of w(0)'s
    for norm in ("example", "batch"):
        # (nussl's absolute 1e-8 in the normaliser is 4e-6 of (sum w)^2 here)
        assert _grad_rms(w * 0.1, norm) == pytest.approx(_grad_rms(w, norm), rel=1e-4)
        # the gradient of the alpha = 2 weighting is of the same order as alpha = 0's, not 1e-6 of it
        assert 0.1 < _grad_rms(w2, norm) / _grad_rms(w, norm) < 10
    assert _grad_rms(w * 0.1, "none") == pytest.approx(0.01 * _grad_rms(w, "none"), rel=1e-6)  # the bug, kept as
    assert _grad_rms(w2, "none") / _grad_rms(w, "none") < 1e-3  # an option: the scale leaks into the gradient


def test_example_norm_divides_each_example_by_its_total_weight_squared():
    g = torch.Generator().manual_seed(3)
    v = torch.nn.functional.normalize(torch.randn(3, 20, 5, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.one_hot(torch.randint(0, 2, (3, 20), generator=g), 2).double()
    w = torch.rand(3, 20, generator=g, dtype=torch.float64)
    per = torch.stack([dense_loss(v[i:i + 1], y[i:i + 1], w[i:i + 1]) for i in range(3)])  # (3,)
    torch.testing.assert_close(weighted_dc_loss(v, y, w, "example"), (per / w.sum(1).pow(2)).mean())
    torch.testing.assert_close(weighted_dc_loss(v, y, w, "batch"), per.sum() / w.sum(1).pow(2).sum())
    with pytest.raises(ValueError, match="loss_norm"):
        weighted_dc_loss(v, y, w, "mean")
