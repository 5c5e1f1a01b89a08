"""Conformance: every registered activation, layer, norm, init and model builder, by name.

A new entry in any registry is tested here the day it is registered (the example tables below
must cover every name).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from trainwell.nn import (
    AUTO_TABLE,
    ModelConfig,
    build_model,
    init_model_,
    list_activations,
    list_inits,
    list_layers,
    list_models,
    list_norms,
    make_activation,
    make_layer,
    make_norm,
    model_summary,
)
from trainwell.nn.activations import ACTIVATIONS, activation_expansion, activation_of


@pytest.mark.parametrize("name", list_activations())
def test_activation_conformance(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step warns by design (tested elsewhere)
        act = make_activation(name, num_features=6).double()
    k = activation_expansion(name)
    g = torch.Generator().manual_seed(0)
    for shape in [(4, 6 * k), (2, 6 * k, 3, 3)]:  # features, and channels of an image
        x = torch.randn(*shape, dtype=torch.float64, generator=g)
        y = act(x)
        assert y.shape == (shape[0], 6, *shape[2:]) and torch.isfinite(y).all()
    assert (
        activation_of(act) is not None and activation_of(act)[0] == name
    )  # the init policy sees it
    if ACTIVATIONS.get(name).modules:  # the same module in a model of the user's own is read alike
        plain = copy.deepcopy(act)
        del plain.activation_name
        assert activation_of(plain) == activation_of(act)
    assert name in AUTO_TABLE
    if name != "step":
        x = (torch.rand(3, 6 * k, dtype=torch.float64, generator=g) * 4 - 2).requires_grad_(True)
        x.data[(x.data.abs() - 0.4).abs() < 1e-3] += 0.01  # off the kinks
        x.data[x.data.abs() < 1e-3] += 0.01
        assert torch.autograd.gradcheck(act, (x,))


LAYER_EXAMPLES = {
    "linear": ((6, 4), {}, (3, 6)),
    "conv2d": ((2, 4, 3), {"padding": 1}, (3, 2, 5, 5)),
    "max_pool2d": ((2,), {}, (3, 2, 6, 6)),
    "avg_pool2d": ((2,), {}, (3, 2, 6, 6)),
    "global_avg_pool2d": ((), {}, (3, 2, 6, 6)),
    "fractional_max_pool2d": ((2,), {"output_ratio": 0.7}, (3, 2, 8, 8)),
    "batch_norm1d": ((6,), {}, (3, 6)),
    "batch_norm2d": ((2,), {}, (3, 2, 4, 4)),
    "layer_norm": ((6,), {}, (3, 6)),
    "dropout": ((0.5,), {}, (3, 6)),
    "alpha_dropout": ((0.5,), {}, (3, 6)),
    "dropconnect": ((6, 4), {"p": 0.5}, (3, 6)),
    "stochastic_depth": ((0.5,), {}, (3, 6)),
    "residual_block": ((2, 4), {"stride": 2}, (3, 2, 6, 6)),
    "flatten": ((), {}, (3, 2, 4, 4)),
}


def test_every_layer_has_an_example():
    assert sorted(LAYER_EXAMPLES) == list_layers()


@pytest.mark.parametrize("name", list_layers())
def test_layer_conformance(name):
    args, kwargs, shape = LAYER_EXAMPLES[name]
    torch.manual_seed(0)
    layer = make_layer(name, *args, **kwargs)
    x = torch.randn(*shape, requires_grad=True)
    for mode in (True, False):
        y = layer.train(mode)(x)
        assert y.shape[0] == shape[0] and torch.isfinite(y).all()
    layer.train()(x).sum().backward()
    assert x.grad is not None
    clone = make_layer(name, *args, **kwargs)
    clone.load_state_dict(layer.state_dict())  # plain modules: state dicts round-trip


@pytest.mark.parametrize("name", list_norms())
def test_norm_conformance(name):
    for dims, shape in [(1, (4, 6)), (2, (4, 6, 3, 3))]:
        norm = make_norm(name, 6, dims=dims)
        x = torch.randn(*shape) * 3 + 2
        y = norm(x)
        assert y.shape == x.shape
        if name != "none":  # normalized over the statistics' axes
            assert abs(y.mean().item()) < 1e-5


@pytest.mark.parametrize("name", list_inits())
def test_init_conformance(name):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(8, 16), nn.Tanh(), nn.Conv1d(16, 4, 1), nn.Flatten(), nn.Linear(4, 2)
    )
    batch = torch.randn(32, 8)

    class Unsq(nn.Module):
        def forward(self, x):
            return x.unsqueeze(-1)

    net.insert(2, Unsq())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zeros / constant warn by design
        init_model_(net, name, example_batch=batch)
    for m in net:
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            assert torch.isfinite(m.weight).all()
            assert isinstance(m.init_scheme, str) and m.init_scheme
            if name not in ("zeros", "constant"):
                assert m.weight.std() > 0


MODEL_SHAPES = {"mlp": (6,), "cnn": (1, 8, 8), "resnet": (3, 8, 8), "rnn": (5, 3)}


def test_every_model_has_an_example():
    assert sorted(MODEL_SHAPES) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_model_conformance(name):
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch=name,
        hidden=[8],
        channels=[4],
        widths=[4, 8],
        blocks=[1, 1],
        hidden_size=8,
        norm="batch",
    )
    shape = MODEL_SHAPES[name]
    model = build_model(cfg, shape, 3, "multiclass")
    x = torch.randn(4, *shape)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    rows = model_summary(model, shape)
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())
    assert rows[-1]["output_shape"] == (3,)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.RNNBase, nn.BatchNorm1d, nn.BatchNorm2d)):
            assert m.init_scheme
