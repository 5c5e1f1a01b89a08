"""The doctor speaks the trainer's vocabulary: the same loss, optimizer and task for a name."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import trainwell
from trainwell.diagnose.recipe import make_problem
from trainwell.errors import ConfigError
from trainwell.train import losses, optim
from trainwell.train.callbacks import Callback
from trainwell.train.config import LossConfig, OptimizerConfig
from trainwell.train.losses import chance_loss, list_losses, loss_tasks, make_loss
from trainwell.train.trainer import Trainer

# lecture 003's example: the scores of three images (rows) for the classes cat, car, frog;
# the images are a cat, a car and a frog. Hinge losses 2.9, 0 and 12.9: mean 5.27.
SCORES = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
LABELS = torch.tensor([0, 1, 2])


def _identity(width: int = 3) -> nn.Linear:
    """A module whose outputs are its inputs: the scores are given, not learned."""
    lin = nn.Linear(width, width)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(width))
        lin.bias.zero_()
    return lin


def _case(task: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small seeded model and batch for ``task``."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 5, generator=g)
    if task == "regression":
        y = X[:, :2] @ torch.randn(2, 2, generator=g) + 0.5
        n_out = 2
    elif task == "binary":
        y = (X[:, 0] > 0).long()
        n_out = 1
    else:
        y = torch.randint(0, 4, (96,), generator=g)
        n_out = 4
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, n_out)), X, y


def _initial(report) -> dict:
    return report.get("loss.initial")[0].evidence


class _InitialLoss(Callback):
    """Records the trainer's own evaluation before the first step, then ends the fit."""

    def __init__(self, data) -> None:
        self.data = data
        self.result: dict = {}

    def before_fit(self, trainer) -> None:
        self.result = trainer.evaluate(self.data, prefix="init")
        trainer.stop_training = True


@pytest.mark.parametrize("name", list_losses())
def test_the_doctors_initial_loss_is_the_trainers_for_every_registered_loss(name):
    model, X, y = _case(loss_tasks(name)[0])
    rep = trainwell.doctor(model, (X, y), loss=name, checks=["initial_loss"])
    probe = _InitialLoss((X, y))
    Trainer(model, loss=name, epochs=1, seed=0, device="cpu", callbacks=[probe]).fit((X, y))
    assert rep.info["loss"] == name
    assert _initial(rep)["loss"] == pytest.approx(probe.result["init_loss"], rel=1e-6)


def test_hinge_on_lecture_003s_example_is_the_lectures_5_27():
    rep = trainwell.doctor(_identity(), (SCORES, LABELS), loss="hinge", checks=["initial_loss"])
    ev = _initial(rep)
    assert ev["loss"] == pytest.approx((2.9 + 0 + 12.9) / 3, rel=1e-6)  # not 1.76 (/ C)
    assert ev["expected"] == 2.0  # (C - 1) * margin for all-zero scores (lecture 003)


@pytest.mark.parametrize(
    ("cfg", "task"),
    [
        ({"name": "hinge", "margin": 2.0}, "multiclass"),
        ({"name": "svm", "margin": 0.5}, "multiclass"),
        ({"name": "huber", "delta": 0.1}, "regression"),
        ({"name": "l2", "reduction": "sum"}, "regression"),
        ({"name": "mae", "reduction": "sum"}, "regression"),
    ],
)
def test_margin_delta_and_reduction_reach_the_doctor(cfg, task):
    if task == "multiclass":
        model, X, y = _identity(), SCORES, LABELS
    else:
        model, X, y = _case(task)
    for spec in (cfg, LossConfig(**cfg)):
        ev = _initial(trainwell.doctor(model, (X, y), loss=spec, checks=["initial_loss"]))
        with torch.no_grad():
            trainer_loss = float(make_loss(LossConfig(**cfg), task)(model(X), y))
            default_loss = float(make_loss(LossConfig(**cfg).name, task)(model(X), y))
        assert ev["loss"] == pytest.approx(trainer_loss, rel=1e-6)
        assert ev["loss"] != pytest.approx(default_loss, rel=1e-3)  # the setting changed it
        assert ev["expected"] == pytest.approx(chance_loss(LossConfig(**cfg), task, 3, y))


