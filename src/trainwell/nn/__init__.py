"""Models: activations, layers and inits of the lectures, model builders and ``build_model``.

Public names are imported lazily, so that the command line and config loading do not load torch.
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

_LAZY = {
    "AUTO_TABLE": "trainwell.nn.init_schemes",
    "DropConnectLinear": "trainwell.nn.layers",
    "FractionalMaxPool2d": "trainwell.nn.layers",
    "GlobalAvgPool2d": "trainwell.nn.layers",
    "Maxout": "trainwell.nn.activations",
    "ModelConfig": "trainwell.nn.config",
    "RecurrentNet": "trainwell.nn.recurrent",
    "ResNet": "trainwell.nn.convnets",
    "ResidualBlock": "trainwell.nn.layers",
    "SELU_ALPHA": "trainwell.nn.activations",
    "SELU_LAMBDA": "trainwell.nn.activations",
    "SReLU": "trainwell.nn.activations",
    "Step": "trainwell.nn.activations",
    "StochasticDepth": "trainwell.nn.layers",
    "Swish": "trainwell.nn.activations",
    "build_model": "trainwell.nn.build",
    "fans": "trainwell.nn.init_schemes",
    "format_summary": "trainwell.nn.summary",
    "init_model_": "trainwell.nn.init_model",
    "list_activations": "trainwell.nn.activations",
    "list_inits": "trainwell.nn.init_schemes",
    "list_layers": "trainwell.nn.layers",
    "list_models": "trainwell.nn.architectures",
    "list_norms": "trainwell.nn.layers",
    "lsuv_": "trainwell.nn.init_model",
    "make_activation": "trainwell.nn.activations",
    "make_init": "trainwell.nn.init_schemes",
    "make_layer": "trainwell.nn.layers",
    "make_norm": "trainwell.nn.layers",
    "model_summary": "trainwell.nn.summary",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
