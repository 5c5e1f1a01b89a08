"""Which layers sample at test time (Monte Carlo dropout), and that BatchNorm does not."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.nn.layers import (
    DropConnectLinear,
    FractionalMaxPool2d,
    ResidualBlock,
    StochasticDepth,
)
from trainwell.nn.sampling import describe_stochastic, sampling, stochastic_modules


def test_the_stochastic_layers_of_the_lectures_are_found():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), FractionalMaxPool2d(2, output_ratio=0.7),
        nn.Dropout2d(0.1), nn.Flatten(), DropConnectLinear(4 * 5 * 5, 8, p=0.2),
        nn.AlphaDropout(0.1), nn.Dropout(0.0), StochasticDepth(0.0), nn.Linear(8, 2),
    )
    kinds = [(name, kind) for name, _, kind in stochastic_modules(net)]
    assert kinds == [("2", "fractional max pooling"), ("3", "dropout"), ("5", "DropConnect"),
                     ("6", "dropout")]  # p = 0 draws nothing: not listed
    assert describe_stochastic(net) == "fractional max pooling, dropout x2, DropConnect"
    block = ResidualBlock(4, 4, drop_prob=0.2)
    assert [k for _, _, k in stochastic_modules(block)] == ["stochastic depth"]
    assert describe_stochastic(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))) == ""
    assert describe_stochastic(nn.LSTM(3, 4, num_layers=2, dropout=0.3)) == "recurrent dropout"
    assert describe_stochastic(nn.LSTM(3, 4, num_layers=1)) == ""


def test_sampling_switches_only_the_stochastic_layers_and_restores_modes():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    net.train()
    with sampling(net) as layers:
        assert layers == [net[2]]
        assert net[2].training and not net[1].training and not net.training
        # BatchNorm uses its running statistics: no update, and the eval-mode output
        before = net[1].running_mean.clone()
        x = torch.randn(16, 4)
        h = net[1](net[0](x))
        assert torch.equal(net[1].running_mean, before)
        ref = nn.functional.batch_norm(net[0](x), net[1].running_mean, net[1].running_var,
                                       net[1].weight, net[1].bias, False, 0.0, net[1].eps)
        assert torch.allclose(h, ref)
    assert all(m.training for m in net.modules())  # every module back in its own mode
    net.eval()
    with sampling(net):
        pass
    assert not any(m.training for m in net.modules())


def test_stochastic_depth_samples_under_sampling():
    drop = StochasticDepth(0.5)
    branch = torch.ones(4, 3)
    torch.manual_seed(0)
    with sampling(drop):
        outs = {float(drop(branch).sum()) for _ in range(40)}
    assert outs == {0.0, 12.0}  # the branch kept whole or dropped, never scaled by 1 - p
    assert torch.equal(drop.eval()(branch), branch * 0.5)
