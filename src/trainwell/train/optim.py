"""Optimizers from ``torch.optim`` under the lectures' names and defaults (lecture 002)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from trainwell.train.config import OPTIMIZER_NAMES, OPTIMIZER_TABLE, OptimizerConfig

logger = logging.getLogger(__name__)


def list_optimizers() -> list[str]:
    """The optimizer names ``train.optimizer.name`` accepts."""
    return OPTIMIZER_NAMES.names()


def _fused_ok(cls: type[torch.optim.Optimizer], params: list[nn.Parameter]) -> bool:
    if "fused" not in inspect.signature(cls.__init__).parameters or not params:
        return False
    device = params[0].device.type
    return device in {"cpu", "cuda", "mps"} and all(p.is_floating_point() for p in params)


def make_optimizer(
    cfg: OptimizerConfig | dict[str, Any] | str,
    params: Iterable[nn.Parameter] | nn.Module,
) -> torch.optim.Optimizer:
    """The torch optimizer ``cfg`` names, over ``params``, with a fused kernel where there is one.

    Example:
        >>> opt = make_optimizer("nesterov", nn.Linear(2, 1))
        >>> opt.param_groups[0]["nesterov"], opt.param_groups[0]["momentum"]
        (True, 0.9)
    """
    if isinstance(cfg, str):
        cfg = OptimizerConfig(name=cfg)
    elif isinstance(cfg, dict):
        cfg = OptimizerConfig(**cfg)
    if isinstance(params, nn.Module):
        params = params.parameters()
    params = [p for p in params if p.requires_grad]
    cls = getattr(torch.optim, OPTIMIZER_TABLE[cfg.name][0])
    kwargs = cfg.kwargs()
    fused = cfg.fused if cfg.fused is not None else _fused_ok(cls, params)
    if fused:
        try:
            return cls(params, **kwargs, fused=True)
        except (RuntimeError, TypeError, ValueError) as exc:  # no fused kernel for this device
            if cfg.fused:
                raise
            logger.debug("fused %s unavailable (%s); using foreach", cls.__name__, exc)
    if "foreach" in inspect.signature(cls.__init__).parameters:
        kwargs["foreach"] = True
    return cls(params, **kwargs)


__all__ = ["list_optimizers", "make_optimizer"]
