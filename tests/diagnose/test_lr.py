"""LR range test, coarse probe and the configured LR, with the closed-form oracle of a quadratic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.diagnose import DoctorConfig, doctor
from trainwell.diagnose.lr import coarse_probe, lr_range_test
from trainwell.diagnose.recipe import make_problem


def _linear_regression():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(256, 5, generator=gen) * torch.tensor([3.0, 1.0, 1.0, 0.5, 0.2])
    y = X @ torch.randn(5, 1, generator=gen) + 0.1 * torch.randn(256, 1, generator=gen)
    torch.manual_seed(0)
    return nn.Linear(5, 1), X, y


def test_range_test_diverges_just_above_the_critical_lr_of_gd():
    # full-batch GD on MSE: L = mean((Xw + b - y)^2) has Hessian H = 2/n [X 1]^T [X 1];
    # GD diverges for lr > 2 / lambda_max(H) (closed form)
    model, X, y = _linear_regression()
    Xb = torch.cat([X, torch.ones(len(X), 1)], 1).double()
    lam = torch.linalg.eigvalsh(2 / len(X) * Xb.T @ Xb).max().item()
    critical = 2 / lam
    p = make_problem(model, (X, y), optimizer="sgd")
    res = lr_range_test(p, iters=200, lr_min=1e-5, lr_max=10.0, batch_size=len(X))
    # stable below the critical LR; above it the top eigen-direction grows by |1 - lr lambda| per
    # step from a tiny residual, so the smoothed loss crosses 4x its minimum a few steps later
    assert critical <= res.diverge_lr <= 5 * critical
    assert res.suggested_lr < critical
    assert res.lrs[0] == 1e-5 and all(b > a for a, b in zip(res.lrs, res.lrs[1:], strict=False))


def test_coarse_probe_flags_divergence_above_the_critical_lr():
    model, X, y = _linear_regression()
    p = make_problem(model, (X, y), optimizer="sgd")
    rows = coarse_probe(p, [1.0, 1e-2], iters=50, batch_size=len(X))
    assert rows[0]["diverged"] and not rows[1]["diverged"]
    assert rows[1]["end_loss"] < rows[1]["start_loss"]


def test_lr_of_10_fails_and_a_good_lr_passes(digits, make_mlp):
    cfg = DoctorConfig(lr_iters=60, probe_iters=40, probe_lrs=[1e-1, 1e-2])
    bad = doctor(make_mlp(), digits, optimizer="sgd", lr=10.0, checks=["lr"], config=cfg)
    f = bad.get("lr.setting")[0]
    assert f.status == "fail" and "explode" in f.title
    good = doctor(make_mlp(), digits, optimizer="adam", lr=1e-3, checks=["lr"], config=cfg)
    assert good.status == "pass", good.summary()
    assert 1e-5 < good.suggested_lr < 1.0
    assert good.get("lr.probe")[0].evidence["best_lr"] in (1e-1, 1e-2)


def test_find_lr_on_a_plain_module_leaves_it_untouched():
    from trainwell.diagnose import find_lr

    model, X, y = _linear_regression()
    w = model.weight.detach().clone()
    res = find_lr(model, (X, y), optimizer="sgd", iters=150, lr_min=1e-5, batch_size=256)
    assert torch.equal(model.weight, w)
    assert res.diverge_lr is not None and res.suggested_lr < res.diverge_lr


def test_range_test_loss_is_the_bias_corrected_moving_average():
    # replay the range test by hand: full-batch SGD with lr_min * gamma^i, raw losses, then
    # the EMA avg_i = 0.9 avg_{i-1} + 0.1 loss_i divided by 1 - 0.9^(i+1) (Adam's correction)
    model, X, y = _linear_regression()
    p = make_problem(model, (X, y), optimizer="sgd")
    res = lr_range_test(p, iters=40, lr_min=1e-4, lr_max=1e-2, batch_size=len(X))
    net = nn.Linear(5, 1)
    net.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    gamma = (1e-2 / 1e-4) ** (1 / 39)
    avg, smooth = 0.0, []
    for i in range(40):
        opt.param_groups[0]["lr"] = 1e-4 * gamma**i
        loss = nn.functional.mse_loss(net(X), y)
        avg = 0.9 * avg + 0.1 * loss.item()
        smooth.append(avg / (1 - 0.9 ** (i + 1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert res.diverge_lr is None and len(res.losses) == 40
    assert torch.allclose(torch.tensor(res.losses), torch.tensor(smooth), rtol=1e-4)
    assert res.lrs[-1] == pytest.approx(1e-2)
    k = min(range(40), key=smooth.__getitem__)
    assert res.suggested_lr == pytest.approx(res.lrs[k] / 10)
