"""Activation and gradient statistics through forward hooks (lecture 001's experiment)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

RELU_LIKE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Hardswish,
)
# units saturate where the local gradient is ~0
# (lecture 001: "saturated neurons kill the gradients")
TANH_LIKE = (nn.Tanh, nn.Hardtanh, nn.Softsign)
SIGMOID_LIKE = (nn.Sigmoid, nn.Hardsigmoid, nn.LogSigmoid)
ACTIVATIONS = RELU_LIKE + TANH_LIKE + SIGMOID_LIKE
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
DROPOUT_LAYERS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
BATCHNORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
HIST_BINS = 30


def kind_of(module: nn.Module) -> str:
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return "relu"
    if isinstance(module, RELU_LIKE):
        return "relu_like"
    if isinstance(module, TANH_LIKE):
        return "tanh"
    if isinstance(module, SIGMOID_LIKE):
        return "sigmoid"
    return "linear"


def watched_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Activation modules, in forward-registration order; weighted layers when there are none."""
    acts: list[tuple[str, nn.Module]] = [
        (n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)
    ]
    if acts:
        return acts
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED)]


def unit_view(a: torch.Tensor) -> torch.Tensor:
    """(batch, units): features for (N, D), channels for (N, C, ...) pooled over positions."""
    a = a.detach().float()
    if a.ndim == 1:
        return a.reshape(-1, 1)
    if a.ndim == 2:
        return a
    return a.transpose(0, 1).reshape(a.shape[1], -1).T  # (N*positions, C)


def layer_stats(a: torch.Tensor, kind: str, hist: bool = False) -> dict[str, Any]:
    """mean, std, dead and saturated fractions (and a histogram) of one layer's output."""
    a = a.detach().float()
    flat = a.reshape(-1)
    finite = torch.isfinite(flat)
    out: dict[str, Any] = {"kind": kind, "finite": bool(finite.all())}
    if not finite.any():
        out.update(
            act_mean=float("nan"), act_std=float("nan"), dead_frac=0.0, sat_frac=0.0, sym=False
        )
        return out
    f = flat[finite]
    out["act_mean"] = f.mean().item()
    out["act_std"] = f.std(unbiased=False).item()
    units = unit_view(a)
    # dead: a unit whose output is <= 0 for every example of the batch (ReLU family)
    if kind == "relu":
        out["dead_frac"] = (units <= 0).all(0).float().mean().item()
    elif kind == "relu_like":
        out["dead_frac"] = (units <= 1e-6).all(0).float().mean().item()
    else:
        out["dead_frac"] = 0.0
    if kind == "tanh":
        out["sat_frac"] = (f.abs() > 0.99).float().mean().item()
    elif kind == "sigmoid":
        out["sat_frac"] = ((f < 0.01) | (f > 0.99)).float().mean().item()
    else:
        out["sat_frac"] = 0.0
    # symmetry: every unit computes the same value for every example (e.g. an all-zero init)
    n_units = units.shape[1]
    out["sym"] = bool(
        n_units > 1 and (units.std(1, unbiased=False) <= 1e-7 * (1 + units.abs().max())).all()
    )
    if hist:
        lo, hi = f.min().item(), f.max().item()
        if hi <= lo:
            hi = lo + 1e-6
        counts = torch.histc(f, bins=HIST_BINS, min=lo, max=hi)
        out["hist"] = {"counts": [int(c) for c in counts.tolist()], "min": lo, "max": hi}
    return out


@contextmanager
def capture(
    model: nn.Module, modules: list[tuple[str, nn.Module]] | None = None, hist: bool = False
) -> Iterator[dict[str, dict[str, Any]]]:
    """Attach forward hooks for one forward pass; yields ``{name: stats}`` filled by the pass.

    The hooks are removed when the block exits, so un-sampled steps pay nothing.
    """
    found: dict[str, dict[str, Any]] = {}
    mods = modules if modules is not None else watched_modules(model)
    handles = []
    for i, (name, mod) in enumerate(mods):
        label = name or f"{type(mod).__name__.lower()}{i}"

        def hook(
            _m: nn.Module, _inp: Any, output: Any, label: str = label, kind: str = kind_of(mod)
        ) -> None:
            if isinstance(output, torch.Tensor):
                key = label if label not in found else f"{label}#{len(found)}"
                found[key] = layer_stats(output, kind, hist)

        handles.append(mod.register_forward_hook(hook))
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def param_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own a weight (for gradient norms and update ratios)."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(getattr(m, "weight", None), nn.Parameter) and n
    ]


def grad_norms(model: nn.Module) -> dict[str, float]:
    """The L2 norm of each layer's weight gradient."""
    out = {}
    for name, mod in param_layers(model):
        weight = mod.weight
        if isinstance(weight, torch.Tensor) and weight.grad is not None:
            out[name] = weight.grad.detach().float().norm().item()
    return out


def layer_map(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """{hooked module name: (module, reported layer name)}.

    A weighted layer is reported under its own name, with the statistics of the activation that
    follows it (in registration order) or of its own output when none does.
    """
    out: dict[str, tuple[nn.Module, str]] = {}
    owner: str | None = None
    pending: dict[str, nn.Module] = {}
    for name, m in model.named_modules():
        if isinstance(m, WEIGHTED) and name:
            for n, mod in pending.items():  # previous weighted layer had no activation after it
                out[n] = (mod, n)
            pending = {name: m}
            owner = name
        elif isinstance(m, ACTIVATIONS):
            label = owner if owner is not None else (name or "activation")
            out[name] = (m, label)
            pending = {}
            owner = None
    for n, mod in pending.items():
        out[n] = (mod, n)
    return out
