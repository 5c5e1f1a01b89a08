"""Dropout, DropConnect, BatchNorm, stochastic depth and residual blocks: train vs inference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn import DropConnectLinear, ResidualBlock, StochasticDepth, make_layer


def _mean_of_training_passes(module: nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    module.train()
    with torch.no_grad():
        return torch.stack([module(x) for _ in range(n)]).mean(0)


def test_inverted_dropout_mean_over_masks_matches_inference():
    torch.manual_seed(0)
    x = torch.randn(4, 50)
    drop = nn.Dropout(0.35)  # lecture 000's example rate; kept units are scaled by 1 / (1 - 0.35)
    mean = _mean_of_training_passes(drop, x, 4000)
    # each entry is x * Bernoulli(0.65) / 0.65 averaged over 4000 masks:
    # std |x| * sqrt(0.35 / 0.65 / 4000)
    tol = 5 * x.abs() * math.sqrt(0.35 / 0.65 / 4000)
    assert ((mean - drop.eval()(x)).abs() <= tol).all()
    assert drop.train()(x).eq(0).float().mean().item() == pytest.approx(0.35, abs=0.05)


def test_dropconnect_mean_over_masks_matches_inference():
    torch.manual_seed(0)
    layer = DropConnectLinear(20, 5, p=0.5)
    x = torch.randn(3, 20)
    mean = _mean_of_training_passes(layer, x, 4000)
    exact = layer.eval()(x)
    torch.testing.assert_close(
        exact, x @ layer.weight.T + layer.bias
    )  # all connections at inference
    # per output: sum_j x_j w_j (m_j / 0.5 - 1) has std sqrt(sum (x_j w_j)^2) per mask
    tol = 5 * torch.sqrt((x.unsqueeze(1) * layer.weight).pow(2).sum(-1) / 4000)
    assert ((mean - exact).abs() <= tol).all()
    # a training pass drops about half of the weights
    layer.train()
    with torch.no_grad():
        y = layer(torch.eye(20))  # row i = bias + column i of the masked weight
    assert (y - layer.bias).eq(0).float().mean().item() == pytest.approx(0.5, abs=0.1)


def test_dropconnect_gradcheck_float64_with_fixed_mask():
    layer = DropConnectLinear(6, 4, p=0.3).double()
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)

    def f(inp):
        torch.manual_seed(1)  # the same mask on every call
        return layer(inp)

    assert torch.autograd.gradcheck(f, (x,))
    layer.eval()
    assert torch.autograd.gradcheck(layer, (x,))


def test_batchnorm_uses_batch_statistics_in_training_and_running_at_inference():
    torch.manual_seed(0)
    bn = make_layer("batch_norm1d", 3, momentum=None)  # running = average of batch stats
    data = torch.randn(2000, 3) * torch.tensor([2.0, 0.5, 1.0]) + torch.tensor([1.0, -3.0, 0.0])
    for batch in data.split(100):
        out = bn.train()(batch)
        # training: normalized with this batch's own mean and (biased) variance (lecture 000)
        expected = (batch - batch.mean(0)) / torch.sqrt(batch.var(0, unbiased=False) + bn.eps)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    bn.eval()
    x = torch.tensor([[1.0, -3.0, 0.0], [5.0, 5.0, 5.0]])
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(bn(x), expected)
    torch.testing.assert_close(bn.running_mean, torch.tensor([1.0, -3.0, 0.0]), atol=0.15, rtol=0)
    # the same input gives the same output whatever the rest of the batch: no batch statistics
    torch.testing.assert_close(bn(x[:1]), bn(x)[:1])


def test_alpha_dropout_keeps_selu_mean_and_variance():
    torch.manual_seed(0)
    x = torch.randn(200_000)
    y = make_layer("alpha_dropout", 0.2).train()(x)
    assert abs(y.mean().item()) < 0.01 and abs(y.var().item() - 1) < 0.02
    # dropped units all take the same value a * (-lambda * alpha) + b
    counts = torch.unique(y, return_counts=True)[1]
    assert counts.max().item() / y.numel() == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("mode", ["batch", "row"])
def test_stochastic_depth_inference_equals_expectation_of_training(mode):
    torch.manual_seed(0)
    sd = StochasticDepth(0.3, mode=mode)
    branch = torch.randn(8, 4)
    mean = _mean_of_training_passes(sd, branch, 4000)
    torch.testing.assert_close(sd.eval()(branch), 0.7 * branch)  # scaled by survival 1 - p
    tol = 5 * branch.abs() * math.sqrt(0.3 * 0.7 / 4000)
    assert ((mean - 0.7 * branch).abs() <= tol).all()
    sd.train()
    kept = torch.stack([sd(torch.ones(8, 4))[:, 0] for _ in range(200)])
    if mode == "batch":  # the whole batch skips the branch together
        assert ((kept == 0).all(1) | (kept == 1).all(1)).all()
    assert kept.eq(0).float().mean().item() == pytest.approx(0.3, abs=0.06)


def test_residual_block_with_stochastic_depth_is_expectation_before_the_last_activation():
    torch.manual_seed(0)
    block = ResidualBlock(4, 4, activation="identity", norm="none", drop_prob=0.5)
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        branch = block.conv2(block.conv1(x))
        torch.testing.assert_close(block.eval()(x), x + 0.5 * branch)
        outs = {tuple(block.train()(x).flatten()[:3].tolist()) for _ in range(60)}
    assert len(outs) == 2  # either x (skipped) or x + F(x) (kept)


def test_residual_block_gradcheck_float64_and_projection_shortcut():
    torch.manual_seed(0)
    block = ResidualBlock(3, 6, stride=2, activation="tanh", norm="batch").double().eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert block(x).shape == (2, 6, 3, 3)
    assert torch.autograd.gradcheck(block, (x,))
    assert isinstance(block.shortcut, nn.Sequential)
    assert isinstance(ResidualBlock(6, 6).shortcut, nn.Identity)


def test_stochastic_depth_gradcheck_float64():
    sd = StochasticDepth(0.4).double()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def f(inp):
        torch.manual_seed(3)
        return sd.train()(inp)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradcheck(sd.eval(), (x,))


def test_fractional_max_pooling_random_in_training_fixed_average_at_inference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    fmp = make_layer("fractional_max_pool2d", 2, output_ratio=1 / math.sqrt(2))
    assert fmp(x).shape == (2, 3, 11, 11)
    # training: fresh random pooling regions on every pass (Graham 2014, lecture 001)
    draws = {tuple(fmp.train()(x).flatten()[:50].tolist()) for _ in range(10)}
    assert len(draws) > 1
    # every output is one of the input values (the max of some pooling region)
    y = fmp(x)
    assert torch.isin(y, x).all()
    # inference: the average over the fixed region draws, the same on every call
    fmp.eval()
    out = fmp(x)
    torch.testing.assert_close(fmp(x), out, rtol=0, atol=0)
    samples = fmp.test_region_samples(3, x.dtype)
    assert samples.shape == (fmp.test_samples, 3, 2)
    oracle = torch.stack([
        nn.functional.fractional_max_pool2d(x, 2, output_ratio=(1 / math.sqrt(2),) * 2,
                                            _random_samples=u.expand(2, 3, 2).contiguous())
        for u in samples
    ]).mean(0)
    torch.testing.assert_close(out, oracle)
    # and it is the same answer a fresh module gives (what a reloaded model computes)
    fresh = make_layer("fractional_max_pool2d", 2, output_ratio=1 / math.sqrt(2)).eval()
    torch.testing.assert_close(fresh(x), out, rtol=0, atol=0)
    xd = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fmp, (xd,))


def test_global_pooling():
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(make_layer("global_avg_pool2d")(x), x.mean(dim=(2, 3)))
    xd = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(make_layer("global_avg_pool2d"), (xd,))


def test_layer_arguments_are_checked():
    with pytest.raises(
        ModelSpecError, match=r"dropconnect p must be a number in \[0.0, 1.0\); got 1.0"
    ):
        DropConnectLinear(3, 2, p=1.0)
    with pytest.raises(
        ModelSpecError, match="stochastic depth mode must be 'batch' or 'row'; got 'all'"
    ):
        StochasticDepth(0.1, mode="all")
    with pytest.raises(
        ModelSpecError, match=r"unknown layer 'dropconect'; did you mean 'dropconnect'"
    ):
        make_layer("dropconect")
    with pytest.raises(ModelSpecError, match="maxout changes the width"):
        ResidualBlock(4, 4, activation="maxout")
