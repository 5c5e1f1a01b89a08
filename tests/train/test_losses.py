"""Each loss against the worked examples of lecture 003 and against torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainwell.errors import ConfigError
from trainwell.train.config import PenaltyConfig, TrainConfig
from trainwell.train.losses import (
    LOSSES,
    bce_loss,
    chance_loss,
    check_loss_for_task,
    cross_entropy_loss,
    hinge_loss,
    huber_loss,
    l1_loss,
    l2_loss,
    list_losses,
    make_loss,
)
from trainwell.train.penalties import (
    elastic_penalty,
    l1_penalty,
    l2_penalty,
    make_penalty,
    penalized_parameters,
)

# lecture 003: scores of three images (columns) for the classes cat, chair, car (rows);
# image 1 is a cat, image 2 a chair, image 3 a car
SCORES = torch.tensor(
    [[3.2, 1.3, 2.2], [5.1, 4.9, 2.5], [-1.7, 2.0, -3.1]]
).T  # (3 images, 3 classes)
LABELS = torch.tensor([0, 1, 2])


def test_cross_entropy_matches_lecture_table():
    per_image = [cross_entropy_loss(SCORES[i : i + 1], LABELS[i : i + 1]).item() for i in range(3)]
    assert per_image == pytest.approx([2.04, 0.079, 6.156], abs=5e-3)
    assert cross_entropy_loss(SCORES, LABELS).item() == pytest.approx(2.76, abs=5e-3)


def test_hinge_matches_lecture_table():
    per_image = [hinge_loss(SCORES[i : i + 1], LABELS[i : i + 1]).item() for i in range(3)]
    assert per_image == pytest.approx([2.9, 0.0, 12.9], abs=1e-5)
    assert hinge_loss(SCORES, LABELS).item() == pytest.approx(5.27, abs=5e-3)  # lecture: 5.3


@pytest.mark.parametrize(
    ("scores", "hinge", "ce"),
    [
        ([5, -3, 2], 0.0, 0.05),
        ([5, 10, 10], 12.0, 5.70),
        ([5, -20, -20], 0.0, 2 * math.exp(-25)),
    ],  # lecture: "2 * 10^-11",
)
def test_hinge_vs_cross_entropy_models(scores, hinge, ce):
    s = torch.tensor([scores], dtype=torch.float64)
    y = torch.tensor([0])
    assert hinge_loss(s, y).item() == pytest.approx(hinge, abs=1e-9)
    assert cross_entropy_loss(s, y).item() == pytest.approx(ce, rel=0.05, abs=1e-12)


def test_cross_entropy_is_stable_for_huge_scores():
    s = torch.tensor([[1000.0, 0.0, -1000.0]])
    assert torch.isfinite(cross_entropy_loss(s, torch.tensor([2])))
    assert cross_entropy_loss(s, torch.tensor([2])).item() == pytest.approx(2000.0)


def test_hinge_matches_torch_multi_margin_times_classes():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randn(20, 5, generator=g), torch.randint(0, 5, (20,), generator=g)
    assert hinge_loss(s, y).item() == pytest.approx(5 * F.multi_margin_loss(s, y).item(), rel=1e-6)


def test_l1_l2_match_lecture_example():
    # lecture 003: f(x) vs y on a 4x4 image; L2 = 33, L1 = 11
    f = torch.tensor(
        [[12, 24, 42, 23], [34, 32, 5, 2], [12, 31, 12, 31], [31, 64, 5, 13]], dtype=torch.float32
    )
    y = torch.tensor(
        [[15, 20, 40, 25], [34, 32, 5, 2], [12, 31, 12, 31], [31, 64, 5, 13]], dtype=torch.float32
    )
    f, y = f.reshape(1, 16), y.reshape(1, 16)  # one sample with 16 outputs
    assert l2_loss(f, y, "sum").item() == 33
    assert l1_loss(f, y, "sum").item() == 11
    assert l2_loss(f, y, "mean").item() == pytest.approx(33 / 16)
    assert l1_loss(f, y, "mean").item() == pytest.approx(11 / 16)


def test_regression_losses_average_over_batch_and_match_torch():
    g = torch.Generator().manual_seed(1)
    out, y = torch.randn(10, 3, generator=g) * 3, torch.randn(10, 3, generator=g)
    assert l2_loss(out, y).item() == pytest.approx(F.mse_loss(out, y).item(), rel=1e-6)
    assert l1_loss(out, y).item() == pytest.approx(F.l1_loss(out, y).item(), rel=1e-6)
    assert l2_loss(out, y, "sum").item() == pytest.approx(
        F.mse_loss(out, y, reduction="sum").item() / 10, rel=1e-6
    )
    assert huber_loss(out, y).item() == pytest.approx(F.huber_loss(out, y).item(), rel=1e-6)


def test_bce_on_logits_matches_formula():
    z = torch.tensor([[2.0], [-1.0], [0.5]])
    y = torch.tensor([1, 0, 0])
    p = torch.sigmoid(z.reshape(-1))
    expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()  # lecture 004
    assert bce_loss(z, y).item() == pytest.approx(expected.item(), rel=1e-6)


def test_penalties_match_lecture_example():
    # lecture 003: w1 = [1, 0, 0, 0], w2 = [0.25] * 4: R2 = 1 + 0.25 = 1.25; R1(w1) = R1(w2) = 1
    W = torch.tensor([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    assert l2_penalty([W]).item() == pytest.approx(1.25)
    assert l1_penalty([W[:1]]).item() == l1_penalty([W[1:]]).item() == pytest.approx(1.0)
    assert elastic_penalty([W], beta=0.5).item() == pytest.approx(0.5 * 1.25 + 2.0)


def test_penalty_applies_to_weights_only_by_default():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)
    )
    assert [p.shape for p in penalized_parameters(model)] == [(4, 3), (2, 4)]
    assert len(penalized_parameters(model, "all")) == 6
    pen = make_penalty(PenaltyConfig(name="l2", lam=0.1), model)
    expected = 0.1 * (model[0].weight.square().sum() + model[2].weight.square().sum())
    assert pen().item() == pytest.approx(expected.item())
    assert make_penalty(PenaltyConfig(name="l1", lam=0.0), model) is None


def test_penalty_lambda_key_in_toml_form():
    cfg = TrainConfig.model_validate({"penalty": {"name": "elastic", "lambda": 1e-3, "beta": 2}})
    assert cfg.penalty.lam == 1e-3
    assert cfg.model_dump(mode="json")["penalty"]["lambda"] == 1e-3


@pytest.mark.parametrize(
    ("loss", "task"),
    [
        ("hinge", "regression"),
        ("bce", "multiclass"),
        ("l2", "binary"),
        ("cross_entropy", "regression"),
    ],
)
def test_loss_that_does_not_fit_task_is_refused(loss, task):
    with pytest.raises(
        ConfigError, match=rf"train.loss '{loss}' does not fit a {task} task; losses for {task}"
    ):
        check_loss_for_task(loss, task)


def test_loss_fit_checks_and_auto():
    assert check_loss_for_task("auto", "binary") == "bce"
    assert check_loss_for_task("mse", "regression") == "l2"
    with pytest.raises(ConfigError, match="needs 1 output; this model has 10"):
        check_loss_for_task("bce", "binary", 10)
    with pytest.raises(Exception, match="did you mean 'hinge'"):
        TrainConfig.model_validate({"loss": "hinje"})
    assert make_loss("svm", "multiclass")(SCORES, LABELS).item() == pytest.approx(5.2667, abs=1e-3)


def test_an_unknown_loss_name_is_a_config_error_naming_the_field():
    with pytest.raises(
        ConfigError, match=r"train\.loss: .*unknown loss 'hnige'; did you mean 'hinge'"
    ):
        make_loss("hnige", "multiclass")
    with pytest.raises(ConfigError, match=r"train\.loss: margin"):
        make_loss({"name": "hinge", "margin": -1}, "multiclass")


@pytest.mark.parametrize("name", list_losses())
def test_every_registered_loss_builds_fits_its_tasks_and_knows_its_chance_value(name):
    spec = LOSSES.get(name)
    for task in spec.tasks:
        n_out = 1 if spec.outputs == "one" else 3
        fn = make_loss(name, task, n_out)
        y = {
            "multiclass": torch.tensor([0, 1, 2, 1]),
            "binary": torch.tensor([0, 1, 1, 0]),
            "regression": torch.randn(4, n_out),
        }[task]
        zeros = torch.zeros(4, n_out)
        value = fn(zeros, y)
        assert torch.isfinite(value) and value.ndim == 0
        # the chance value is the loss of all-zero outputs (lecture 003: "all s ~ 0 at init")
        expected = chance_loss(name, task, 3 if task == "multiclass" else 2, y)
        assert expected == pytest.approx(float(value), rel=1e-6)
