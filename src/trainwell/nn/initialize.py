"""Apply an init spec to a whole model: per-layer schemes, biases, residual zero-init, LSUV."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.activations import Maxout, SReLU, Step, Swish
from trainwell.nn.init import (
    NORM_LAYERS,
    RECURRENT,
    WEIGHTED,
    AutoInit,
    InitScheme,
    LSUVInit,
    OrthogonalInit,
    make_init,
)

log = logging.getLogger(__name__)

#: Under ``init = "auto"`` the output layer's weights are scaled by this after their scheme.
HEAD_SCALE = 0.1

_ACTIVATION_CLASSES: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.ELU: "elu",
    nn.GELU: "gelu",
    nn.SiLU: "swish",
    Swish: "swish",
    nn.Softplus: "softplus",
    nn.SELU: "selu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    Maxout: "maxout",
    SReLU: "srelu",
    Step: "step",
}

Following = tuple[str, dict[str, Any]] | None


def activation_of(module: nn.Module) -> Following:
    """The activation name and parameters of ``module``, or None if it is not an activation."""
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu", {"negative_slope": module.negative_slope}
    if isinstance(module, nn.PReLU):
        return "prelu", {"init": float(module.weight.detach().mean())}
    for cls, name in _ACTIVATION_CLASSES.items():
        if isinstance(module, cls):
            return name, {}
    if getattr(module, "activation_name", None) == "identity":
        return "identity", {}
    return None


def infer_followed_by(model: nn.Module) -> dict[nn.Module, Following]:
    """For each linear/conv layer, the first activation met after it in module order (None if
    another weighted layer or the end comes first). A ``followed_by`` attribute overrides."""
    found: dict[nn.Module, Following] = {}
    pending: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, (WEIGHTED, RECURRENT)):
            for layer in pending:
                found[layer] = None
            pending = [module] if isinstance(module, WEIGHTED) else []
            if isinstance(module, RECURRENT):
                found[module] = ("tanh", {})
            continue
        act = activation_of(module)
        if act is not None and pending:
            for layer in pending:
                found[layer] = act
            pending = []
    for layer in pending:
        found[layer] = None
    for module in found:
        if hasattr(module, "followed_by"):
            found[module] = module.followed_by
    return found


def _init_recurrent(rnn: nn.Module, scheme: InitScheme) -> str:
    """Input weights by ``scheme`` (auto: Xavier for tanh), recurrent weights orthogonal under
    auto (Saxe et al.), each gate's block separately; biases zero."""
    gates = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}[type(rnn)]
    described = {}
    for name, param in rnn.named_parameters():
        if name.startswith("bias"):
            nn.init.zeros_(param)
            continue
        use = scheme
        if name.startswith("weight_hh") and isinstance(scheme, (AutoInit, LSUVInit)):
            use = OrthogonalInit()
        for block in param.data.chunk(gates, dim=0):  # one block per gate
            described[name.split("_l")[0]] = use.weight_(block, ("tanh", {}))
    return "; ".join(f"{k}: {v}" for k, v in described.items())


def init_model_(
    model: nn.Module,
    spec: str | dict[str, Any] = "auto",
    example_batch: torch.Tensor | None = None,
    zero_init_residual: bool = True,
) -> nn.Module:
    """Initialize every linear, conv, norm and recurrent layer of ``model`` in place.

    Args:
        model: any module; the activation after each layer is found in module order.
        spec: an init name or table (``{"name": "kaiming_normal", "bias": 0.01}``).
        example_batch: a data batch, needed by ``lsuv``.
        zero_init_residual: zero the last layer of each residual branch (``zero_init_last``).

    Returns:
        The model, with ``init_scheme`` recorded on each initialized module.

    Example:
        >>> net = init_model_(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> net[0].init_scheme
        'kaiming_normal(fan_in, relu) std=0.7071'
    """
    scheme, bias = make_init(spec)
    following = infer_followed_by(model)
    weighted = [m for m in model.modules() if isinstance(m, WEIGHTED)]
    head = weighted[-1] if weighted else None
    for module in model.modules():
        zero_last = zero_init_residual and getattr(module, "zero_init_last", False)
        if isinstance(module, WEIGHTED):
            if zero_last:
                nn.init.zeros_(module.weight)
                desc = "zeros (last layer of a residual branch)"
            else:
                desc = scheme.weight_(module.weight, following.get(module))
                if module is head and isinstance(scheme, AutoInit):
                    # a small output layer: outputs start near 0, so the initial loss is the
                    # chance loss (log C for softmax), as the debugging recipe checks (lectures
                    # 002/004); pooling and ReLU stacks otherwise start with large logits
                    with torch.no_grad():
                        module.weight.mul_(HEAD_SCALE)
                    desc += f" x{HEAD_SCALE:g} (output layer)"
            if module.bias is not None:
                b = 0.0 if module is head else bias
                nn.init.constant_(module.bias, b)
                desc += f", bias={b:g}" if b else ""
            module.init_scheme = desc
        elif isinstance(module, NORM_LAYERS) and getattr(module, "weight", None) is not None:
            nn.init.zeros_(module.weight) if zero_last else nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.init_scheme = (
                "gamma=0 (last layer of a residual branch)" if zero_last else "gamma=1, beta=0"
            )
        elif isinstance(module, RECURRENT):
            module.init_scheme = _init_recurrent(module, scheme)
    if isinstance(scheme, LSUVInit):
        if example_batch is None:
            raise ModelSpecError(
                "init 'lsuv' rescales each layer on a data batch; pass example_batch"
            )
        lsuv_(model, example_batch, tol=scheme.tol, max_iter=scheme.max_iter)
    return model


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def _layer_output(model: nn.Module, layer: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        captured.append(out)
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        model(batch)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ModelSpecError(f"lsuv: layer {type(layer).__name__} did not run on the batch")
    return captured[0]


@torch.no_grad()
def lsuv_(
    model: nn.Module, batch: torch.Tensor, tol: float = 0.1, max_iter: int = 10
) -> dict[str, float]:
    """Layer-sequential unit-variance init (Mishkin and Matas 2015), in place.

    Orthonormal weights first (see :class:`LSUVInit`), then, layer by layer in forward order,
    ``W <- W / sqrt(Var(output))`` on ``batch`` until |Var - 1| < tol or ``max_iter`` steps.
    Layers whose output is constant (e.g. zero-initialized residual branches) are left alone.

    Returns:
        The final output variance of each linear/conv layer, by module name.
    """
    names = {m: n for n, m in model.named_modules()}
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, WEIGHTED)
    ]
    was_training = model.training
    model.eval()  # no dropout noise, running BN statistics
    try:
        model(batch)
    finally:
        for h in hooks:
            h.remove()
    variances: dict[str, float] = {}
    try:
        for layer in dict.fromkeys(order):  # first call order, no repeats
            if layer.bias is not None:
                layer.bias.zero_()
            scale = 1.0
            var = float(_layer_output(model, layer, batch).var())
            for _ in range(max_iter):
                if abs(var - 1.0) < tol or var == 0.0 or not math.isfinite(var):
                    break
                layer.weight.div_(math.sqrt(var))
                scale /= math.sqrt(var)
                var = float(_layer_output(model, layer, batch).var())
            variances[names[layer]] = var
            if not getattr(layer, "zero_init_last", False):
                layer.init_scheme = f"lsuv (orthonormal x {scale:.3g}, output var {var:.3f})"
            log.debug("lsuv %s: output variance %.4f", names[layer], var)
    finally:
        model.train(was_training)
    return variances
