"""Apply an init spec to a whole model: per-layer schemes, biases, the output layer(s),
residual zero-init, LSUV. The schemes themselves are :mod:`trainwell.nn.init_schemes`.

Which layer is the output layer, and which activation follows each layer, are read from the
data flow: the example batch is run through the model and the layers are seen in the order
they run, each output traced back to the layer(s) that produced it. Only without an example
batch does the order in which the layers were declared stand in for it (and the output layer's
``init_scheme`` says so).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.activations import NamedParams, activation_of
from trainwell.nn.init_schemes import InitScheme, LSUVInit, make_init

log = logging.getLogger(__name__)

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
Weighted = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d

Following = NamedParams | None


def run_model(model: nn.Module, batch: Any) -> Any:
    """``model`` applied to a batch of inputs: a tensor is one input, a tuple or list holds
    several (``model(*batch)``), a dict is passed whole (a model that reads dict batches)."""
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def first_rows(batch: Any, n: int) -> Any:
    """The first ``n`` samples of every tensor in ``batch`` (a tensor, tuple, list or dict)."""
    if isinstance(batch, torch.Tensor):
        return batch[:n] if batch.dim() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(first_rows(b, n) for b in batch)
    if isinstance(batch, Mapping):
        return {k: first_rows(v, n) for k, v in batch.items()}
    return batch


def output_tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a model's output: itself, or those of a tuple, list or dict, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in output_tensors(item)]
    if isinstance(out, Mapping):
        return [t for item in out.values() for t in output_tensors(item)]
    return []


@dataclass
class DataFlow:
    """What one forward pass of an example batch shows of a model.

    Attributes:
        order: the leaf layers (and recurrent layers) in the order they first ran.
        heads: the output layers: for each output tensor of the model, the linear/conv
            layer(s) whose output reaches it without passing another linear, conv or recurrent
            layer, in the order of the outputs.
    """

    order: list[nn.Module] = field(default_factory=list)
    heads: list[nn.Module] = field(default_factory=list)


def _feeding_layers(fn: Any, layer_of: dict[Any, nn.Module]) -> list[nn.Module]:
    """The linear/conv layers met first when walking the autograd graph back from ``fn``."""
    found: list[nn.Module] = []
    seen: set[Any] = set()
    stack = [fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        layer = layer_of.get(node)
        if layer is not None:  # a weighted layer's output (a head), or a recurrent one (a wall)
            if isinstance(layer, WEIGHTED) and layer not in found:
                found.append(layer)
            continue
        stack.extend(reversed([nxt for nxt, _ in node.next_functions]))
    return found


def trace_data_flow(model: nn.Module, batch: Any) -> DataFlow:
    """Run two samples of ``batch`` through ``model`` (eval mode, gradients recorded, the
    random streams left as they were) and read the layer order and the output layers.

    Raises:
        ModelSpecError: the batch does not run through the model.
    """
    flow = DataFlow()
    layer_of: dict[Any, nn.Module] = {}
    seen: set[nn.Module] = set()

    def hook(module: nn.Module, _inputs: Any, out: Any) -> None:
        if module not in seen:
            seen.add(module)
            flow.order.append(module)
        if isinstance(module, (WEIGHTED, RECURRENT)):
            for t in output_tensors(out):
                if t.grad_fn is not None:
                    layer_of.setdefault(t.grad_fn, module)

    hooks = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if not list(m.children()) or isinstance(m, RECURRENT)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            outputs = output_tensors(run_model(model, first_rows(batch, 2)))
    except Exception as exc:  # noqa: BLE001 - a user's model can raise anything
        raise ModelSpecError(
            "init: the example batch does not run through the model, so its output layer "
            f"cannot be found: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    traced = [out for out in outputs if out.grad_fn is not None]
    for out in traced:
        for layer in _feeding_layers(out.grad_fn, layer_of):
            if layer not in flow.heads:
                flow.heads.append(layer)
    if outputs and not traced:  # no autograd graph (frozen layers): the last linear/conv to run
        ran: list[nn.Module] = [m for m in flow.order if isinstance(m, WEIGHTED)]
        flow.heads = ran[-1:]
    return flow


def infer_followed_by(
    model: nn.Module, order: list[nn.Module] | None = None
) -> dict[nn.Module, Following]:
    """For each linear/conv layer, the first activation met after it (None if another weighted
    layer or the end comes first). ``order``: the layers in the order they run (see
    :func:`trace_data_flow`); layers it lacks are read in declaration order. A ``followed_by``
    attribute on a layer overrides."""
    found = _first_activation_after(list(model.modules()))
    if order is not None:
        found.update(_first_activation_after(order))
    for module in found:
        if "followed_by" in vars(module):
            found[module] = vars(module)["followed_by"]
    return found


def _first_activation_after(modules: list[nn.Module]) -> dict[nn.Module, Following]:
    found: dict[nn.Module, Following] = {}
    pending: list[nn.Module] = []
    for module in modules:
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
    return found


def record_scheme(module: nn.Module, description: str) -> None:
    """Record how ``module`` was initialized as ``module.init_scheme`` (the summary shows it)."""
    module.__dict__["init_scheme"] = description


def _init_recurrent(rnn: nn.Module, scheme: InitScheme) -> str:
    """Input weights by ``scheme`` (auto: lecun_normal, the lectures' Xavier, for tanh),
    recurrent weights by the scheme's :meth:`~InitScheme.recurrent_scheme` (orthogonal under
    auto and lsuv, Saxe et al.), each gate's block separately; biases zero."""
    gates = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}[type(rnn)]
    described = {}
    for name, param in rnn.named_parameters():
        if name.startswith("bias"):
            nn.init.zeros_(param)
            continue
        use = scheme.recurrent_scheme() if name.startswith("weight_hh") else scheme
        for block in param.data.chunk(gates, dim=0):  # one block per gate
            described[name.split("_l")[0]] = use.weight_(block, ("tanh", {}))
    return "; ".join(f"{k}: {v}" for k, v in described.items())


