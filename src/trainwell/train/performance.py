"""``[train] channels_last`` and ``[train] compile``: two switches that change how fast an image
model trains, not what it computes.

``channels_last`` stores the model's 4-D weights and every 4-D input batch in
``torch.channels_last`` (NHWC) memory order, the order convolution kernels prefer (oneDNN on
CPUs, tensor cores on GPUs). Values are unchanged; sums may be ordered differently, so losses
agree to float tolerance rather than bit for bit. The input batches are converted by a forward
pre-hook, so the model's state-dict names and every caller (training, evaluation, prediction)
stay as they were. It applies to images only: a table's 2-D batches have no memory format, and
a config asking for it there is refused rather than ignored.

``compile`` trains through ``torch.compile(model)``, a wrapper sharing the model's parameters,
while the trainer keeps the plain module as ``trainer.model``: its ``state_dict()`` has the
plain names (no ``_orig_mod.`` prefix), so checkpoints, ``model.safetensors``, ``predict`` and
``--resume`` work as without it, and the model a run returns predicts uncompiled. The training
step, evaluation and the test predictions go through the wrapper. Its graphs are compiled
before the first epoch by
:func:`warm_up` on the first batch (training forward and backward, then evaluation), which
leaves the weights, buffers, gradients and random streams as they were; its wall time is the
run's ``compile_time``, reported apart from the epochs' times.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from trainwell.errors import ConfigError

log = logging.getLogger(__name__)

#: the ``train.compile_backend`` names: torch's default, and its two debugging backends, which
#: compile in seconds (no code generation) and compute as eager mode does
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


def check_channels_last(input_shape: tuple[int, ...], origin: str) -> None:
    """Refuse ``train.channels_last`` for data that does not give 4-D image batches.

    Raises:
        ConfigError: ``input_shape`` is not ``(C, H, W)``.
    """
    if len(input_shape) != 3:
        raise ConfigError(
            f"train.channels_last = true stores 4-D image batches (N, C, H, W) in channels-last "
            f"order, but {origin} gives samples of shape {tuple(input_shape)}; it applies to "
            "images only: remove train.channels_last"
        )


def _channels_last_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if args and isinstance(args[0], Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def use_channels_last(model: nn.Module) -> nn.Module:
    """Put ``model``'s 4-D parameters and buffers, and from now on its 4-D input, in
    ``torch.channels_last`` order (in place); returns the model."""
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in the stubs
    model.register_forward_pre_hook(_channels_last_input)
    return model


def compile_model(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """``torch.compile(model, backend=backend)``: a wrapper that calls ``model`` through the
    compiled graphs and shares its parameters; ``model`` itself stays the plain module.

    (``model.compile()`` in place would keep the names too, but torch does not compile the
    call of its own containers, such as ``nn.Sequential``, that way: the call runs uncompiled.)
    """
    if backend not in COMPILE_BACKENDS:
        raise ConfigError(f"train.compile_backend must be one of {', '.join(COMPILE_BACKENDS)}; "
                          f"got {backend!r}")
    return torch.compile(model, backend=backend)  # type: ignore[return-value]


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each optimizer state tensor its parameter's memory layout (in place).

    A checkpoint stores tensors contiguous (NCHW), and ``Optimizer.load_state_dict`` keeps that
    layout, while a ``channels_last`` parameter is NHWC. torch's fused Adam / AdamW kernels
    pair the elements of a parameter and its moments by memory position, so mismatched layouts
    would update the wrong elements and a resumed run would drift from an uninterrupted one.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if (isinstance(value, Tensor) and value.shape == p.shape
                        and value.stride() != p.stride()):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _sum(out: Any) -> Tensor | None:
    """One scalar from a model's outputs (a tensor, or a dict / tuple of them) to backpropagate."""
    if isinstance(out, Tensor):
        return out.float().sum() if out.requires_grad else None
    parts = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    sums = [s for s in (_sum(o) for o in parts) if s is not None]
    return torch.stack(sums).sum() if sums else None


@contextlib.contextmanager
def _untouched(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Run the body, then put back the model's state (weights, BatchNorm statistics), its
    gradients, its train / eval mode and the global random streams."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {p: p.grad for p in model.parameters()}
    training = model.training
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(state[k])
        for p, g in grads.items():
            p.grad = g
        model.train(training)


def _dynamic_batch(x: Any) -> None:
    """Compile for any batch size, so the last, smaller batch and the evaluation batches reuse
    the warm-up's graphs instead of compiling again inside the epochs."""
    if isinstance(x, Tensor) and x.dim() >= 1 and len(x) > 1:
        # torch._dynamo.mark_dynamic is the way torch's dynamic-shape guide marks one dimension
        # dynamic; torch.compiler has no public equivalent for a single dimension
        import torch._dynamo

        torch._dynamo.mark_dynamic(x, 0)


def warm_up(model: nn.Module, x: Any, device: torch.device) -> float:
    """Compile ``model``'s training graphs (forward and backward) and its evaluation graph on
    the input ``x`` of one batch, leaving the model and the random streams as they were.

    Returns:
        The wall time, in seconds.
    """
    t0 = time.perf_counter()
    with _untouched(model, device):
        xa = x.detach().clone() if isinstance(x, Tensor) else x
        _dynamic_batch(xa)
        model.train()
        total = _sum(model(xa))
        if total is not None:
            total.backward()
        model.eval()
        xb = x.detach().clone() if isinstance(x, Tensor) else x
        _dynamic_batch(xb)
        with torch.inference_mode():
            model(xb)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    log.info("compiled the model in %.1f s (train.compile; not counted in the epochs' times)",
             seconds)
    return seconds


__all__ = [
    "COMPILE_BACKENDS",
    "check_channels_last",
    "compile_model",
    "match_state_layout",
    "use_channels_last",
    "warm_up",
]
