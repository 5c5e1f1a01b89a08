"""Activations by name (lectures 000-004): torch's modules where they exist, the rest here.

Every factory takes ``num_features`` (the channel or unit count of the input, used by per-unit
parameters) and the activation's own keyword parameters, and validates them. Each registered
activation also says which module classes it builds (so that a model of the user's own is read
the same way), which init ``init = "auto"`` gives the layer before it, and how many inputs per
unit it consumes: the init policy and the builders ask the registry, never a list of names.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.specs import call_with_params, parse_spec, require_float, require_int
from trainwell.registry import Registry

# Lecture 001 (Klambauer et al. 2017): the fixed point constants of self-normalizing nets.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946

LEAKY_SLOPE = 0.01  # lecture 001: max(0.01x, x)
PRELU_INIT = 0.25  # He et al. 2015 start the learned slope here
MAXOUT_K = 2

#: a name and its parameters: an activation (as ``activation_of`` reads it from a module), or
#: the init scheme ``init = "auto"`` picks for the layer before it
NamedParams = tuple[str, dict[str, Any]]


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
                f"maxout with k={self.k} needs an input width divisible by {self.k}; "
                f"got {x.shape[1]}"
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


def _no_params(module: nn.Module) -> dict[str, Any]:
    return {}


def _one_input(params: dict[str, Any]) -> int:
    return 1


def _scheme(name: str, **params: Any) -> Callable[[dict[str, Any]], NamedParams]:
    return lambda _activation_params: (name, dict(params))


RELU_GAIN = _scheme("kaiming_normal", nonlinearity="relu")
UNIT_GAIN = _scheme("lecun_normal")  # the lectures' "Xavier": std = 1 / sqrt(fan_in)


@dataclass(frozen=True)
class Activation:
    """One registered activation.

    Attributes:
        factory: ``factory(num_features, **params) -> nn.Module``.
        modules: the module classes it builds; a model of the user's own that uses one of them
            is read as using this activation (empty: recognised only when built by name).
        auto_init: ``auto_init(params) -> (scheme, scheme params)``, the init ``init = "auto"``
            gives a layer that this activation follows (docs/models.md).
        params_of: the parameters the init policy reads back from a built module.
        expansion: ``expansion(params)``, inputs consumed per output unit (maxout's k).
    """

    factory: Callable[..., nn.Module]
    modules: tuple[type[nn.Module], ...] = ()
    auto_init: Callable[[dict[str, Any]], NamedParams] = UNIT_GAIN
    params_of: Callable[[nn.Module], dict[str, Any]] = _no_params
    expansion: Callable[[dict[str, Any]], int] = _one_input


ACTIVATIONS: Registry[Activation] = Registry("activation", ModelSpecError)


def register_activation(
    name: str, *aliases: str, **entry: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory under ``name``; ``entry`` holds the other fields of
    :class:`Activation`."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ACTIVATIONS.register(name, *aliases)(Activation(factory, **entry))
        return factory

    return deco


@register_activation("identity", "linear")
def _identity(num_features: int | None = None) -> nn.Module:
    return nn.Identity()  # not matched by class: an Identity is also a "no norm" placeholder


@register_activation("sigmoid", modules=(nn.Sigmoid,))
def _sigmoid(num_features: int | None = None) -> nn.Module:
    return nn.Sigmoid()


@register_activation("tanh", modules=(nn.Tanh,))
def _tanh(num_features: int | None = None) -> nn.Module:
    return nn.Tanh()


@register_activation("relu", modules=(nn.ReLU,), auto_init=RELU_GAIN)
def _relu(num_features: int | None = None) -> nn.Module:
    return nn.ReLU()


def _leaky_gain(slope_param: str, default: float) -> Callable[[dict[str, Any]], NamedParams]:
    """Kaiming's leaky ReLU gain with the slope read from the activation's ``slope_param``."""

    def choose(params: dict[str, Any]) -> NamedParams:
        slope = float(params.get(slope_param, default))
        return "kaiming_normal", {"nonlinearity": "leaky_relu", "negative_slope": slope}

    return choose


@register_activation(
    "leaky_relu",
    "leakyrelu",
    modules=(nn.LeakyReLU,),
    auto_init=_leaky_gain("negative_slope", LEAKY_SLOPE),  # a = the layer's slope
    params_of=lambda m: {"negative_slope": float(m.negative_slope)},
)
def _leaky_relu(num_features: int | None = None, negative_slope: float = LEAKY_SLOPE) -> nn.Module:
    # lecture 001: max(0.01x, x); lecture 000 shows the 0.1 variant
    slope = require_float(
        "leaky_relu negative_slope", negative_slope, low=0.0, high=1.0, high_open=True
    )
    return nn.LeakyReLU(slope)


@register_activation(
    "prelu",
    modules=(nn.PReLU,),
    auto_init=_leaky_gain("init", PRELU_INIT),  # a = the initial slope
    params_of=lambda m: {"init": float(m.weight.detach().mean())},
)
def _prelu(
    num_features: int | None = None, per_channel: bool = False, init: float = PRELU_INIT
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


@register_activation("elu", modules=(nn.ELU,), auto_init=RELU_GAIN)
def _elu(num_features: int | None = None, alpha: float = 1.0) -> nn.Module:
    return nn.ELU(alpha=require_float("elu alpha", alpha, low=0.0))


@register_activation("selu", modules=(nn.SELU,), auto_init=_scheme("lecun_normal"))
def _selu(num_features: int | None = None) -> nn.Module:
    return nn.SELU()  # torch uses exactly SELU_ALPHA and SELU_LAMBDA (tested)


@register_activation("gelu", modules=(nn.GELU,), auto_init=RELU_GAIN)
def _gelu(num_features: int | None = None, approximate: str = "none") -> nn.Module:
    if approximate not in ("none", "tanh"):
        raise ModelSpecError(f"gelu approximate must be 'none' or 'tanh'; got {approximate!r}")
    return nn.GELU(approximate=approximate)


@register_activation("swish", "silu", modules=(nn.SiLU, Swish), auto_init=RELU_GAIN)
def _swish(
    num_features: int | None = None, beta: float = 1.0, learnable: bool = False
) -> nn.Module:
    if not isinstance(learnable, bool):
        raise ModelSpecError(f"swish learnable must be true or false; got {learnable!r}")
    b = require_float("swish beta", beta)
    if b == 1.0 and not learnable:
        return nn.SiLU()
    return Swish(beta=b, learnable=learnable)


@register_activation("softplus", modules=(nn.Softplus,), auto_init=RELU_GAIN)
def _softplus(num_features: int | None = None, beta: float = 1.0) -> nn.Module:
    return nn.Softplus(beta=require_float("softplus beta", beta, low=0.0, low_open=True))


def _maxout_k(params: dict[str, Any]) -> int:
    return require_int("maxout k (the number of affine pieces)", params.get("k", MAXOUT_K), low=2)


# max of k pieces keeps E[h^2] (not halved as by a ReLU): unit gain
@register_activation("maxout", modules=(Maxout,), expansion=_maxout_k)
def _maxout(num_features: int | None = None, k: int = MAXOUT_K) -> nn.Module:
    return Maxout(k)


@register_activation("srelu", modules=(SReLU,))  # identity between its thresholds: unit gain
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


@register_activation("step", "heaviside", modules=(Step,))
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
        ACTIVATIONS.get(canonical).factory, "activation", canonical, params, num_features
    )
    module.activation_name = canonical  # read back by activation_of
    return module


def activation_of(module: nn.Module) -> NamedParams | None:
    """The activation name and parameters of ``module``, or None if it is not an activation.

    A module built by :func:`make_activation` carries its name; any other is matched by class
    against the registry (``nn.ReLU()`` in a model of the user's own is ``relu``).

    Example:
        >>> activation_of(nn.LeakyReLU(0.2))
        ('leaky_relu', {'negative_slope': 0.2})
    """
    name = getattr(module, "activation_name", None)
    if isinstance(name, str) and name in ACTIVATIONS:
        canonical = ACTIVATIONS.canonical(name)
        return canonical, ACTIVATIONS.get(canonical).params_of(module)
    for canonical in ACTIVATIONS.names():
        entry = ACTIVATIONS.get(canonical)
        if entry.modules and isinstance(module, entry.modules):
            return canonical, entry.params_of(module)
    return None


def auto_scheme(activation: NamedParams | None) -> NamedParams:
    """The scheme ``init = "auto"`` gives a layer followed by ``activation`` (name, params);
    no activation (an output layer) or an unknown one gets the identity's."""
    name, params = activation if activation is not None else ("identity", {})
    entry = ACTIVATIONS.get(name if name in ACTIVATIONS else "identity")
    return entry.auto_init(params)


def activation_expansion(spec: str | dict[str, Any]) -> int:
    """How many inputs per output unit the activation consumes (k for maxout, else 1)."""
    name, params = parse_spec(spec, "activation")
    return ACTIVATIONS.get(name).expansion(params)


__all__ = [
    "ACTIVATIONS",
    "RELU_GAIN",
    "SELU_ALPHA",
    "SELU_LAMBDA",
    "UNIT_GAIN",
    "Activation",
    "Maxout",
    "NamedParams",
    "SReLU",
    "Step",
    "Swish",
    "activation_expansion",
    "activation_of",
    "auto_scheme",
    "list_activations",
    "make_activation",
    "register_activation",
]
