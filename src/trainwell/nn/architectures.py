"""The registry of architectures (``model.arch``), the pieces they share, and the MLP.

A builder takes the ``[model]`` config, the per-sample input shape and the size of the output
head, checks that the sizes fit, and returns a plain ``nn.Module``. ``mlp`` is registered here,
``cnn`` and ``resnet`` in :mod:`trainwell.nn.convnets`, ``rnn`` in :mod:`trainwell.nn.recurrent`;
:func:`trainwell.nn.build.build_model` looks the name up and checks and initializes the result.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.activations import activation_expansion, make_activation
from trainwell.nn.layers import DropConnectLinear, make_norm
from trainwell.nn.specs import parse_spec
from trainwell.registry import Registry

if TYPE_CHECKING:
    from trainwell.nn.config import ModelConfig

MODELS: Registry[Any] = Registry("model arch", ModelSpecError)


def check_arch(value: str) -> str:
    """A registered builder name, or ``python:module:factory``; anything else raises."""
    if value.startswith("python:"):
        parts = value.split(":")
        if (
            len(parts) != 3
            or not all(parts[1:])
            or not all(p.isidentifier() for p in parts[2].split("."))
        ):
            raise ModelSpecError(
                "a python model is named python:module:factory, e.g. python:mypkg.nets:make_net"
            )
        return value
    import trainwell.nn.convnets  # noqa: F401 - registers cnn and resnet
    import trainwell.nn.recurrent  # noqa: F401 - registers rnn

    return MODELS.canonical(value)


def list_models() -> list[str]:
    """The registered builder names (``python:module:factory`` is always accepted too)."""
    check_arch("mlp")  # make sure every builder module is imported
    return MODELS.names()


def dropout_kind(cfg: ModelConfig) -> str:
    """The dropout a hidden layer gets: alpha dropout for SELU nets under ``auto``."""
    if cfg.dropout_kind != "auto":
        return cfg.dropout_kind
    return "alpha" if parse_spec(cfg.activation, "activation")[0] == "selu" else "standard"


def need_dims(arch: str, input_shape: tuple[int, ...], dims: int, what: str) -> None:
    """Refuse an input shape that is not ``dims``-dimensional, naming ``arch`` and ``what``."""
    if len(input_shape) != dims or any(int(s) < 1 for s in input_shape):
        hint = ""
        if len(input_shape) == 1:
            hint = (
                '; table rows are (n_features,): use arch = "mlp", or an image source '
                '(e.g. data.source = "builtin:digits_images" for the digits as 1x8x8)'
            )
        raise ModelSpecError(
            f"model.arch = {arch!r} needs {what} per sample; got input shape "
            f"{tuple(input_shape)}{hint}"
        )


def dense_stack(cfg: ModelConfig, in_features: int, n_out: int) -> OrderedDict[str, nn.Module]:
    """Hidden layers ``Linear -> [norm] -> act -> [norm] -> dropout`` for each width, then the head.

    The norm goes before the activation by default (lecture 000: "after fully connected layers
    but before non-linearities"). Maxout's linear layer is k times wider.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    k = activation_expansion(cfg.activation)
    kind = dropout_kind(cfg)
    width_in = in_features
    norm_before = cfg.norm != "none" and cfg.norm_position == "before"
    for i, width in enumerate(cfg.hidden, start=1):
        if kind == "dropconnect" and cfg.dropout > 0:
            layers[f"fc{i}"] = DropConnectLinear(
                width_in, width * k, p=cfg.dropout, bias=not norm_before
            )
        else:
            layers[f"fc{i}"] = nn.Linear(width_in, width * k, bias=not norm_before)
        if norm_before:
            layers[f"fc{i}_norm"] = make_norm(cfg.norm, width * k, dims=1)
        layers[f"fc{i}_act"] = make_activation(cfg.activation, width * k)
        if cfg.norm != "none" and cfg.norm_position == "after":
            layers[f"fc{i}_norm"] = make_norm(cfg.norm, width, dims=1)
        if cfg.dropout > 0 and kind != "dropconnect":
            layers[f"fc{i}_drop"] = (
                nn.AlphaDropout(cfg.dropout) if kind == "alpha" else nn.Dropout(cfg.dropout)
            )
        width_in = width
    layers["head"] = nn.Linear(width_in, n_out)
    return layers


@MODELS.register("mlp")
def build_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """A multilayer perceptron; inputs with more than one dimension are flattened first.

    Example:
        >>> from trainwell.nn.config import ModelConfig
        >>> build_mlp(ModelConfig(hidden=[8]), (4,), 3)[0]
        Linear(in_features=4, out_features=8, bias=True)
    """
    if not input_shape or any(int(s) < 1 for s in input_shape):
        raise ModelSpecError(
            f"model.arch = 'mlp' needs a non-empty input shape; got {tuple(input_shape)}"
        )
    layers = dense_stack(cfg, math.prod(input_shape), n_out)
    if len(input_shape) > 1:
        layers = OrderedDict([("flatten", nn.Flatten()), *layers.items()])
    return nn.Sequential(layers)
