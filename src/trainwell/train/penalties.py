"""Parameter penalties lambda * R(W) added to the data loss (lectures 000, 002, 003, 004)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

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
    lam, beta = cfg.lam, cfg.beta
    if not params:
        return None
    if cfg.name == "l2":
        return lambda: lam * l2_penalty(params)
    if cfg.name == "l1":
        return lambda: lam * l1_penalty(params)
    return lambda: lam * elastic_penalty(params, beta)


__all__ = ["elastic_penalty", "l1_penalty", "l2_penalty", "make_penalty", "penalized_parameters"]
