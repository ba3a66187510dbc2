"""The weighted deep-clustering loss in low-rank form equals the dense TF x TF formula (paper Eqs. 8-9)."""

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
    low = weighted_dc_loss(v, y, w)
    torch.testing.assert_close(low, dense_loss(v, y, w))
    # Eq. 9 elementwise: sum_ij w_i w_j (<v_i,v_j> - <y_i,y_j>)^2
    eq9 = torch.stack([(wb[:, None] * wb[None, :] * (vb @ vb.T - yb @ yb.T).pow(2)).sum()
                       for vb, yb, wb in zip(v, y, w)]).mean()
    torch.testing.assert_close(low, eq9)


def test_zero_for_perfect_embedding_and_zero_weights():
    y = torch.nn.functional.one_hot(torch.tensor([[0, 1, 1, 0, 1]]), 2).double()
    w = torch.rand(1, 5, dtype=torch.float64)
    assert float(weighted_dc_loss(y, y, w)) < 1e-12  # V = Y reproduces the affinity exactly
    v = torch.nn.functional.normalize(torch.randn(1, 5, 3, dtype=torch.float64), dim=-1)
    assert float(weighted_dc_loss(v, y, torch.zeros(1, 5, dtype=torch.float64))) == 0.0
