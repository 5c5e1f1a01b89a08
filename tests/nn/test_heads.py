"""The gradient reversal layer against torch's autograd, the papers' schedules at given p, and a
trunk with named heads."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.nn.heads import GradientReversal, MultiHead, dann_lr, grl_lambda, reverse_gradient


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 2.5])
def test_reversal_is_identity_forward_and_minus_lambda_times_the_gradient_backward(lambda_):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = GradientReversal(lambda_)(x)
    assert torch.equal(y, x)
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert torch.equal(grad, -lambda_ * upstream)


def test_reversal_flips_only_what_is_below_it():
    """Parameters above the layer get their usual gradient; those below get -lambda times it."""
    torch.manual_seed(0)
    below, above = nn.Linear(4, 6), nn.Linear(6, 1)
    x = torch.randn(8, 4)

    def grads(layer: nn.Module) -> list[torch.Tensor]:
        for p in [*below.parameters(), *above.parameters()]:
            p.grad = None
        above(layer(below(x))).square().mean().backward()
        return [p.grad.clone() for p in [*below.parameters(), *above.parameters()]]

    plain = grads(nn.Identity())
    reversed_ = grads(GradientReversal(0.7))
    assert torch.allclose(reversed_[0], -0.7 * plain[0]) and torch.allclose(
        reversed_[1], -0.7 * plain[1]
    )
    assert torch.equal(reversed_[2], plain[2]) and torch.equal(reversed_[3], plain[3])


def test_lambda_is_settable_between_steps_and_checked():
    grl = GradientReversal()
    x = torch.ones(3, requires_grad=True)
    grl.lambda_ = 0.25
    grl(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.25))
    assert "lambda_=0.25" in repr(grl)
    GradientReversal(0.0)  # the boundary is allowed
    with pytest.raises(ConfigError, match=r"lambda_ must be a finite number >= 0; got -0.1"):
        GradientReversal(-0.1)
    with pytest.raises(ConfigError, match="lambda_"):
        grl.lambda_ = math.nan
    assert grl.lambda_ == 0.25
    x = torch.ones(2, requires_grad=True)
    reverse_gradient(x, 2.0).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), -2.0))


@pytest.mark.parametrize(
    ("p", "gamma", "expected"),
    [
        (0.0, 10.0, 0.0),
        (0.1, 10.0, 0.46211715726),  # 2 / (1 + e^-1) - 1
        (0.5, 10.0, 0.98661429815),  # 2 / (1 + e^-5) - 1
        (1.0, 10.0, 0.99990920426),  # 2 / (1 + e^-10) - 1
        (0.5, 2.0, 0.46211715726),
    ],
)
def test_ganin_lambda_schedule_at_given_p(p, gamma, expected):
    assert grl_lambda(p, gamma) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize(
    ("p", "lr0", "expected"),
    [
        (0.0, 0.01, 0.01),
        (0.5, 0.01, 0.0026084743),  # 0.01 / 6^0.75
        (1.0, 0.01, 0.0016556003),  # 0.01 / 11^0.75
        (0.1, 1.0, 0.5946035575),  # 1 / 2^0.75
    ],
)
def test_paper_learning_rate_at_given_p(p, lr0, expected):
    assert dann_lr(p, lr0) == pytest.approx(expected, rel=1e-7)


def test_schedules_refuse_a_negative_progress():
    with pytest.raises(ConfigError, match=r"progress p must be a finite number >= 0; got -0.5"):
        grl_lambda(-0.5)
    with pytest.raises(ConfigError, match="progress p"):
        dann_lr(math.inf, 0.1)


def test_multihead_returns_each_head_and_exposes_the_trunk_features():
    torch.manual_seed(0)
    net = MultiHead(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU()),
        {"digit": nn.Linear(8, 10), "parity": nn.Linear(8, 1)},
    )
    x = torch.randn(5, 4)
    out = net(x)
    assert list(out) == ["digit", "parity"] == net.head_names
    f = net.features(x)
    assert f.shape == (5, 8)
    assert torch.equal(out["digit"], net.heads["digit"](f))
    branch = net.branch("parity")
    assert torch.equal(branch(x), out["parity"])
    assert {id(p) for p in branch.parameters()} <= {id(p) for p in net.parameters()}


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        ({}, "non-empty mapping"),
        ({"a.b": nn.Linear(2, 1)}, "without '.'"),
        ({"a": "linear"}, "head 'a' must be an nn.Module; got str"),
    ],
)
def test_multihead_refuses_bad_heads(heads, message):
    with pytest.raises(ConfigError, match=message):
        MultiHead(nn.Linear(2, 2), heads)


def test_branch_of_an_unknown_head_names_the_heads():
    net = MultiHead(nn.Linear(2, 2), {"a": nn.Linear(2, 1)})
    with pytest.raises(ConfigError, match="no head 'b'; heads: a"):
        net.branch("b")
