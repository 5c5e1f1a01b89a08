"""Test-time averaging: probabilities (not logits) averaged over views, fastai's beta blend,
Monte Carlo passes (spread, seed, BatchNorm in eval mode), regression and binary outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.data.augment.tta import IDENTITY, View
from trainwell.errors import ConfigError
from trainwell.nn.layers import FractionalMaxPool2d
from trainwell.train.objective import Supervised
from trainwell.train.test_time import (
    TestTimeAverage,
    as_logits,
    average_outputs,
    averaged_metrics,
    averaging_model,
    require_stochastic,
    uncertainty_columns,
)

VIEWS = [IDENTITY, View(hflip=True), View(dx=1)]


def _cnn(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                               nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    net = nn.Sequential(*layers, nn.Linear(3 * 4 * 4, 4))
    net.eval()
    return net


def test_views_average_probabilities_not_logits():
    net = _cnn()
    x = torch.randn(5, 1, 4, 4)
    logits = [net(v(x)) for v in VIEWS]
    by_hand = sum(torch.softmax(z, 1) for z in logits) / 3
    mean, spread = TestTimeAverage(net, "multiclass", VIEWS).average(x)
    assert spread is None
    assert torch.allclose(mean, by_hand, atol=1e-6)
    averaged_logits = torch.softmax(sum(logits) / 3, 1)
    assert not torch.allclose(mean, averaged_logits, atol=1e-4)  # the other convention differs
    # the raw outputs handed to metrics and predictions give those probabilities back
    assert torch.allclose(torch.softmax(TestTimeAverage(net, "multiclass", VIEWS)(x), 1),
                          by_hand, atol=1e-6)


def test_beta_blends_the_plain_prediction_as_fastai():
    net = _cnn()
    x = torch.randn(5, 1, 4, 4)
    plain = torch.softmax(net(x), 1)
    views_mean = sum(torch.softmax(net(v(x)), 1) for v in VIEWS) / 3
    mean, _ = TestTimeAverage(net, "multiclass", VIEWS, beta=0.25).average(x)
    assert torch.allclose(mean, 0.25 * plain + 0.75 * views_mean, atol=1e-6)
    assert torch.allclose(TestTimeAverage(net, "multiclass", VIEWS, beta=1.0).average(x)[0],
                          plain, atol=1e-6)
    # identity only: the plain prediction whatever beta
    assert torch.allclose(TestTimeAverage(net, "multiclass", [IDENTITY], beta=0.4).average(x)[0],
                          plain, atol=1e-6)


def test_binary_and_regression_average_sigmoids_and_values():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).eval()
    x = torch.randn(6, 1, 4, 4)
    by_hand = sum(torch.sigmoid(net(v(x))) for v in VIEWS) / 3
    avg = TestTimeAverage(net, "binary", VIEWS)
    assert torch.allclose(avg.average(x)[0], by_hand, atol=1e-6)
    assert torch.allclose(torch.sigmoid(avg(x)), by_hand, atol=1e-5)
    values = sum(net(v(x)) for v in VIEWS) / 3
    assert torch.allclose(TestTimeAverage(net, "regression", VIEWS)(x), values, atol=1e-6)
    p = torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    assert torch.allclose(torch.softmax(as_logits(p, "multiclass"), 1), p)


def test_mc_passes_spread_seed_and_batchnorm_in_eval():
    net = _cnn(dropout=0.5)
    with torch.no_grad():  # a BatchNorm with statistics far from a batch's own
        net[1].running_mean.fill_(-0.5)
        net[1].running_var.fill_(4.0)
    bn_state = {k: v.clone() for k, v in net[1].state_dict().items()}
    x = torch.randn(6, 1, 4, 4)
    avg = TestTimeAverage(net, "multiclass", mc_samples=8)
    out1, spread1 = average_outputs(avg, x, seed=3)
    out2, spread2 = average_outputs(avg, x, seed=3)
    out3, _ = average_outputs(avg, x, seed=4)
    assert torch.equal(out1, out2) and torch.equal(spread1, spread2)  # same seed, same output
    assert not torch.equal(out1, out3)
    assert spread1.shape == (6,) and bool((spread1 > 0).all())
    assert not net.training and not any(m.training for m in net.modules())
    assert all(torch.equal(v, net[1].state_dict()[k]) for k, v in bn_state.items())
    # by hand: the same seed, dropout sampling and BatchNorm on its running statistics
    torch.manual_seed(3)
    net[4].train()
    passes = torch.stack([torch.softmax(net(x), 1) for _ in range(8)])
    net[4].eval()
    mean = passes.mean(0)
    assert torch.allclose(out1.softmax(1), mean, atol=1e-6)
    pred = mean.argmax(1)
    assert torch.allclose(spread1, passes.std(0, correction=0)[torch.arange(6), pred], atol=1e-6)
    # the caller's generator is left as it was
    torch.manual_seed(11)
    expected = torch.rand(1)
    torch.manual_seed(11)
    average_outputs(avg, x, seed=3)
    assert torch.equal(torch.rand(1), expected)


def test_fractional_max_pool_averages_predictions_over_drawn_regions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), FractionalMaxPool2d(2, output_ratio=0.7),
                        nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).eval()
    x = torch.randn(4, 1, 8, 8)
    mean, spread = TestTimeAverage(net, "multiclass", mc_samples=6).average(x)
    assert spread is not None and bool((spread > 0).any())
    # the mean of the passes' probabilities, not the probabilities of the in-layer average
    in_layer = torch.softmax(net(x), 1)
    assert not torch.allclose(mean, in_layer, atol=1e-5)


def test_mc_on_a_model_without_stochastic_layers_is_refused():
    net = _cnn(dropout=0.0)
    with pytest.raises(ConfigError, match=r"--mc-samples needs a model with a stochastic layer"):
        require_stochastic(net, "--mc-samples")
    with pytest.raises(ConfigError, match="must be a whole number >= 0"):
        averaging_model(net, "multiclass", _Tta(), {}, (1, 4, 4), mc_samples=-1)
    with pytest.raises(ConfigError, match="tta: .*shape \\(16,\\)"):
        averaging_model(net, "multiclass", _Tta(), {}, (16,), tta=True)


def test_tta_without_trained_geometry_warns_and_uses_the_identity():
    net = _cnn()
    with pytest.warns(UserWarning, match="identity view only"):
        avg = averaging_model(net, "multiclass", _Tta(), {}, (1, 4, 4), tta=True)
    assert avg.views == [IDENTITY]
    avg = averaging_model(net, "multiclass", _Tta(), {"hflip": True, "max_shift": 1},
                          (1, 4, 4), tta=True)
    assert len(avg.views) == 10 and avg.beta == 0.25


def test_metrics_of_the_averaged_prediction():
    net = _cnn()
    x, y = torch.randn(12, 1, 4, 4), torch.randint(0, 4, (12,))
    obj = Supervised("cross_entropy", task="multiclass")
    obj.setup(net, (x, y))
    res = averaged_metrics(TestTimeAverage(net, "multiclass", VIEWS), obj, (x, y), "test")
    with torch.no_grad():
        p = sum(torch.softmax(net(v(x)), 1) for v in VIEWS) / 3
    assert res["test_loss"] == pytest.approx(float(-p[torch.arange(12), y].log().mean()), 1e-5)
    assert res["test_accuracy"] == pytest.approx(float((p.argmax(1) == y).double().mean()))


def test_uncertainty_columns_in_target_units():
    cols = uncertainty_columns(torch.tensor([[0.5, 1.0], [0.0, 2.0]]), "regression",
                               lambda v: v * torch.tensor([2.0, 10.0]) + 7.0)
    assert cols["uncertainty_0"].tolist() == [1.0, 0.0]
    assert cols["uncertainty_1"].tolist() == [10.0, 20.0]
    assert list(uncertainty_columns(torch.tensor([0.1, 0.2]), "multiclass")) == ["uncertainty"]


class _Tta:
    """A ``[tta]`` section's fields."""

    shift = "auto"
    flips = True
    beta = 0.25
