"""Every activation's value and gradient against its closed form (lectures 000-004)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn import SELU_ALPHA, SELU_LAMBDA, Maxout, SReLU, Swish, make_activation

# away from the kinks at 0 (and SReLU's at +-0.4)
X = torch.linspace(-3, 3, 61, dtype=torch.float64) + 0.0123


def sig(x):
    return 1 / (1 + torch.exp(-x))


def slopes(cond, a, b):
    """Piecewise-constant derivative in float64 (torch.where of two Python floats is float32)."""
    return torch.where(cond, torch.full_like(X, a), torch.full_like(X, b))


def phi(x):  # standard normal pdf and cdf
    return torch.exp(-x * x / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + torch.erf(x / math.sqrt(2)))


CLOSED_FORMS = {
    # name/spec: (value, derivative)   -- lecture 000/001/003 formulas
    "sigmoid": (lambda x: sig(x), lambda x: sig(x) * (1 - sig(x))),
    "tanh": (
        lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
        lambda x: 1 / torch.cosh(x) ** 2,  # sech^2
    ),
    "relu": (lambda x: torch.clamp(x, min=0), lambda x: (x > 0).double()),
    "leaky_relu": (lambda x: torch.maximum(0.01 * x, x), lambda x: slopes(x > 0, 1.0, 0.01)),
    "leaky_relu_0.1": (lambda x: torch.maximum(0.1 * x, x), lambda x: slopes(x > 0, 1.0, 0.1)),
    "prelu": (lambda x: torch.maximum(0.25 * x, x), lambda x: slopes(x > 0, 1.0, 0.25)),
    "elu": (
        lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
        lambda x: torch.where(x > 0, 1.0, torch.exp(x)),
    ),
    "selu": (
        lambda x: SELU_LAMBDA * torch.where(x > 0, x, SELU_ALPHA * (torch.exp(x) - 1)),
        lambda x: SELU_LAMBDA * torch.where(x > 0, 1.0, SELU_ALPHA * torch.exp(x)),
    ),
    "gelu": (lambda x: x * phi(x)[1], lambda x: phi(x)[1] + x * phi(x)[0]),
    "swish": (lambda x: x * sig(x), lambda x: sig(x) + x * sig(x) * (1 - sig(x))),
    "swish_beta2": (
        lambda x: x * sig(2 * x),
        lambda x: sig(2 * x) + 2 * x * sig(2 * x) * (1 - sig(2 * x)),
    ),
    "softplus": (lambda x: torch.log1p(torch.exp(x)), lambda x: sig(x)),
    "identity": (lambda x: x, lambda x: torch.ones_like(x)),
    "srelu": (
        lambda x: torch.where(
            x >= 0.4, 0.4 + 0.2 * (x - 0.4), torch.where(x <= -0.4, -0.4 + 0.2 * (x + 0.4), x)
        ),
        lambda x: slopes((x >= 0.4) | (x <= -0.4), 0.2, 1.0),
    ),
}
SPECS = {
    "leaky_relu_0.1": {"name": "leaky_relu", "negative_slope": 0.1},
    "swish_beta2": {"name": "swish", "beta": 2.0},
}


@pytest.mark.parametrize("key", sorted(CLOSED_FORMS))
def test_value_and_gradient_match_closed_form(key):
    value, derivative = CLOSED_FORMS[key]
    act = make_activation(SPECS.get(key, key), num_features=1).double()
    if key == "srelu":  # float32-born parameters: refill with the exact defaults in float64
        params = (act.t_left, act.a_left, act.t_right, act.a_right)
        for p, v in zip(params, (-0.4, 0.2, 0.4, 0.2), strict=True):
            p.data.fill_(v)
    x = X.clone().view(-1, 1).requires_grad_(True)  # (N, 1): one unit
    y = act(x)
    torch.testing.assert_close(y.detach().view(-1), value(X), rtol=1e-10, atol=1e-12)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad.view(-1), derivative(X), rtol=1e-10, atol=1e-12)


def test_selu_constants_are_lecture_001s_and_torchs():
    assert SELU_ALPHA == pytest.approx(1.6732632423543772848170429916717, abs=1e-15)
    assert SELU_LAMBDA == pytest.approx(1.0507009873554804934193349852946, abs=1e-15)
    # self-normalizing: N(0,1) input keeps mean 0 and variance 1 (Klambauer et al.)
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = make_activation("selu")(z)
    assert abs(out.mean().item()) < 0.01 and abs(out.var().item() - 1) < 0.01


def test_gradcheck_maxout_srelu_swish_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(Maxout(3), (x,))
    srelu = SReLU(6, t_left=-0.5, a_left=0.3, t_right=0.6, a_right=1.7).double()
    xs = torch.rand(5, 6, dtype=torch.float64, generator=g) * 4 - 2
    xs = xs[(xs + 0.5).abs().gt(1e-3).all(1) & (xs - 0.6).abs().gt(1e-3).all(1)].requires_grad_(
        True
    )
    assert torch.autograd.gradcheck(srelu, (xs,))
    # and the gradient of the four per-unit parameters, through the module itself
    names = ("t_left", "a_left", "t_right", "a_right")

    def f(*params):
        named = dict(zip(names, params, strict=True))
        return torch.func.functional_call(srelu, named, (xs.detach(),))

    params = tuple(getattr(srelu, n).detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(f, params)
    swish = Swish(beta=1.5, learnable=True).double()
    assert torch.autograd.gradcheck(swish, (x,))
    assert torch.autograd.gradcheck(
        lambda b: x * torch.sigmoid(b * x),
        (torch.tensor(1.5, dtype=torch.float64, requires_grad=True),),
    )


def test_srelu_parameters_learn_per_unit():
    s = SReLU(3).double()
    x = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    s(x).sum().backward()
    # unit 0 is right of t_r: d/da_r = x - t_r = 0.6, d/dt_r = 1 - a_r = 0.8; unit 2 mirrors on
    # the left
    torch.testing.assert_close(s.a_right.grad, torch.tensor([0.6, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s.t_right.grad, torch.tensor([0.8, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s.a_left.grad, torch.tensor([0.0, 0.0, -0.6], dtype=torch.float64))
    torch.testing.assert_close(s.t_left.grad, torch.tensor([0.0, 0.0, 0.8], dtype=torch.float64))


def test_maxout_is_max_of_k_affine_pieces():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3 * 2)
    x = torch.randn(7, 4)
    out = Maxout(2)(lin(x))
    w, b = lin.weight.view(3, 2, 4), lin.bias.view(3, 2)
    pieces = torch.einsum("ukd,nd->nuk", w, x) + b  # w_uk^T x + b_uk
    torch.testing.assert_close(out, pieces.max(dim=2).values)
    # channels of an image work the same way
    assert Maxout(3)(torch.randn(2, 9, 4, 4)).shape == (2, 3, 4, 4)


def test_prelu_shared_or_per_channel_and_learnable_slope():
    shared = make_activation("prelu", 8)
    per = make_activation({"name": "prelu", "per_channel": True}, 8)
    assert shared.weight.numel() == 1 and per.weight.numel() == 8
    x = -torch.ones(2, 8)
    per(x).sum().backward()
    torch.testing.assert_close(per.weight.grad, torch.full((8,), -2.0))  # d/dalpha = sum of x < 0
    shared(x).sum().backward()
    torch.testing.assert_close(shared.weight.grad, torch.tensor([-16.0]))  # one slope for all
    # per channel of an image: one slope per channel, broadcast over H x W
    img = make_activation({"name": "prelu", "per_channel": True, "init": 0.1}, 3)
    with torch.no_grad():
        img.weight.copy_(torch.tensor([0.1, 0.2, 0.3]))
    out = img(-torch.ones(1, 3, 2, 2))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([-0.1, -0.2, -0.3]))


def test_swish_fixed_is_silu_and_learnable_has_parameter():
    assert isinstance(make_activation("swish"), nn.SiLU)
    learn = make_activation({"name": "swish", "beta": 1.5, "learnable": True}).double()
    assert [n for n, _ in learn.named_parameters()] == ["beta"]
    fixed = make_activation({"name": "swish", "beta": 2.0})
    assert not list(fixed.parameters()) and fixed.beta.item() == 2.0
    # d/dbeta [x sigmoid(beta x)] = x^2 sigmoid(beta x) (1 - sigmoid(beta x)), through the module
    learn(X).sum().backward()
    s = sig(1.5 * X)
    torch.testing.assert_close(learn.beta.grad, (X * X * s * (1 - s)).sum())

    def f(beta):
        return torch.func.functional_call(learn, {"beta": beta}, (X,))

    beta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (beta,))
    # and an optimizer step moves it
    before = learn.beta.item()
    torch.optim.SGD(learn.parameters(), lr=0.1).step()
    assert learn.beta.item() != before


def test_step_warns_and_has_no_gradient():
    with pytest.warns(UserWarning, match="no useful gradient|zero gradient"):
        step = make_activation("step")
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = step(x)
    assert y.tolist() == [0.0, 1.0, 1.0]
    assert not y.requires_grad


def test_unknown_activation_lists_valid_names():
    with pytest.raises(
        ModelSpecError, match=r"unknown activation 'rleu'; did you mean 'relu'\?.*valid: .*selu"
    ):
        make_activation("rleu")


def test_bad_activation_parameters_are_named():
    with pytest.raises(ModelSpecError, match=r"maxout k .* >= 2; got 1"):
        make_activation({"name": "maxout", "k": 1})
    assert make_activation({"name": "maxout", "k": 2}).k == 2  # the boundary is accepted
    with pytest.raises(
        ModelSpecError, match=r"leaky_relu negative_slope must be a number in \[0.0, 1.0\); got 1.0"
    ):
        make_activation({"name": "leaky_relu", "negative_slope": 1.0})
    with pytest.raises(
        ModelSpecError, match=r"activation 'elu' has no parameter 'slope'; its parameters: alpha"
    ):
        make_activation({"name": "elu", "slope": 1})
