"""Parameter penalties lambda * R(W) added to the data loss (lectures 000, 002, 003, 004)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from trainwell.errors import ConfigError
from trainwell.registry import Registry
from trainwell.train.config import PenaltyConfig


def penalized_parameters(model: nn.Module, apply_to: str = "weights") -> list[nn.Parameter]:
    """The parameters a penalty applies to.

    ``"weights"``: matrices and kernels only (``ndim >= 2``), so neither biases nor the scale and
    shift of normalization layers (lecture 002 penalizes W, not b). ``"all"``: every parameter.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return params if apply_to == "all" else [p for p in params if p.ndim >= 2]


def l2_penalty(params: Iterable[Tensor]) -> Tensor:
    """R(W) = sum_k sum_l W_kl^2 (lecture 002, "weight decay")."""
    return torch.stack([p.square().sum() for p in params]).sum()


def l1_penalty(params: Iterable[Tensor]) -> Tensor:
    """R(W) = sum_k sum_l |W_kl| (lecture 002)."""
    return torch.stack([p.abs().sum() for p in params]).sum()


def elastic_penalty(params: Iterable[Tensor], beta: float = 1.0) -> Tensor:
    """Elastic net R(W) = sum_k sum_l beta * W_kl^2 + |W_kl| (lecture 002)."""
    return torch.stack([(beta * p.square() + p.abs()).sum() for p in params]).sum()


def make_penalty(cfg: PenaltyConfig | None, model: nn.Module) -> Callable[[], Tensor] | None:
    """A no-argument function returning lambda * R(W) for ``model``, or None when off.

    Example:
        >>> lin = nn.Linear(4, 1)
        >>> pen = make_penalty(PenaltyConfig(name="l2", lam=0.5), lin)
        >>> bool(torch.isclose(pen(), 0.5 * lin.weight.square().sum()))
        True
    """
    if cfg is None or cfg.name == "none" or cfg.lam == 0:
        return None
    params = penalized_parameters(model, cfg.apply_to)
    if not params:
        return None
    lam, beta, penalty = cfg.lam, cfg.beta, PENALTIES.get(cfg.name)
    return lambda: lam * penalty(params, beta)


#: R(W) by name, ``(parameters, beta) -> scalar``; the names are ``PenaltyConfig.name``'s
#: (a test checks they agree), ``none`` aside.
PENALTIES: Registry[Callable[[list[nn.Parameter], float], Tensor]] = Registry(
    "penalty", ConfigError
)
PENALTIES.register("l2")(lambda params, beta: l2_penalty(params))
PENALTIES.register("l1")(lambda params, beta: l1_penalty(params))
PENALTIES.register("elastic")(elastic_penalty)


__all__ = [
    "PENALTIES",
    "elastic_penalty",
    "l1_penalty",
    "l2_penalty",
    "make_penalty",
    "penalized_parameters",
]