def test_hinge_margin_on_lecture_003s_example():
    loss = {"name": "hinge", "margin": 2.0}
    rep = trainwell.doctor(_identity(), (SCORES, LABELS), loss=loss, checks=["initial_loss"])
    ev = _initial(rep)
    # sum over wrong classes of max(0, s_k - s_y + 2): 3.9, 0 and 7.3 + 7.6
    assert ev["loss"] == pytest.approx((3.9 + 0 + 14.9) / 3, rel=1e-6)
    assert ev["expected"] == 4.0


def test_nll_is_the_trainers_cross_entropy_not_torchs_nll_on_logits():
    rep = trainwell.doctor(_identity(), (SCORES, LABELS), loss="nll", checks=["initial_loss"])
    ce = float(nn.functional.cross_entropy(SCORES, LABELS))
    assert rep.info["loss"] == "cross_entropy"
    assert _initial(rep)["loss"] == pytest.approx(ce, rel=1e-6)
    assert _initial(rep)["loss"] != pytest.approx(float(nn.functional.nll_loss(SCORES, LABELS)))


def test_zero_scores_start_exactly_at_the_chance_loss_of_each_loss():
    model, X, y = _case("multiclass")
    with torch.no_grad():
        model[-1].weight.zero_()
        model[-1].bias.zero_()
    for name, expected in (("cross_entropy", math.log(4)), ("hinge", 3.0)):
        f = trainwell.doctor(model, (X, y), loss=name, checks=["initial_loss"]).get("loss.initial")
        assert f[0].status == "pass"
        assert f[0].evidence["loss"] == pytest.approx(expected, rel=1e-6)
        assert f[0].evidence["expected"] == pytest.approx(expected)


def test_the_doctor_builds_with_the_trainers_factories(monkeypatch):
    made_losses, made_optimizers = [], []
    real_loss, real_optimizer = losses.make_loss, optim.make_optimizer

    def spy_loss(cfg, task, n_outputs=None):
        made_losses.append((cfg, task, n_outputs))
        return real_loss(cfg, task, n_outputs)

    def spy_optimizer(cfg, params):
        made_optimizers.append(cfg)
        return real_optimizer(cfg, params)

    monkeypatch.setattr(losses, "make_loss", spy_loss)
    monkeypatch.setattr(optim, "make_optimizer", spy_optimizer)
    model, X, y = _case("multiclass")
    cfg = {"lr_iters": 20, "probe_iters": 10, "probe_lrs": [0.1], "overfit_iters": 10}
    trainwell.doctor(
        model, (X, y), loss="ce", optimizer={"name": "momentum", "momentum": 0.5}, lr=0.01,
        config=cfg, checks=["initial_loss", "overfit", "lr"],
    )
    assert made_losses and {(c.name, t, n) for c, t, n in made_losses} == {
        ("cross_entropy", "multiclass", 4)
    }
    names = {(c.name, c.momentum) for c in made_optimizers}
    assert ("momentum", 0.5) in names  # the LR checks: the optimizer the user named
    assert ("adam", None) in names  # the overfit checks: lecture 004's Adam, same factory
    assert all(isinstance(c, OptimizerConfig) for c in made_optimizers)