def init_model_(
    model: nn.Module,
    spec: str | dict[str, Any] = "auto",
    example_batch: Any = None,
    zero_init_residual: bool = True,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """Initialize every linear, conv, norm and recurrent layer of ``model`` in place.

    The output layer(s) (bias 0; under ``auto`` also weights x :data:`HEAD_SCALE`) and the
    activation after each layer are found by running the example batch through the model: the
    output layers are those whose output becomes the model's output (one per output of a model
    returning a tuple or a dict), wherever they were declared. Without a batch (and without
    ``input_shape``), the last declared linear/conv layer stands for the output layer.

    Args:
        model: any module.
        spec: an init name or table (``{"name": "kaiming_normal", "bias": 0.01}``).
        example_batch: a batch of inputs: a tensor, a tuple of tensors (several inputs) or a
            dict (read whole by the model); needed by ``lsuv``.
        zero_init_residual: zero the last layer of each residual branch (``zero_init_last``).
        input_shape: per-sample input shape; without an example batch, a batch of zeros of this
            shape is run instead to find the output layer (not enough for ``lsuv``).

    Returns:
        The model, with ``init_scheme`` recorded on each initialized module.

    Raises:
        ModelSpecError: the batch does not run through the model, or ``lsuv`` has no batch.

    Example:
        >>> net = init_model_(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> net[0].init_scheme
        'kaiming_normal(fan_in, relu) std=0.7071'
    """
    scheme, bias = make_init(spec)
    if isinstance(scheme, LSUVInit) and example_batch is None:
        raise ModelSpecError("init 'lsuv' rescales each layer on a data batch; pass example_batch")
    probe = example_batch
    if probe is None and input_shape is not None:
        probe = torch.zeros(2, *input_shape)
    if probe is not None:
        flow = trace_data_flow(model, probe)
        following = infer_followed_by(model, flow.order)
        heads, head_note = flow.heads, "output layer"
    else:
        following = infer_followed_by(model)
        weighted: list[nn.Module] = [m for m in model.modules() if isinstance(m, WEIGHTED)]
        heads = weighted[-1:]
        head_note = "output layer taken as the last declared: no example batch to trace"
    for module in model.modules():
        zero_last = zero_init_residual and getattr(module, "zero_init_last", False)
        if isinstance(module, WEIGHTED):
            is_head = any(module is h for h in heads)
            if zero_last:
                nn.init.zeros_(module.weight)
                desc = "zeros (last layer of a residual branch)"
            else:
                desc = scheme.weight_(module.weight, following.get(module))
                if is_head and scheme.head_scale is not None:
                    # a small output layer: outputs start near 0, so the initial loss is the
                    # chance loss (log C for softmax), as the debugging recipe checks (lectures
                    # 002/004); pooling and ReLU stacks otherwise start with large logits
                    with torch.no_grad():
                        module.weight.mul_(scheme.head_scale)
                    desc += f" x{scheme.head_scale:g} ({head_note})"
            if module.bias is not None:
                b = 0.0 if is_head else bias
                nn.init.constant_(module.bias, b)
                desc += f", bias={b:g}" if b else ""
            record_scheme(module, desc)
        elif isinstance(module, NORM_LAYERS) and getattr(module, "weight", None) is not None:
            nn.init.zeros_(module.weight) if zero_last else nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            record_scheme(
                module,
                "gamma=0 (last layer of a residual branch)" if zero_last else "gamma=1, beta=0",
            )
        elif isinstance(module, RECURRENT):
            record_scheme(module, _init_recurrent(module, scheme))
    if isinstance(scheme, LSUVInit):
        lsuv_(model, example_batch, tol=scheme.tol, max_iter=scheme.max_iter)
    return model


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def _layer_output(model: nn.Module, layer: nn.Module, batch: Any) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        captured.append(out)
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        run_model(model, batch)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ModelSpecError(f"lsuv: layer {type(layer).__name__} did not run on the batch")
    return captured[0]


@torch.no_grad()
def lsuv_(model: nn.Module, batch: Any, tol: float = 0.1, max_iter: int = 10) -> dict[str, float]:
    """Layer-sequential unit-variance init (Mishkin and Matas 2015), in place.

    Orthonormal weights first (see :class:`LSUVInit`), then, layer by layer in forward order,
    ``W <- W / sqrt(Var(output))`` on ``batch`` until |Var - 1| < tol or ``max_iter`` steps.
    Layers whose output is constant (e.g. zero-initialized residual branches) are left alone.

    Returns:
        The final output variance of each linear/conv layer, by module name.
    """
    names = {m: n for n, m in model.named_modules()}
    order: list[Weighted] = []

    def ran(module: nn.Module, _inputs: Any, _out: Any) -> None:
        if isinstance(module, WEIGHTED):
            order.append(module)

    hooks = [m.register_forward_hook(ran) for m in model.modules() if isinstance(m, WEIGHTED)]
    was_training = model.training
    model.eval()  # no dropout noise, running BN statistics
    try:
        run_model(model, batch)
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
                record_scheme(layer, f"lsuv (orthonormal x {scale:.3g}, output var {var:.3f})")
            log.debug("lsuv %s: output variance %.4f", names[layer], var)
    finally:
        model.train(was_training)
    return variances


__all__ = [
    "NORM_LAYERS",
    "RECURRENT",
    "WEIGHTED",
    "DataFlow",
    "infer_followed_by",
    "init_model_",
    "lsuv_",
    "record_scheme",
    "run_model",
    "trace_data_flow",
]
