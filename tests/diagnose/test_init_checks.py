"""Initialization checks against lecture 001's failure modes, and the statistics against torch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.diagnose import doctor
from trainwell.diagnose.stats import capture


def _status(rep, check):
    found = rep.get(check)
    return found[0].status if found else None


def test_healthy_kaiming_relu_passes(digits, make_mlp):
    rep = doctor(make_mlp(), digits, checks=["init"])
    assert rep.status == "pass", rep.summary()
    layers = rep.activation_stats["init"]["layers"]
    # named like the monitor's stats.jsonl: weighted layers, with their activation's statistics
    assert set(layers) == {"0", "2", "4"} and "hist" in layers["0"]
    assert layers["0"]["grad_norm"] > 0 and layers["4"]["dead_frac"] == 0.0


def test_healthy_xavier_tanh_passes(digits, make_mlp):
    rep = doctor(make_mlp(hidden=(64,) * 4, act=nn.Tanh, init="xavier"), digits, checks=["init"])
    assert rep.status == "pass", rep.summary()


def test_zero_init_breaks_no_symmetry(digits, make_mlp):
    rep = doctor(make_mlp(init="zeros"), digits, checks=["init"])
    f = rep.get("init.symmetry")[0]
    assert f.status == "fail" and f.evidence["constant_weight_layers"] == ["0", "2", "4"]


def test_deep_sigmoid_std1_saturates(digits, make_mlp):
    rep = doctor(
        make_mlp(hidden=(128,) * 6, act=nn.Sigmoid, init="normal", std=1.0), digits, checks=["init"]
    )
    assert _status(rep, "init.saturation") == "fail"
    assert max(rep.get("init.saturation")[0].evidence["sat_frac"].values()) > 0.5


def test_large_negative_bias_kills_relus(digits, make_mlp):
    model = make_mlp()
    nn.init.constant_(model[0].bias, -10.0)
    rep = doctor(model, digits, checks=["init"])
    f = rep.get("init.dead_relu")[0]
    assert f.status == "fail" and f.evidence["dead_frac"]["1"] >= 0.9


def test_lecture_001_small_tanh_init_vanishes(digits, make_mlp):
    rep = doctor(
        make_mlp(hidden=(256,) * 6, act=nn.Tanh, init="normal", std=0.01), digits, checks=["init"]
    )
    assert _status(rep, "init.vanishing") == "fail"


def test_large_relu_init_explodes(digits, make_mlp):
    rep = doctor(make_mlp(hidden=(128,) * 5, init="normal", std=0.3), digits, checks=["init"])
    assert _status(rep, "init.exploding") == "fail"


def test_captured_statistics_match_torch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh())
    x = torch.randn(50, 8)
    with capture(model) as stats:
        model(x)
    h = torch.relu(model[0](x))
    t = torch.tanh(model[2](h))
    assert stats["1"]["act_mean"] == pytest.approx(h.mean().item(), abs=1e-6)
    assert stats["1"]["act_std"] == pytest.approx(h.std(unbiased=False).item(), abs=1e-6)
    assert stats["1"]["dead_frac"] == pytest.approx((h <= 0).all(0).float().mean().item())
    assert stats["3"]["sat_frac"] == pytest.approx((t.abs() > 0.99).float().mean().item())
    assert not model[1]._forward_hooks  # hooks are gone after the block


def test_init_histograms_are_the_real_batchs_histograms(digits, make_mlp):
    # the doctor's statistics batch: a seeded permutation of stats_batch (256) training rows
    X, y = digits
    model = make_mlp()
    rep = doctor(model, digits, checks=["init"])
    xb = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:256]]
    with torch.no_grad():
        h1 = torch.relu(model[0](xb))
        h2 = torch.relu(model[2](h1))
    for name, h in (("0", h1), ("2", h2)):
        hist = rep.activation_stats["init"]["layers"][name]["hist"]
        assert hist["min"] == pytest.approx(h.min().item()) and hist["max"] == pytest.approx(
            h.max().item()
        )
        expect = torch.histc(h, bins=len(hist["counts"]), min=hist["min"], max=hist["max"])
        assert hist["counts"] == [int(c) for c in expect.tolist()]
        assert sum(hist["counts"]) == h.numel()
        layer = rep.activation_stats["init"]["layers"][name]
        assert layer["act_std"] == pytest.approx(h.std(unbiased=False).item(), rel=1e-5)


def test_vanishing_gradients_fail_and_name_the_ratio(digits, make_mlp):
    # sigmoid, std 0.05: dL/dx shrinks by ~0.05 * sqrt(256) / 4 per layer on the way back
    model = make_mlp(hidden=(256,) * 6, act=nn.Sigmoid, init="normal", std=0.05)
    f = doctor(model, digits, checks=["init"]).get("init.gradients")[0]
    assert f.status == "fail" and f.evidence["first_over_max"] < 1e-4
    g = f.evidence["grad_norm"]
    assert f.evidence["first_over_max"] == pytest.approx(g["0"] / max(g.values()))
    assert g["0"] < g["6"] < g["12"]
    assert any("Kaiming" in a or "Xavier" in a for a in f.advice)


def test_tiny_gradients_everywhere_fail(digits, make_mlp):
    # lecture 001's tanh / std 0.01: every layer's ||dL/dW|| is ~2e-5, so the ratio test alone
    # passes; ||dL/dW|| / ||W|| catches it
    model = make_mlp(hidden=(256,) * 6, act=nn.Tanh, init="normal", std=0.01)
    f = doctor(model, digits, checks=["init"]).get("init.gradients")[0]
    assert f.status == "fail" and f.evidence["max_grad_over_weight"] < 1e-4
    w = model[0].weight.norm().item()
    assert f.evidence["grad_norm"]["0"] / w <= f.evidence["max_grad_over_weight"]
    healthy = doctor(make_mlp(), digits, checks=["init"]).get("init.gradients")[0]
    assert healthy.status == "pass" and "max_grad_over_weight" not in healthy.evidence
