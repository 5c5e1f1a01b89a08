"""Initialization schemes by name and the ``auto`` policy (lectures 000-003): what fills one
weight tensor. Applying a scheme to a whole model is :mod:`trainwell.nn.init_model`.

A scheme fills one weight tensor and returns a short description of what it did; that
description is recorded on each module as ``module.init_scheme`` (shown by the summary).
For convolutions ``fan_in = kernel height x kernel width x input channels`` (lecture 001).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any, Literal

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.activations import ACTIVATIONS, NamedParams, auto_scheme
from trainwell.nn.specs import call_with_params, parse_spec, require_float, require_int
from trainwell.registry import Registry

INITS: Registry[type[InitScheme]] = Registry("init", ModelSpecError)

#: Under ``init = "auto"`` the output layer's weights are scaled by this after their scheme.
HEAD_SCALE = 0.1


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear (out, in) or conv (out, in, kh, kw) weight."""
    if weight.dim() < 2:
        raise ModelSpecError(
            f"fan_in needs a weight with at least 2 dimensions; got shape {tuple(weight.shape)}"
        )
    receptive = math.prod(weight.shape[2:])  # kh * kw for conv2d, 1 for linear
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _mode(mode: str) -> str:
    if mode not in ("fan_in", "fan_avg", "fan_out"):
        raise ModelSpecError(f"init mode must be 'fan_in', 'fan_avg' or 'fan_out'; got {mode!r}")
    return mode


def _fan(weight: torch.Tensor, mode: str) -> float:
    fan_in, fan_out = fans(weight)
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


class InitScheme(ABC):
    """Base: ``weight_(w, followed_by)`` fills ``w`` in place and returns a description.

    Attributes:
        head_scale: when set, the model's output layer(s) are scaled by it after the scheme,
            and their biases are 0 (``auto``: outputs start near 0, the chance loss).
    """

    name = "scheme"
    head_scale: float | None = None

    @abstractmethod
    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        """Fill ``w`` in place; ``followed_by`` is the next activation and its parameters."""

    def recurrent_scheme(self) -> InitScheme:
        """The scheme for a recurrent layer's hidden-to-hidden weights (default: this one)."""
        return self


def _warn_symmetry(what: str) -> None:
    warnings.warn(
        f"{what} init gives every unit of a layer the same weights, so they compute the same "
        "output and receive the same gradient: the symmetry is never broken and the layer "
        "behaves like a single unit (lecture 000). Use a random init such as 'auto'.",
        UserWarning,
        stacklevel=4,
    )


@INITS.register("zeros", "zero")
class ZerosInit(InitScheme):
    name = "zeros"

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        _warn_symmetry("a zeros")
        nn.init.zeros_(w)
        return "zeros"


@INITS.register("constant")
class ConstantInit(InitScheme):
    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        self.value = require_float("init constant value", value)

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        _warn_symmetry("a constant")
        nn.init.constant_(w, self.value)
        return f"constant({self.value})"


@INITS.register("normal", "gaussian")
class NormalInit(InitScheme):
    """N(mean, std^2); lecture 001's small random numbers use std = 0.01."""

    name = "normal"

    def __init__(self, std: float = 0.01, mean: float = 0.0) -> None:
        self.std = require_float("init normal std", std, low=0.0, low_open=True)
        self.mean = require_float("init normal mean", mean)

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        nn.init.normal_(w, self.mean, self.std)
        return f"normal(std={self.std:g})"


@INITS.register("uniform")
class UniformInit(InitScheme):
    """U(a, b)."""

    name = "uniform"

    def __init__(self, a: float = -0.05, b: float = 0.05) -> None:
        self.a = require_float("init uniform a", a)
        self.b = require_float("init uniform b", b)
        if self.a >= self.b:
            raise ModelSpecError(f"init uniform needs a < b; got a={self.a}, b={self.b}")

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        nn.init.uniform_(w, self.a, self.b)
        return f"uniform({self.a:g}, {self.b:g})"


