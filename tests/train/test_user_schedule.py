"""``schedule=`` as a torch LR scheduler (instance, factory or dict) and ``early_stopping=`` as
a dict, with exact resume through the checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, MultiStepLR, OneCycleLR, ReduceLROnPlateau

from trainwell.errors import ConfigError
from trainwell.train.trainer import Trainer

X = torch.randn(96, 5, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).long() + (X[:, 2] > 1).long()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def test_a_factory_is_stepped_once_per_epoch_as_torch_documents():
    t = Trainer(_net(), epochs=5, seed=0, optimizer={"name": "sgd", "lr": 0.1},
                schedule=lambda opt: MultiStepLR(opt, milestones=[2, 4], gamma=0.1))
    t.fit((X, Y))
    assert [r["lr"] for r in t.history] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_an_instance_on_the_trainers_optimizer_and_a_step_interval_dict():
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    sched = OneCycleLR(opt, max_lr=0.5, total_steps=4 * 3)
    t = Trainer(net, epochs=4, batch_size=32, seed=0, optimizer=opt,
                schedule={"scheduler": sched, "interval": "step"})
    lrs = []
    t.callbacks.append(type("Lr", (), {"after_loss": lambda self, tr: lrs.append(tr.lr)})())
    t.fit((X, Y))
    ref_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.05)
    ref = OneCycleLR(ref_opt, max_lr=0.5, total_steps=12)
    expected = []
    for _ in range(12):
        expected.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert lrs == pytest.approx(expected)


def test_reduce_on_plateau_watches_its_monitor():
    t = Trainer(_net(), epochs=4, seed=0, optimizer={"name": "sgd", "lr": 0.1},
                schedule={"scheduler": lambda o: ReduceLROnPlateau(o, patience=0, factor=0.5),
                          "monitor": "val_accuracy"})
    t.fit((X[:64], Y[:64]), (X[64:], Y[64:]))
    assert t.history[-1]["lr"] < 0.1  # accuracy (minimized by torch's default mode) stalls
    bad = Trainer(_net(), epochs=1, seed=0,
                  schedule={"scheduler": lambda o: ReduceLROnPlateau(o), "monitor": "val_nope"})
    with pytest.raises(ConfigError, match="ReduceLROnPlateau monitors 'val_nope', which is not "
                       "logged"):
        bad.fit((X[:64], Y[:64]), (X[64:], Y[64:]))


def test_refusals_name_what_is_wrong():
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="built on another optimizer than the trainer's"):
        Trainer(_net(), epochs=1, seed=0, schedule=MultiStepLR(other, [1])).fit((X, Y))
    with pytest.raises(ConfigError, match="interval must be 'epoch' or 'step'; got 'batch'"):
        Trainer(_net(), schedule={"scheduler": lambda o: MultiStepLR(o, [1]),
                                  "interval": "batch"})
    with pytest.raises(ConfigError, match="train.early_stopping"):
        Trainer(_net(), early_stopping={"metric": "val_loss", "patiense": 3})


def test_early_stopping_as_a_dict():
    t = Trainer(_net(), epochs=30, seed=0, optimizer={"name": "sgd", "lr": 1e-6},
                early_stopping={"metric": "val_accuracy", "patience": 2})
    t.fit((X[:64], Y[:64]), (X[64:], Y[64:]))
    assert t.stopped_early and len(t.history) == 3  # lr ~0: accuracy never improves


def _lambda_trainer(epochs: int, ckpt) -> Trainer:
    return Trainer(_net(), epochs=epochs, seed=0, batch_size=32, checkpoint_dir=ckpt,
                   optimizer={"name": "sgd", "lr": 0.2, "momentum": 0.9},
                   schedule=lambda o: LambdaLR(o, lambda e: 0.5 ** e))


def test_resume_with_a_user_scheduler_is_exact(tmp_path):
    whole = _lambda_trainer(4, None).fit((X, Y))
    _lambda_trainer(2, tmp_path).fit((X, Y))
    resumed = _lambda_trainer(4, tmp_path).fit((X, Y), resume=tmp_path)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in whole.history]
    assert resumed.history[-1]["train_loss"] == whole.history[-1]["train_loss"]
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    named = Trainer(_net(), epochs=4, seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="written with a torch scheduler|not a torch"):
        _lambda_trainer(4, None).fit((X, Y), resume=_named_checkpoint(named, tmp_path))


def _named_checkpoint(trainer: Trainer, tmp_path):
    path = tmp_path / "named"
    trainer.checkpoint_dir = path
    trainer.epochs = 1
    trainer.fit((X, Y))
    return path
