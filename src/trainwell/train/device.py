"""Device choice (cuda, mps, cpu) and mixed precision: bf16 / fp16 autocast on a GPU, bf16
autocast on a CPU that computes bf16 natively."""

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


#: CPU features (names of ``torch.cpu.get_capabilities()``) with native bf16 arithmetic: x86
#: AVX512-BF16 and AMX-BF16, arm64 BF16 and SVE-BF16. Without them torch still computes bf16,
#: through slow emulated kernels (a 1024x1024 matmul runs many times slower than in fp32).
BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (the features torch reports, which it also uses
    to choose its own kernels)."""
    caps = torch.cpu.get_capabilities()
    return any(bool(caps.get(name, False)) for name in BF16_CPU_FEATURES)


def autocast_context(device: torch.device, precision: str) -> tuple[Any, Any, str]:
    """The autocast context, gradient scaler and precision actually used for ``precision`` on
    ``device``.

    fp32: no autocast. bf16 on a GPU: autocast, no scaling. fp16 on a GPU: autocast and a
    ``GradScaler``. bf16 on a CPU: ``torch.autocast("cpu", dtype=torch.bfloat16)`` where the
    CPU computes bf16 natively (:func:`cpu_supports_bf16`), else fp32 with one warning. fp16 on
    a CPU: fp32 with a warning.
    """
    if precision == "fp32":
        return contextlib.nullcontext(), _NoScaler(), "fp32"
    if device.type == "cpu":
        if precision == "bf16" and cpu_supports_bf16():
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16), _NoScaler(), "bf16"
        why = (
            "this CPU has no native bf16 arithmetic (AVX512-BF16, AMX-BF16 or arm64 BF16), "
            "and emulated bf16 is slower than fp32"
            if precision == "bf16"
            else "fp16 autocast needs a GPU"
        )
        logger.warning("train.precision %r: %s; training in fp32", precision, why)
        return contextlib.nullcontext(), _NoScaler(), "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    ctx = torch.autocast(device_type=device.type, dtype=dtype)
    if precision == "fp16":
        return ctx, torch.amp.GradScaler(device.type), precision
    return ctx, _NoScaler(), precision


__all__ = ["BF16_CPU_FEATURES", "autocast_context", "cpu_supports_bf16", "resolve_device"]
