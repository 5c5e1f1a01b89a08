"""Device choice (cuda, mps, cpu) and mixed precision (bf16 / fp16 autocast on a GPU)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch

from trainwell.errors import ConfigError

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"train.device is {device!r} but no CUDA GPU is available; use 'auto' or 'cpu'"
        )
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("train.device is 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(device)


class _NoScaler:
    """The GradScaler interface, doing nothing (fp32 and bf16 need no loss scaling)."""

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        return None

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def update(self) -> None:
        return None


def autocast_context(device: torch.device, precision: str) -> tuple[Any, Any]:
    """The autocast context and gradient scaler for ``precision`` on ``device``.

    fp32, or any precision on a CPU: no autocast (with a warning for bf16/fp16 on a CPU).
    bf16 on a GPU: autocast, no scaling. fp16 on a GPU: autocast and a ``GradScaler``.
    """
    if precision == "fp32":
        return contextlib.nullcontext(), _NoScaler()
    if device.type == "cpu":
        logger.warning("train.precision %r needs a GPU; training in fp32 on the CPU", precision)
        return contextlib.nullcontext(), _NoScaler()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    ctx = torch.autocast(device_type=device.type, dtype=dtype)
    if precision == "fp16":
        return ctx, torch.amp.GradScaler(device.type)
    return ctx, _NoScaler()


__all__ = ["autocast_context", "resolve_device"]
