"""Activations by name (lectures 000-004): torch's modules where they exist, the rest here.

Every factory takes ``num_features`` (the channel or unit count of the input, used by per-unit
parameters) and the activation's own keyword parameters, and validates them.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.specs import call_with_params, parse_spec, require_float, require_int
from trainwell.registry import Registry

# Lecture 001 (Klambauer et al. 2017): the fixed point constants of self-normalizing nets.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946

ACTIVATIONS: Registry[Any] = Registry("activation", ModelSpecError)


def _channel_view(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape a per-channel parameter (C,) to broadcast over dim 1 of ``x``: (1, C, 1, ...)."""
    return p.view(1, -1, *([1] * (x.dim() - 2)))


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013; lectures 001, 003): the max over ``k`` affine pieces.

    The pieces are consecutive groups of ``k`` features (channels) of the input, so the layer
    before it must produce ``k`` times the wanted width: ``Linear(d, k * m)`` then ``Maxout(k)``
    computes ``max_j (w_ij^T x + b_ij)`` for each of the ``m`` units.

    Example:
        >>> Maxout(2)(torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
        tensor([[1., 3.]])
    """

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.k = require_int("maxout k (the number of affine pieces)", k, low=2)
        self.expansion = self.k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % self.k:
            raise ModelSpecError(
                f"maxout with k={self.k} needs an input width divisible by {self.k}; got {x.shape[1]}"
            )
        # (N, C*k, ...) -> (N, C, k, ...) -> max over the k pieces
        pieces = x.view(x.shape[0], x.shape[1] // self.k, self.k, *x.shape[2:])
        return pieces.amax(dim=2)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class SReLU(nn.Module):
    """S-shaped ReLU (Jin et al. 2016; lecture 004) with four learnable parameters per unit.

    ``a(x) = t_r + a_r (x - t_r)`` for ``x >= t_r``; ``x`` between; ``t_l + a_l (x - t_l)`` for
    ``x <= t_l``. The defaults are lecture 004's example (c): t_r = 0.4, a_r = 0.2, t_l = -0.4,
    a_l = 0.2.

    Example:
        >>> SReLU(1)(torch.tensor([[1.4], [0.1], [-1.4]]))
        tensor([[ 0.6000],
                [ 0.1000],
                [-0.6000]], grad_fn=<WhereBackward0>)
    """

    def __init__(
        self,
        num_features: int,
        t_left: float = -0.4,
        a_left: float = 0.2,
        t_right: float = 0.4,
        a_right: float = 0.2,
    ) -> None:
        super().__init__()
        n = require_int("srelu num_features", num_features, low=1)
        tl = require_float("srelu t_left", t_left)
        tr = require_float("srelu t_right", t_right)
        if tl > tr:
            raise ModelSpecError(f"srelu needs t_left <= t_right; got t_left={tl}, t_right={tr}")
        self.t_left = nn.Parameter(torch.full((n,), tl))
        self.a_left = nn.Parameter(torch.full((n,), require_float("srelu a_left", a_left)))
        self.t_right = nn.Parameter(torch.full((n,), tr))
        self.a_right = nn.Parameter(torch.full((n,), require_float("srelu a_right", a_right)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tl, al = _channel_view(self.t_left, x), _channel_view(self.a_left, x)
        tr, ar = _channel_view(self.t_right, x), _channel_view(self.a_right, x)
        right = tr + ar * (x - tr)
        left = tl + al * (x - tl)
        return torch.where(x >= tr, right, torch.where(x <= tl, left, x))


class Swish(nn.Module):
    """Swish ``x * sigmoid(beta x)`` (Ramachandran et al. 2017), beta fixed or learnable.

    beta = 1 is SiLU; beta -> inf tends to ReLU; beta = 0 gives x / 2.

    Example:
        >>> Swish(beta=1.0)(torch.zeros(1))
        tensor([0.])
    """

    def __init__(self, beta: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        value = torch.tensor(require_float("swish beta", beta))
        if learnable:
            self.beta = nn.Parameter(value)
        else:
            self.register_buffer("beta", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class Step(nn.Module):
    """The Heaviside step (lecture 003): 1 for x >= 0, else 0. Forward only: no useful gradient."""

    def __init__(self) -> None:
        super().__init__()
        warnings.warn(
            "the step activation has zero gradient everywhere (and none at 0), so a network "
            "using it cannot learn by gradient descent; use it for demonstrations only",
            UserWarning,
            stacklevel=2,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0).to(x.dtype)


# ---------------------------------------------------------------------------- registry


@ACTIVATIONS.register("identity", "linear")
def _identity(num_features: int | None = None) -> nn.Module:
    return nn.Identity()


@ACTIVATIONS.register("sigmoid")
def _sigmoid(num_features: int | None = None) -> nn.Module:
    return nn.Sigmoid()


@ACTIVATIONS.register("tanh")
def _tanh(num_features: int | None = None) -> nn.Module:
    return nn.Tanh()


@ACTIVATIONS.register("relu")
def _relu(num_features: int | None = None) -> nn.Module:
    return nn.ReLU()


@ACTIVATIONS.register("leaky_relu", "leakyrelu")
def _leaky_relu(num_features: int | None = None, negative_slope: float = 0.01) -> nn.Module:
    # lecture 001: max(0.01x, x); lecture 000 shows the 0.1 variant
    slope = require_float(
        "leaky_relu negative_slope", negative_slope, low=0.0, high=1.0, high_open=True
    )
    return nn.LeakyReLU(slope)


@ACTIVATIONS.register("prelu")
def _prelu(
    num_features: int | None = None, per_channel: bool = False, init: float = 0.25
) -> nn.Module:
    # lecture 001: max(alpha x, x) with alpha learned (He et al. 2015 start from 0.25)
    a = require_float("prelu init", init)
    if not isinstance(per_channel, bool):
        raise ModelSpecError(f"prelu per_channel must be true or false; got {per_channel!r}")
    if per_channel:
        if num_features is None:
            raise ModelSpecError("prelu per_channel = true needs the number of channels")
        return nn.PReLU(num_parameters=num_features, init=a)
    return nn.PReLU(num_parameters=1, init=a)


@ACTIVATIONS.register("elu")
def _elu(num_features: int | None = None, alpha: float = 1.0) -> nn.Module:
    return nn.ELU(alpha=require_float("elu alpha", alpha, low=0.0))


@ACTIVATIONS.register("selu")
def _selu(num_features: int | None = None) -> nn.Module:
    return nn.SELU()  # torch uses exactly SELU_ALPHA and SELU_LAMBDA (tested)


@ACTIVATIONS.register("gelu")
def _gelu(num_features: int | None = None, approximate: str = "none") -> nn.Module:
    if approximate not in ("none", "tanh"):
        raise ModelSpecError(f"gelu approximate must be 'none' or 'tanh'; got {approximate!r}")
    return nn.GELU(approximate=approximate)


@ACTIVATIONS.register("swish", "silu")
def _swish(
    num_features: int | None = None, beta: float = 1.0, learnable: bool = False
) -> nn.Module:
    if not isinstance(learnable, bool):
        raise ModelSpecError(f"swish learnable must be true or false; got {learnable!r}")
    b = require_float("swish beta", beta)
    if b == 1.0 and not learnable:
        return nn.SiLU()
    return Swish(beta=b, learnable=learnable)


@ACTIVATIONS.register("softplus")
def _softplus(num_features: int | None = None, beta: float = 1.0) -> nn.Module:
    return nn.Softplus(beta=require_float("softplus beta", beta, low=0.0, low_open=True))


@ACTIVATIONS.register("maxout")
def _maxout(num_features: int | None = None, k: int = 2) -> nn.Module:
    return Maxout(k)


@ACTIVATIONS.register("srelu")
def _srelu(
    num_features: int | None = None,
    t_left: float = -0.4,
    a_left: float = 0.2,
    t_right: float = 0.4,
    a_right: float = 0.2,
) -> nn.Module:
    if num_features is None:
        raise ModelSpecError("srelu has parameters per unit, so it needs the number of units")
    return SReLU(num_features, t_left, a_left, t_right, a_right)


@ACTIVATIONS.register("step", "heaviside")
def _step(num_features: int | None = None) -> nn.Module:
    return Step()


def list_activations() -> list[str]:
    """The registered activation names (aliases not included)."""
    return ACTIVATIONS.names()


def make_activation(spec: str | dict[str, Any], num_features: int | None = None) -> nn.Module:
    """Build an activation module from its spec.

    Args:
        spec: a name or a table, e.g. ``{"name": "leaky_relu", "negative_slope": 0.1}``.
        num_features: units or channels of the input (needed by srelu and per-channel prelu).

    Raises:
        ModelSpecError: unknown name (the valid ones are listed) or bad parameter.

    Example:
        >>> make_activation({"name": "leaky_relu", "negative_slope": 0.1})
        LeakyReLU(negative_slope=0.1)
    """
    name, params = parse_spec(spec, "activation")
    canonical = ACTIVATIONS.canonical(name)
    module = call_with_params(
        ACTIVATIONS.get(canonical), "activation", canonical, params, num_features
    )
    module.activation_name = canonical  # type: ignore[assignment]
    return module


def activation_expansion(spec: str | dict[str, Any]) -> int:
    """How many inputs per output unit the activation consumes (k for maxout, else 1)."""
    name, params = parse_spec(spec, "activation")
    if ACTIVATIONS.canonical(name) == "maxout":
        return require_int("maxout k (the number of affine pieces)", params.get("k", 2), low=2)
    return 1


__all__ = [
    "ACTIVATIONS",
    "SELU_ALPHA",
    "SELU_LAMBDA",
    "Maxout",
    "SReLU",
    "Step",
    "Swish",
    "activation_expansion",
    "list_activations",
    "make_activation",
]
