"""Several heads on one trunk, and the gradient reversal layer of domain-adversarial training.

Lecture 002: "the multi-layer structure makes NN suitable for multitask learning": shared lower
layers (the trunk) and one head per task (:class:`MultiHead`). Domain-adversarial training
(Ganin & Lempitsky 2015; Ganin et al., JMLR 2016) puts a domain classifier on the trunk's
features behind a :class:`GradientReversal` layer, so that the features learn to make the domains
indistinguishable while the label head learns its task. :func:`grl_lambda` and :func:`dann_lr`
are the papers' schedules of the reversal strength and the learning rate over the training
progress ``p`` in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from trainwell.errors import ConfigError


class _ReverseGrad(torch.autograd.Function):
    """Identity forward; the incoming gradient times ``-lambda_`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)  # a new tensor node, so that backward is called for it

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad.neg() * ctx.lambda_, None  # no gradient for lambda_


def reverse_gradient(x: Tensor, lambda_: float = 1.0) -> Tensor:
    """``x`` unchanged forward; ``-lambda_`` times the incoming gradient backward.

    Example:
        >>> x = torch.ones(3, requires_grad=True)
        >>> (2 * reverse_gradient(x, 0.5)).sum().backward()
        >>> x.grad
        tensor([-1., -1., -1.])
    """
    return _ReverseGrad.apply(x, float(lambda_))


def _check_lambda(lambda_: float) -> float:
    value = float(lambda_)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"GradientReversal lambda_ must be a finite number >= 0; got {lambda_!r}")
    return value


class GradientReversal(nn.Module):
    """The gradient reversal layer (Ganin & Lempitsky 2015): identity forward, ``-lambda_``
    times the gradient backward.

    Put it between the shared features and a domain classifier: the classifier learns to tell
    the domains apart while the features below receive the opposite gradient, and so learn to
    make the domains indistinguishable. ``lambda_`` may be changed between steps (set the
    attribute), as :func:`grl_lambda` schedules it; it is not a parameter and not saved.

    Args:
        lambda_: the reversal strength, >= 0.

    Example:
        >>> grl = GradientReversal(0.3)
        >>> x = torch.ones(2, requires_grad=True)
        >>> grl(x).sum().backward()
        >>> x.grad
        tensor([-0.3000, -0.3000])
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = lambda_  # checked by __setattr__, here and whenever it is set

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "lambda_":
            value = _check_lambda(value)
        super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return reverse_gradient(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"


def _check_progress(p: float) -> float:
    value = float(p)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"the training progress p must be a finite number >= 0; got {p!r}")
    return value


def grl_lambda(p: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's reversal strength at training progress ``p``:
    ``lambda_p = 2 / (1 + exp(-gamma p)) - 1``, rising from 0 to about 1.

    The domain classifier's noisy early signal is damped while the features form (2015, sec. 5.1:
    ``gamma = 10``, ``p`` the progress from 0 to 1).

    Example:
        >>> round(grl_lambda(0.1), 4), round(grl_lambda(1.0), 4)
        (0.4621, 0.9999)
    """
    p = _check_progress(p)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def dann_lr(p: float, lr0: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """The papers' learning rate at training progress ``p``: ``lr0 / (1 + alpha p)^beta``
    (Ganin & Lempitsky 2015, sec. 5.1: ``alpha = 10``, ``beta = 0.75``).

    Example:
        >>> round(dann_lr(0.5, 0.01), 6)
        0.002608
    """
    p = _check_progress(p)
    return lr0 / (1.0 + alpha * p) ** beta


class MultiHead(nn.Module):
    """A shared trunk and named heads on its features; ``forward`` returns ``{name: output}``.

    Args:
        trunk: maps the input to the shared features.
        heads: one module per head, each taking the trunk's features.

    Example:
        >>> net = MultiHead(nn.Linear(4, 8), {"digit": nn.Linear(8, 10), "parity": nn.Linear(8, 1)})
        >>> {k: tuple(v.shape) for k, v in net(torch.randn(5, 4)).items()}
        {'digit': (5, 10), 'parity': (5, 1)}
    """

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(heads, Mapping) or not heads:
            raise ConfigError(
                "MultiHead heads must be a non-empty mapping {name: module}; got "
                f"{type(heads).__name__}{'' if heads else ' (empty)'}"
            )
        for name, head in heads.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ConfigError(
                    f"MultiHead head names must be non-empty strings without '.'; got {name!r}"
                )
            if not isinstance(head, nn.Module):
                raise ConfigError(
                    f"MultiHead head {name!r} must be an nn.Module; got {type(head).__name__}"
                )
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def head_names(self) -> list[str]:
        return list(self.heads.keys())

    def features(self, x: Tensor) -> Tensor:
        """The trunk's features of ``x``, which every head (and a domain classifier) reads."""
        return self.trunk(x)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.trunk(x)
        return {name: head(f) for name, head in self.heads.items()}

    def branch(self, name: str) -> nn.Module:
        """``heads[name](trunk(x))`` as one module sharing this model's parameters."""
        if name not in self.heads:
            raise ConfigError(f"MultiHead has no head {name!r}; heads: {', '.join(self.heads)}")
        return nn.Sequential(self.trunk, self.heads[name])


__all__ = [
    "GradientReversal",
    "MultiHead",
    "dann_lr",
    "grl_lambda",
    "reverse_gradient",
]