def test_optimizers_as_the_trainer_takes_them():
    model, X, y = _case("multiclass")
    seen = []

    def factory(params, lr):
        seen.append(lr)
        return torch.optim.SGD(params, lr=lr)

    for spec in ("nesterov", {"name": "sgd"}, OptimizerConfig(name="rmsprop"), factory):
        p = make_problem(model, (X, y), optimizer=spec)
        opt = p.optimizer(p.fresh().parameters(), 0.05)
        assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups[0]["lr"] == 0.05
    assert seen == [0.05]
    assert make_problem(model, (X, y), optimizer="nesterov").optimizer(
        model.parameters(), 0.1
    ).param_groups[0]["nesterov"]
    with pytest.raises(ConfigError, match="got a SGD instance"):
        make_problem(model, (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ConfigError, match="momentum does not apply to 'adam'"):
        make_problem(model, (X, y), optimizer={"name": "adam", "momentum": 0.9})


def test_bad_losses_are_refused_naming_the_field():
    model, X, y = _case("multiclass")
    with pytest.raises(ConfigError, match="doctor: loss: unknown loss 'hnge'; did you mean"):
        make_problem(model, (X, y), loss="hnge")
    with pytest.raises(ConfigError, match=r"(?s)margin: .*greater than 0"):
        make_problem(model, (X, y), loss={"name": "hinge", "margin": -1})
    with pytest.raises(ConfigError, match="loss must be a loss name.*got int"):
        make_problem(model, (X, y), loss=3)


def test_torch_loss_modules_map_to_registered_losses():
    model, X, y = _case("regression")
    rep = trainwell.doctor(model, (X, y), loss=nn.HuberLoss(delta=0.5), checks=["initial_loss"])
    ev = _initial(rep)
    assert rep.info["loss"] == "huber"
    assert ev["expected"] == pytest.approx(chance_loss({"name": "huber", "delta": 0.5},
                                                       "regression", None, y))
    summed = trainwell.doctor(model, (X, y), loss=nn.MSELoss(reduction="sum"),
                              checks=["initial_loss"])
    assert summed.info["loss"] == "custom" and _initial(summed)["expected"] is None
    model, X, y = _case("multiclass")
    rep = trainwell.doctor(model, (X, y), loss=nn.CrossEntropyLoss(), checks=["initial_loss"])
    assert rep.info["loss"] == "cross_entropy" and _initial(rep)["expected"] == pytest.approx(
        math.log(4)
    )


class _HeadFirst(nn.Module):
    """A module that declares its 3-class head before its hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 3)
        self.body = nn.Linear(5, 16)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_the_task_comes_from_the_data_the_outputs_and_the_loss():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=g)
    binary = (X[:, :1] > 0).float()  # float (N, 1) labels of 0.0 / 1.0 with one logit
    rep = trainwell.doctor(nn.Linear(5, 1), (X, binary), checks=["initial_loss"])
    assert (rep.info["task"], rep.info["loss"]) == ("binary", "bce")
    rep = trainwell.doctor(_HeadFirst(), (X, torch.randint(0, 3, (64,), generator=g)),
                           checks=["initial_loss"])
    assert (rep.info["task"], rep.info["loss"]) == ("multiclass", "cross_entropy")
    rep = trainwell.doctor(nn.Linear(5, 1), (X, X[:, 0]), checks=["initial_loss"])
    assert (rep.info["task"], rep.info["loss"]) == ("regression", "l2")
    rep = trainwell.doctor(nn.Linear(5, 3), (X, X[:, :3]), loss="huber", checks=["initial_loss"])
    assert rep.info["task"] == "regression"


def test_a_loss_the_trainer_refuses_fails_loss_task_with_its_reason():
    model, X, y = _case("multiclass")
    rep = trainwell.doctor(model, (X, y), loss="bce", task="multiclass", checks=["initial_loss"])
    f = rep.get("loss.task")[0]
    assert f.status == "fail" and "does not fit a multiclass task" in f.detail
    assert f.advice[0].startswith("use cross_entropy (or hinge)")
    assert not rep.get("loss.initial")  # the checks that compute the loss are skipped


def test_one_logit_on_many_classes_is_found():
    model, X, _ = _case("binary")
    y = torch.randint(0, 5, (len(X),), generator=torch.Generator().manual_seed(1))
    f = trainwell.doctor(model, (X, y), checks=["initial_loss"]).get("loss.task")[0]
    assert f.status == "fail" and "more than two classes" in f.title
    assert "5 outputs" in f.advice[0]