class _StdScheme(InitScheme):
    """A scheme defined by a target std; ``uniform`` variants use bound = sqrt(3) * std."""

    uniform = False

    @abstractmethod
    def std(self, w: torch.Tensor) -> float:
        """The target standard deviation for ``w``'s fans."""

    @abstractmethod
    def label(self) -> str:
        """The scheme's name as ``model summary`` shows it."""

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        std = self.std(w)
        with torch.no_grad():
            if self.uniform:
                bound = math.sqrt(3.0) * std  # Var(U(-b, b)) = b^2 / 3
                w.uniform_(-bound, bound)
            else:
                w.normal_(0.0, std)
        return f"{self.label()} std={std:.4g}"


@INITS.register("xavier_normal", "glorot_normal", "xavier", "glorot")
class XavierNormalInit(_StdScheme):
    """Xavier/Glorot as torch's ``nn.init.xavier_normal_``: std = gain * sqrt(2 / (fan_in +
    fan_out)) (Glorot and Bengio). The lectures' "Xavier", std = 1 / sqrt(fan_in), is
    ``lecun_normal``."""

    name = "xavier_normal"

    def __init__(self, gain: float = 1.0, mode: str | None = None) -> None:
        if mode is not None and mode != "fan_avg":
            raise ModelSpecError(
                f"init {self.name} is torch's std = gain * sqrt(2 / (fan_in + fan_out)) and takes "
                f"no mode {mode!r}; for the lectures' std = 1 / sqrt(fan_in) use "
                f"'{self.name.replace('xavier', 'lecun')}'"
            )
        self.gain = require_float("init xavier gain", gain, low=0.0, low_open=True)

    def std(self, w: torch.Tensor) -> float:
        return self.gain / math.sqrt(_fan(w, "fan_avg"))

    def label(self) -> str:
        return self.name if self.gain == 1.0 else f"{self.name}(gain={self.gain:g})"


@INITS.register("xavier_uniform", "glorot_uniform")
class XavierUniformInit(XavierNormalInit):
    """torch's ``nn.init.xavier_uniform_``: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""

    name = "xavier_uniform"
    uniform = True


@INITS.register("kaiming_normal", "he_normal", "kaiming", "he", "msra")
class KaimingNormalInit(_StdScheme):
    """Kaiming/He as torch's ``nn.init.kaiming_normal_``: std = gain / sqrt(fan), with torch's
    ``calculate_gain(nonlinearity, negative_slope)``: sqrt(2) for a ReLU, sqrt(2 / (1 + a^2))
    for a leaky ReLU of slope a (lecture 001: std = sqrt(2 / Din)); ``mode`` fan_in (torch's
    default), fan_out, or fan_avg."""

    name = "kaiming_normal"

    def __init__(
        self, nonlinearity: str = "relu", negative_slope: float = 0.0, mode: str = "fan_in"
    ) -> None:
        if nonlinearity not in ("relu", "leaky_relu"):
            raise ModelSpecError(
                f"init kaiming nonlinearity must be 'relu' or 'leaky_relu'; got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        slope = require_float("init kaiming negative_slope", negative_slope, low=0.0)
        self.negative_slope = slope if nonlinearity == "leaky_relu" else 0.0
        self.mode = _mode(mode)

    def gain(self) -> float:
        kind: Literal["relu", "leaky_relu"] = (
            "leaky_relu" if self.nonlinearity == "leaky_relu" else "relu")
        return nn.init.calculate_gain(kind, self.negative_slope)

    def std(self, w: torch.Tensor) -> float:
        return self.gain() / math.sqrt(_fan(w, self.mode))

    def label(self) -> str:
        slope = f", a={self.negative_slope:g}" if self.nonlinearity == "leaky_relu" else ""
        return f"{self.name}({self.mode}, {self.nonlinearity}{slope})"


@INITS.register("kaiming_uniform", "he_uniform")
class KaimingUniformInit(KaimingNormalInit):
    """torch's ``nn.init.kaiming_uniform_``: U(-b, b), b = sqrt(3) * the normal's std."""

    name = "kaiming_uniform"
    uniform = True


@INITS.register("lecun_normal", "lecun")
class LecunNormalInit(_StdScheme):
    """LeCun: std = gain / sqrt(fan_in). With gain 1 it is the lectures' "Xavier" (lecture 001:
    std = 1 / sqrt(Din), the tanh init) and the init SELU's self-normalization assumes
    (Klambauer et al.)."""

    name = "lecun_normal"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = require_float("init lecun gain", gain, low=0.0, low_open=True)

    def std(self, w: torch.Tensor) -> float:
        return self.gain / math.sqrt(fans(w)[0])

    def label(self) -> str:
        return self.name if self.gain == 1.0 else f"{self.name}(gain={self.gain:g})"


@INITS.register("lecun_uniform")
class LecunUniformInit(LecunNormalInit):
    """LeCun uniform: U(-b, b), b = gain * sqrt(3 / fan_in)."""

    name = "lecun_uniform"
    uniform = True


@INITS.register("orthogonal")
class OrthogonalInit(InitScheme):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013); conv kernels are flattened."""

    name = "orthogonal"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = require_float("init orthogonal gain", gain, low=0.0, low_open=True)

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        nn.init.orthogonal_(w, gain=self.gain)
        return f"orthogonal(gain={self.gain:g})"


