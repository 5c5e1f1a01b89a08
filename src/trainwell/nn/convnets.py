"""Convolutional builders: an AlexNet-style ``cnn`` and a small CIFAR-style ``resnet``.

Spatial sizes are computed as the stack is built, so a spec that shrinks the image below 1x1 is
refused with the block and the sizes at fault before any training.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.activations import activation_expansion, make_activation
from trainwell.nn.architectures import MODELS, dense_stack, need_dims
from trainwell.nn.layers import FractionalMaxPool2d, GlobalAvgPool2d, ResidualBlock, make_norm

if TYPE_CHECKING:
    from trainwell.nn.config import ModelConfig

FRACTIONAL_RATIO = 1 / math.sqrt(2)  # Graham 2014: shrink by sqrt(2) per pooling layer


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling: floor((n + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _pool(cfg: ModelConfig, h: int, w: int, block: int) -> tuple[nn.Module | None, int, int]:
    if cfg.pool == "none":
        return None, h, w
    if cfg.pool == "fractional_max":
        oh, ow = int(h * FRACTIONAL_RATIO), int(w * FRACTIONAL_RATIO)
        desc, ok = (
            f"fractional max pool (ratio {FRACTIONAL_RATIO:.4f}, 2x2 regions)",
            oh >= 1 and ow >= 1 and oh < h and ow < w,
        )
        module: nn.Module = FractionalMaxPool2d(2, output_ratio=FRACTIONAL_RATIO)
    else:
        p = cfg.pool_size
        oh, ow = conv_out(h, p, p, 0), conv_out(w, p, p, 0)
        desc, ok = f"{cfg.pool} pool {p}x{p}", oh >= 1 and ow >= 1
        module = nn.MaxPool2d(p) if cfg.pool == "max" else nn.AvgPool2d(p)
    if not ok:
        raise ModelSpecError(
            f"model.pool: the {desc} after conv block {block} gets a {h}x{w} input and would "
            f"output {max(oh, 0)}x{max(ow, 0)}; use fewer conv blocks (model.channels), padding, "
            'or pool = "none"'
        )
    return module, oh, ow


@MODELS.register("cnn")
def build_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """Conv blocks ``conv -> [norm] -> act -> pool`` (one per entry of ``channels``), then
    global average pooling or flattening, then the fully connected layers of ``hidden``."""
    need_dims("cnn", input_shape, 3, "an image (C, H, W)")
    c, h, w = (int(s) for s in input_shape)
    k = activation_expansion(cfg.activation)
    norm_before = cfg.norm != "none" and cfg.norm_position == "before"
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, out in enumerate(cfg.channels, start=1):
        oh = conv_out(h, cfg.kernel_size, cfg.stride, cfg.padding)
        ow = conv_out(w, cfg.kernel_size, cfg.stride, cfg.padding)
        if oh < 1 or ow < 1:
            raise ModelSpecError(
                f"model.channels: conv block {i} (conv2d {cfg.kernel_size}x{cfg.kernel_size}, "
                f"stride {cfg.stride}, padding {cfg.padding}) gets a {h}x{w} input and would "
                f"output {max(oh, 0)}x{max(ow, 0)}; use fewer conv blocks, more padding, or a "
                "smaller kernel"
            )
        layers[f"conv{i}"] = nn.Conv2d(
            c, out * k, cfg.kernel_size, cfg.stride, cfg.padding, bias=not norm_before
        )
        if norm_before:
            layers[f"conv{i}_norm"] = make_norm(cfg.norm, out * k, dims=2)
        layers[f"conv{i}_act"] = make_activation(cfg.activation, out * k)
        if cfg.norm != "none" and cfg.norm_position == "after":
            layers[f"conv{i}_norm"] = make_norm(cfg.norm, out, dims=2)
        pool, oh, ow = _pool(cfg, oh, ow, i)
        if pool is not None:
            layers[f"conv{i}_pool"] = pool
        c, h, w = out, oh, ow
    if cfg.global_pool:
        layers["gap"] = GlobalAvgPool2d()
        features = c
    else:
        layers["flatten"] = nn.Flatten()
        features = c * h * w
    layers.update(dense_stack(cfg, features, n_out))
    return nn.Sequential(layers)


class ResNet(nn.Module):
    """A small CIFAR-style ResNet: a 3x3 stem, stages of residual blocks (each stage after the
    first halves the size with stride 2), global average pooling and a linear head."""

    def __init__(self, cfg: ModelConfig, in_channels: int, n_out: int) -> None:
        super().__init__()
        if activation_expansion(cfg.activation) != 1:
            raise ModelSpecError(
                "model.activation: maxout changes the width, so resnet cannot use it"
            )
        width = cfg.widths[0]
        self.stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, width, 3, padding=1, bias=cfg.norm == "none"),
                norm=make_norm(cfg.norm, width, dims=2),
                act=make_activation(cfg.activation, width),
            )
        )
        total = sum(cfg.blocks)
        stages: list[nn.Module] = []
        index = 0
        for s, (out, n) in enumerate(zip(cfg.widths, cfg.blocks, strict=True)):
            blocks = []
            for b in range(n):
                index += 1
                # Huang et al. 2016, linear decay rule: p_l = (l / L) * p_L
                drop = cfg.stochastic_depth * index / total
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(ResidualBlock(width, out, stride, cfg.activation, cfg.norm, drop))
                width = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = GlobalAvgPool2d()
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))))


@MODELS.register("resnet")
def build_resnet(cfg: ModelConfig, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """A :class:`ResNet` for images of shape (C, H, W)."""
    need_dims("resnet", input_shape, 3, "an image (C, H, W)")
    return ResNet(cfg, int(input_shape[0]), n_out)
