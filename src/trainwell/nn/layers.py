"""Layers the lectures use that torch lacks (DropConnect, stochastic depth, residual blocks),
and the registries of layers and norms by name (torch's own modules where they exist)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.activations import activation_of, make_activation
from trainwell.nn.specs import require_float, require_int
from trainwell.registry import Registry

LAYERS: Registry[Any] = Registry("layer", ModelSpecError)
NORMS: Registry[Any] = Registry("norm", ModelSpecError)


def _check_p(what: str, p: float) -> float:
    return require_float(what, p, low=0.0, high=1.0, high_open=True)


class DropConnectLinear(nn.Linear):
    """A linear layer whose weights are dropped at random in training (Wan et al. 2013; lecture
    001).

    Training: each weight is kept with probability 1 - p, a fresh mask per forward pass, and the
    kept weights are scaled by 1 / (1 - p) ("inverted", as for dropout) so that the expected
    weight matrix is W. Inference: all connections are used, which is that expectation.

    Example:
        >>> layer = DropConnectLinear(4, 3, p=0.5).eval()
        >>> layer(torch.ones(2, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self, in_features: int, out_features: int, p: float = 0.5, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.p = _check_p("dropconnect p", p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return nn.functional.linear(x, self.weight, self.bias)
        keep = torch.bernoulli(torch.full_like(self.weight, 1.0 - self.p))
        return nn.functional.linear(x, self.weight * keep / (1.0 - self.p), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class StochasticDepth(nn.Module):
    """Scales a residual branch's output for stochastic depth (Huang et al. 2016; lecture 001).

    Training: the branch is kept with probability 1 - p and skipped (multiplied by 0) otherwise;
    ``mode="batch"`` draws one decision for the whole batch (as in the paper), ``"row"`` one per
    sample. Inference: the branch is scaled by its survival probability 1 - p, the expectation
    of training.

    Example:
        >>> StochasticDepth(0.25).eval()(torch.ones(2))
        tensor([0.7500, 0.7500])
    """

    def __init__(self, p: float = 0.0, mode: str = "batch") -> None:
        super().__init__()
        self.p = _check_p("stochastic depth p", p)
        if mode not in ("batch", "row"):
            raise ModelSpecError(f"stochastic depth mode must be 'batch' or 'row'; got {mode!r}")
        self.mode = mode

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return branch
        if not self.training:
            return branch * (1.0 - self.p)
        shape = (
            (1,) * branch.dim()
            if self.mode == "batch"
            else (branch.shape[0],) + (1,) * (branch.dim() - 1)
        )
        keep = torch.bernoulli(
            torch.full(shape, 1.0 - self.p, dtype=branch.dtype, device=branch.device)
        )
        return branch * keep

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class FractionalMaxPool2d(nn.FractionalMaxPool2d):
    """Fractional max pooling (Graham 2014; lecture 001), deterministic at inference.

    Training: torch's pooling with fresh random pooling regions on every pass. Inference
    (lecture 001: "average predictions over different samples"): the average of the pooled
    outputs over ``test_samples`` fixed draws of the regions (drawn from ``seed``), so the same
    input always gives the same prediction. torch's own module draws new regions at inference too.

    Example:
        >>> pool = FractionalMaxPool2d(2, output_ratio=0.7).eval()
        >>> x = torch.randn(1, 2, 8, 8)
        >>> pool(x).shape, torch.equal(pool(x), pool(x))
        (torch.Size([1, 2, 5, 5]), True)
    """

    def __init__(
        self,
        kernel_size: Any = 2,
        output_size: Any = None,
        output_ratio: Any = None,
        test_samples: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__(kernel_size, output_size=output_size, output_ratio=output_ratio)
        self.test_samples = require_int("fractional max pool test_samples", test_samples, low=1)
        self.seed = require_int("fractional max pool seed", seed, low=0)

    def test_region_samples(self, channels: int, dtype: torch.dtype) -> torch.Tensor:
        """The fixed region draws used at inference: (test_samples, channels, 2) in [0, 1)."""
        g = torch.Generator().manual_seed(self.seed)
        draws = torch.rand(self.test_samples, channels, 2, generator=g, dtype=torch.float64)
        return draws.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        batched = x if x.dim() == 4 else x.unsqueeze(0)
        n, c = batched.shape[:2]
        draws = self.test_region_samples(c, batched.dtype).to(batched.device)
        out = torch.stack([
            nn.functional.fractional_max_pool2d(
                batched, self.kernel_size, self.output_size, self.output_ratio,
                _random_samples=draw.expand(n, c, 2).contiguous(),
            )
            for draw in draws
        ]).mean(0)
        return out if x.dim() == 4 else out.squeeze(0)

    def extra_repr(self) -> str:
        size = (f"output_size={self.output_size}" if self.output_size is not None
                else f"output_ratio={self.output_ratio}")
        return f"kernel_size={self.kernel_size}, {size}, test_samples={self.test_samples}"


class GlobalAvgPool2d(nn.Module):
    """Global average pooling: (N, C, H, W) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class ResidualBlock(nn.Module):
    """The basic residual block of a CIFAR ResNet (He et al. 2016): ``act(shortcut(x) + F(x))``.

    ``F`` is conv3x3 - norm - act - conv3x3 - norm; the shortcut is the identity, or a 1x1
    convolution (with norm) when the stride or the width changes. The last layer of ``F`` (its
    norm, or its second conv without norm) is marked ``zero_init_last`` so that the init policy
    can start the block as the identity (lecture 001: Var(x + F(x)) = Var(x)).

    Example:
        >>> ResidualBlock(8, 16, stride=2)(torch.zeros(1, 8, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        activation: str | dict[str, Any] = "relu",
        norm: str = "batch",
        drop_prob: float = 0.0,
    ) -> None:
        super().__init__()
        in_channels = require_int("residual block in_channels", in_channels, low=1)
        out_channels = require_int("residual block out_channels", out_channels, low=1)
        stride = require_int("residual block stride", stride, low=1)
        use_bias = NORMS.canonical(norm) == "none"
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=use_bias
        )
        self.norm1 = make_norm(norm, out_channels, dims=2)
        self.act1 = make_activation(activation, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=use_bias)
        self.norm2 = make_norm(norm, out_channels, dims=2)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=use_bias),
                make_norm(norm, out_channels, dims=2),
            )
        self.drop_path = StochasticDepth(drop_prob)
        self.act2 = make_activation(activation, out_channels)
        # conv2 and the shortcut conv feed the sum, then act2: tell the init policy so (plain
        # attributes that it reads, not parameters or submodules)
        after_sum = activation_of(self.act2)
        for conv in [self.conv2, *(m for m in self.shortcut.modules() if isinstance(m, nn.Conv2d))]:
            conv.__dict__["followed_by"] = after_sum
        last = self.norm2 if not isinstance(self.norm2, nn.Identity) else self.conv2
        last.__dict__["zero_init_last"] = True
        if getattr(self.act1, "expansion", 1) != 1:
            raise ModelSpecError(
                "maxout changes the width, so it cannot be used inside residual blocks"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.act2(self.shortcut(x) + self.drop_path(branch))


# ---------------------------------------------------------------------------- norms


@NORMS.register("none")
def _no_norm(num_features: int, dims: int = 1) -> nn.Module:
    return nn.Identity()


@NORMS.register("batch", "batchnorm", "batch_norm")
def _batch_norm(num_features: int, dims: int = 1) -> nn.Module:
    # lecture 000: batch statistics in training, running averages at inference
    return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)


@NORMS.register("layer", "layernorm", "layer_norm")
def _layer_norm(num_features: int, dims: int = 1) -> nn.Module:
    # over the features of each sample; for images, over (C, H, W) as GroupNorm with one group
    return nn.LayerNorm(num_features) if dims == 1 else nn.GroupNorm(1, num_features)


def list_norms() -> list[str]:
    """The registered norm names."""
    return NORMS.names()


def make_norm(name: str, num_features: int, dims: int = 1) -> nn.Module:
    """A norm layer by name for ``num_features`` features (dims=1) or channels (dims=2)."""
    return NORMS.get(name)(num_features, dims)


# ---------------------------------------------------------------------------- layers


LAYERS.register("linear")(nn.Linear)
LAYERS.register("conv2d")(nn.Conv2d)
LAYERS.register("max_pool2d", "maxpool")(nn.MaxPool2d)
LAYERS.register("avg_pool2d", "avgpool")(nn.AvgPool2d)
LAYERS.register("global_avg_pool2d", "global_avg_pool")(GlobalAvgPool2d)
LAYERS.register("fractional_max_pool2d", "fractional_max_pool")(FractionalMaxPool2d)
LAYERS.register("batch_norm1d")(nn.BatchNorm1d)
LAYERS.register("batch_norm2d")(nn.BatchNorm2d)
LAYERS.register("layer_norm")(nn.LayerNorm)
LAYERS.register("dropout")(nn.Dropout)  # inverted dropout (lecture 000)
LAYERS.register("alpha_dropout")(nn.AlphaDropout)  # keeps SELU's mean 0 / variance 1
LAYERS.register("dropconnect")(DropConnectLinear)
LAYERS.register("stochastic_depth")(StochasticDepth)
LAYERS.register("residual_block")(ResidualBlock)
LAYERS.register("flatten")(nn.Flatten)


def list_layers() -> list[str]:
    """The registered layer names."""
    return LAYERS.names()


def make_layer(name: str, *args: Any, **kwargs: Any) -> nn.Module:
    """A layer by name, e.g. ``make_layer("dropconnect", 16, 8, p=0.3)``."""
    return LAYERS.get(name)(*args, **kwargs)


__all__ = [
    "LAYERS",
    "NORMS",
    "DropConnectLinear",
    "FractionalMaxPool2d",
    "GlobalAvgPool2d",
    "ResidualBlock",
    "StochasticDepth",
    "list_layers",
    "list_norms",
    "make_layer",
    "make_norm",
]
