"""Models: activations, layers and inits of the lectures, model builders and ``build_model``."""

from __future__ import annotations

from trainwell.nn.activations import (
    SELU_ALPHA,
    SELU_LAMBDA,
    Maxout,
    SReLU,
    Step,
    Swish,
    list_activations,
    make_activation,
)
from trainwell.nn.build import build_model
from trainwell.nn.builders import list_models
from trainwell.nn.config import ModelConfig
from trainwell.nn.convnets import ResNet
from trainwell.nn.init import AUTO_TABLE, fans, list_inits, make_init
from trainwell.nn.initialize import init_model_, lsuv_
from trainwell.nn.layers import (
    DropConnectLinear,
    GlobalAvgPool2d,
    ResidualBlock,
    StochasticDepth,
    list_layers,
    list_norms,
    make_layer,
    make_norm,
)
from trainwell.nn.recurrent import RecurrentNet
from trainwell.nn.summary import format_summary, model_summary

__all__ = [
    "AUTO_TABLE",
    "SELU_ALPHA",
    "SELU_LAMBDA",
    "DropConnectLinear",
    "GlobalAvgPool2d",
    "Maxout",
    "ModelConfig",
    "RecurrentNet",
    "ResNet",
    "ResidualBlock",
    "SReLU",
    "Step",
    "StochasticDepth",
    "Swish",
    "build_model",
    "fans",
    "format_summary",
    "init_model_",
    "list_activations",
    "list_inits",
    "list_layers",
    "list_models",
    "list_norms",
    "lsuv_",
    "make_activation",
    "make_init",
    "make_layer",
    "make_norm",
    "model_summary",
]
