"""The layers of any ``nn.Module`` in order, and which one is its head (its last layer).

Transfer learning (``trainwell.after.transfer``) and the doctor's transfer check read a model
through these: a *layer* is a module that holds parameters or buffers of its own (a ``Linear``,
a ``Conv2d``, a ``BatchNorm2d``); the *head* is the last of them in registration order, the
*backbone* every layer before it.
"""

from __future__ import annotations

from torch import nn


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of each module holding parameters or buffers itself, in order.

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        >>> [name for name, _ in layers(m)]
        ['0', '2']
    """
    out = []
    for name, module in model.named_modules():
        own = any(True for _ in module.parameters(recurse=False)) or any(
            True for _ in module.buffers(recurse=False)
        )
        if own:
            out.append((name, module))
    return out


def head_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """``(name, module)`` of the model's last layer holding parameters (its head).

    Raises:
        ValueError: the model has no parameters.
    """
    with_params = [
        (name, m) for name, m in layers(model) if any(True for _ in m.parameters(recurse=False))
    ]
    if not with_params:
        raise ValueError(f"{type(model).__name__} has no parameters, hence no head")
    return with_params[-1]


def tensor_names(model: nn.Module, layer: str) -> list[str]:
    """The state-dict names of one layer's own parameters and buffers."""
    module = model.get_submodule(layer)
    prefix = f"{layer}." if layer else ""
    names = [prefix + n for n, _ in module.named_parameters(recurse=False)]
    names += [prefix + n for n, _ in module.named_buffers(recurse=False)]
    return names


__all__ = ["head_layer", "layers", "tensor_names"]
