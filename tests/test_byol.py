"""BYOL-A objective: architecture as published, loss, EMA target."""

from __future__ import annotations

import torch
from torch import nn

from hear_sela.config import ByolConfig
from hear_sela.encoders import create_encoder
from hear_sela.objectives.byol import ByolObjective, byol_loss


def tiny_encoder() -> nn.Module:
    return create_encoder("audiontt", n_mels=16, d=32, channels=4)


def test_projector_and_predictor_are_byola_mlps():
    obj = ByolObjective(ByolConfig(), create_encoder("audiontt_d512", n_mels=64))
    proj, pred = obj.net.projector, obj.net.predictor
    assert [type(m) for m in proj] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (proj[0].in_features, proj[0].out_features, proj[3].out_features) == (512, 4096, 256)
    assert (pred[0].in_features, pred[0].out_features, pred[3].out_features) == (256, 4096, 256)
    assert obj.cfg.ema_decay == 0.99
    assert all(not p.requires_grad for p in obj.target.parameters())


def test_loss_is_two_minus_two_cos_symmetrised():
    p, z = torch.randn(5, 8), torch.randn(5, 8)
    expected = 2 - 2 * (p / p.norm(dim=1, keepdim=True) * z / z.norm(dim=1, keepdim=True)).sum(1)
    torch.testing.assert_close(byol_loss(p, z), expected)
    torch.testing.assert_close(byol_loss(p, 3 * p), torch.zeros(5), atol=1e-6, rtol=0)


def test_objective_pairs_each_views_prediction_with_the_other_views_target():
    # predictor = identity and target = online (as at initialisation), eval mode (no dropout, fixed batch-norm
    # statistics): the online prediction of a view is then its target projection z, and the loss is
    # 2 x (2 - 2 cos(z1, z2)) per sample: 0 for identical views, and not 0 if a view were paired with itself
    torch.manual_seed(0)
    obj = ByolObjective(ByolConfig(projection_hidden=16, projection_dim=8), tiny_encoder())
    obj.net.predictor = nn.Identity()
    obj.train(False)
    views = torch.randn(2, 6, 1, 16, 24)
    with torch.no_grad():
        z1, z2 = (obj.net.projector(obj.net.encoder(v)) for v in views)  # (B, P) each
    cos = (z1 * z2).sum(1) / (z1.norm(dim=1) * z2.norm(dim=1))
    torch.testing.assert_close(obj.loss(torch.arange(6), views), (2 * (2 - 2 * cos)).mean())
    same = views[:1].expand(2, -1, -1, -1, -1)
    torch.testing.assert_close(obj.loss(torch.arange(6), same), torch.tensor(0.0), atol=1e-5, rtol=0)


def test_batch_norm_sees_each_view_alone():
    # in train mode batch norm uses the batch's statistics: as in the published BYOL-A code, view 1's output must
    # not depend on what view 2 holds (a concatenated batch of both views would mix their statistics)
    torch.manual_seed(0)
    obj = ByolObjective(ByolConfig(projection_hidden=16, projection_dim=8), tiny_encoder())
    obj.train(True)
    views = torch.randn(2, 6, 1, 16, 24)
    other = views.clone()
    other[1] = other[1] * 5 + 3  # view 2 changed, view 1 the same
    outs = []
    for v in (views, other):
        torch.manual_seed(5)  # same dropout draws
        pred = obj.net(v)  # (2, B, P)
        with torch.no_grad():
            proj = obj.target(v)  # (2, B, P)
        outs.append((pred[0].detach(), proj[0]))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


def test_ema_moves_target_parameters_only_by_one_minus_decay():
    torch.manual_seed(0)
    obj = ByolObjective(ByolConfig(projection_hidden=16, projection_dim=8), tiny_encoder())
    before = [p.clone() for p in obj.target.parameters()]
    with torch.no_grad():
        for p in obj.net.parameters():
            p.add_(1.0)
    obj.after_step()
    online = list(obj.net.encoder.parameters()) + list(obj.net.projector.parameters())
    for b, t, o in zip(before, obj.target.parameters(), online):
        torch.testing.assert_close(t, 0.99 * b + 0.01 * o)
    # the predictor has no target counterpart
    assert sum(p.numel() for p in obj.target.parameters()) == sum(p.numel() for p in online)


def test_state_round_trip():
    torch.manual_seed(0)
    a = ByolObjective(ByolConfig(projection_hidden=16, projection_dim=8), tiny_encoder())
    a.after_step()
    torch.manual_seed(1)
    b = ByolObjective(ByolConfig(projection_hidden=16, projection_dim=8), tiny_encoder())
    b.load_state_dict(a.state_dict())
    for x, y in zip(a.target.state_dict().values(), b.target.state_dict().values()):
        assert torch.equal(x, y)