@INITS.register("lsuv")
class LSUVInit(OrthogonalInit):
    """LSUV (Mishkin and Matas 2015): orthonormal, then each layer rescaled on a data batch to
    unit output variance. ``weight_`` does the orthonormal part; :func:`lsuv_` the rest."""

    name = "lsuv"

    def __init__(self, tol: float = 0.1, max_iter: int = 10) -> None:
        super().__init__(1.0)
        self.tol = require_float("init lsuv tol", tol, low=0.0, low_open=True)
        self.max_iter = require_int("init lsuv max_iter", max_iter, low=1)

    def recurrent_scheme(self) -> InitScheme:
        return OrthogonalInit()


# ---------------------------------------------------------------------------- auto policy

# The activation that follows a layer -> the scheme ``init = "auto"`` uses (docs/models.md). Each
# activation's choice is registered with it (``Activation.auto_init``); this is the same, read
# from the registry, with the default parameters of each activation.
AUTO_TABLE: dict[str, NamedParams] = {
    name: ACTIVATIONS.get(name).auto_init({}) for name in ACTIVATIONS.names()
}


@INITS.register("auto")
class AutoInit(InitScheme):
    """Picks the scheme from the activation that follows each layer (:data:`AUTO_TABLE`), and
    starts the output layer small (x :data:`HEAD_SCALE`)."""

    name = "auto"
    head_scale = HEAD_SCALE

    def resolve(self, followed_by: NamedParams | None) -> InitScheme:
        scheme_name, scheme_params = auto_scheme(followed_by)
        return INITS.get(scheme_name)(**scheme_params)

    def weight_(self, w: torch.Tensor, followed_by: NamedParams | None = None) -> str:
        return self.resolve(followed_by).weight_(w, followed_by)

    def recurrent_scheme(self) -> InitScheme:
        return OrthogonalInit()  # Saxe et al.: orthogonal recurrent weights


def list_inits() -> list[str]:
    """The registered init names (aliases not included)."""
    return INITS.names()


def make_init(spec: str | dict[str, Any]) -> tuple[InitScheme, float]:
    """Parse an init spec into its scheme and the constant for hidden-layer biases.

    Every scheme takes ``bias`` (default 0): the value of every bias except the output layer's,
    e.g. lecture 003's small positive 0.01 for ReLU units.

    Example:
        >>> scheme, bias = make_init({"name": "kaiming_normal", "bias": 0.01})
        >>> scheme.label(), bias
        ('kaiming_normal(fan_in, relu)', 0.01)
    """
    name, params = parse_spec(spec, "init")
    bias = require_float("init bias", params.pop("bias", 0.0))
    canonical = INITS.canonical(name)
    return call_with_params(INITS.get(canonical), "init", canonical, params), bias


__all__ = [
    "AUTO_TABLE",
    "HEAD_SCALE",
    "INITS",
    "AutoInit",
    "InitScheme",
    "LSUVInit",
    "OrthogonalInit",
    "fans",
    "list_inits",
    "make_init",
]
