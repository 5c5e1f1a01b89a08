"""Loss checks: the loss fits the task; the loss at step 0 against log C / log 2 (lecture 002)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.diagnose import doctor


def _zero_head(model: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(model[-1].weight)
    nn.init.zeros_(model[-1].bias)
    return model


def test_zero_scores_give_exactly_log_c(digits, make_mlp):
    rep = doctor(_zero_head(make_mlp()), digits, checks=["initial_loss"])
    f = rep.get("loss.initial")[0]
    assert f.status == "pass"
    assert f.evidence["loss"] == pytest.approx(math.log(10), rel=1e-6)
    assert f.evidence["expected"] == pytest.approx(math.log(10))


def test_binary_expects_log_2(digits, make_mlp):
    X, y = digits
    rep = doctor(_zero_head(make_mlp(d_out=1)), (X, (y > 4).long()), checks=["initial_loss"])
    f = rep.get("loss.initial")[0]
    assert rep.info["task"] == "binary" and f.evidence["loss"] == pytest.approx(math.log(2))


def test_default_init_is_within_tolerance(digits, make_mlp):
    rep = doctor(make_mlp(), digits, checks=["initial_loss"])
    assert rep.get("loss.initial")[0].status in {"pass", "warn"}
    assert rep.status != "fail"


def test_huge_scores_at_init_fail(digits, make_mlp):
    model = make_mlp()
    with torch.no_grad():
        model[-1].weight.mul_(30)
    f = doctor(model, digits, checks=["initial_loss"]).get("loss.initial")[0]
    assert f.status == "fail" and f.evidence["ratio"] > 2


def test_regression_loss_on_classes_does_not_fit(digits, make_mlp):
    rep = doctor(
        make_mlp(), digits, loss="mse", task="multiclass", checks=["initial_loss", "overfit"]
    )
    f = rep.get("loss.task")[0]
    assert f.status == "fail" and "cross_entropy" in f.advice[0]
    assert not rep.get("overfit")  # checks that need the loss are skipped, not crashed


def test_softmax_before_cross_entropy_is_found(digits, make_mlp):
    model = nn.Sequential(make_mlp(), nn.Softmax(dim=1))
    f = doctor(model, digits, checks=["initial_loss"]).get("loss.task")[0]
    assert f.status == "fail" and "logits" in f.title
