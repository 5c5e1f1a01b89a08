"""Weight averaging in the Trainer: EMA and SWA against hand computations on the recorded
trajectory, BatchNorm statistics against ``update_bn``, evaluation and snapshots on the
averaged weights, the checkpoint's averaged state, and the refusals."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from trainwell.config import load_config
from trainwell.errors import ConfigError, RunError
from trainwell.train import Trainer
from trainwell.train.averaging import AVERAGES, ema_decay, list_averages, make_averager
from trainwell.train.checkpoint import load_training_checkpoint, training_state_problem
from trainwell.train.config import AVERAGE_NAMES, AverageConfig, TrainConfig


def _data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    return X, y


def _net(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(5, 8)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


class Record:
    """Copies of the model's parameters and buffers after every step and at every epoch end,
    and the learning rate of every step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.epochs: dict[int, dict[str, torch.Tensor]] = {}
        self.averaged: dict[int, dict[str, torch.Tensor]] = {}
        self.lrs: list[tuple[int, float]] = []

    def before_batch(self, trainer):
        self.lrs.append((trainer.epoch, trainer.optimizer.param_groups[0]["lr"]))

    def after_step(self, trainer):
        self.steps.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    def after_epoch(self, trainer):
        state = trainer.model.state_dict()
        self.epochs[trainer.epoch] = {k: v.detach().clone() for k, v in state.items()}
        if trainer.averager is not None and trainer.averager.started(trainer.epoch):
            kept = trainer.averager.model().state_dict()
            self.averaged[trainer.epoch] = {k: v.detach().clone() for k, v in kept.items()}


def _float_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point()]


def test_ema_equals_the_exponential_average_of_the_recorded_steps():
    X, y = _data()
    rec = Record()
    t = Trainer(_net(batch_norm=True), epochs=3, batch_size=16, seed=1, optimizer="momentum",
                average={"name": "ema", "decay": 0.8}, callbacks=[rec], threads=None)
    t.fit((X, y))
    assert t.averager.count == len(rec.steps) == 18 and t.averager.decay == 0.8
    averaged = t.averager.module.state_dict()
    # the first update copies, each later one is decay * avg + (1 - decay) * w; BatchNorm's
    # running statistics (use_buffers=True) are averaged the same way
    for key in _float_keys(averaged):
        hand = rec.steps[0][key].double()
        for state in rec.steps[1:]:
            hand = 0.8 * hand + 0.2 * state[key].double()
        torch.testing.assert_close(averaged[key].double(), hand, rtol=1e-5, atol=1e-6)
    # and it is not the last weights
    assert not torch.equal(averaged["0.weight"], rec.steps[-1]["0.weight"])


def test_ema_default_decay_follows_the_run_length():
    assert ema_decay(400) == pytest.approx(0.975)
    assert ema_decay(20) == 0.9 and ema_decay(10**7) == 0.9999
    X, y = _data()
    t = Trainer(_net(), epochs=4, batch_size=8, seed=0, average="ema", threads=None).fit((X, y))
    assert t.averager.decay == pytest.approx(ema_decay(4 * 12))


def test_swa_averages_the_epoch_ends_from_start_with_its_constant_lr():
    X, y = _data()
    rec = Record()
    t = Trainer(_net(), epochs=5, batch_size=16, seed=2, optimizer={"name": "sgd", "lr": 0.1},
                schedule="cosine", average={"name": "swa", "start": 2, "lr": 0.03},
                callbacks=[rec], threads=None)
    t.fit((X, y))
    assert t.averager.count == 4  # epochs 2, 3, 4, 5
    averaged = t.averager.module.state_dict()
    for key in _float_keys(averaged):
        hand = torch.stack([rec.epochs[e][key] for e in (2, 3, 4, 5)]).double().mean(0)
        torch.testing.assert_close(averaged[key].double(), hand, rtol=1e-5, atol=1e-6)
    # SWALR: the constant SWA rate from the first step of epoch 2; the cosine before
    first = [lr for e, lr in rec.lrs if e == 1]
    assert first == pytest.approx([t.schedule.lr_at(i) for i in range(6)]) and first[0] == 0.1
    assert all(lr == pytest.approx(0.03) for e, lr in rec.lrs if e >= 2)


def test_swa_every_second_epoch_and_a_fractional_start():
    X, y = _data()
    rec = Record()
    t = Trainer(_net(), epochs=6, batch_size=32, seed=3, callbacks=[rec], threads=None,
                average={"name": "swa", "start": 0.5, "every": 2})  # from epoch 4: 4 and 6
    t.fit((X, y))
    assert t.averager.first_epoch == 4 and t.averager.count == 2
    averaged = t.averager.module.state_dict()
    hand = (rec.epochs[4]["2.weight"] + rec.epochs[6]["2.weight"]) / 2
    torch.testing.assert_close(averaged["2.weight"], hand)


def test_swa_recomputes_batch_norm_statistics_like_update_bn():
    X, y = _data(n=96)
    rec = Record()
    t = Trainer(_net(batch_norm=True), epochs=4, batch_size=16, seed=4, callbacks=[rec],
                average={"name": "swa", "start": 3}, threads=None)
    t.fit((X, y))
    averaged = t.averager.model().state_dict()
    # by hand: the mean of the epochs' parameters in a copy, then update_bn on the training
    # data in its order
    hand = copy.deepcopy(_net(batch_norm=True))
    params = {k: (rec.epochs[3][k] + rec.epochs[4][k]) / 2 for k, _ in hand.named_parameters()}
    hand.load_state_dict({**hand.state_dict(), **params})
    update_bn([(X[i : i + 16],) for i in range(0, 96, 16)], hand)
    for key in ("1.running_mean", "1.running_var"):
        torch.testing.assert_close(averaged[key], hand.state_dict()[key])
    # they are not the raw model's statistics
    assert not torch.allclose(averaged["1.running_mean"], rec.epochs[4]["1.running_mean"])


def test_validation_and_the_kept_weights_are_the_averaged_ones():
    X, y = _data(n=128)
    Xv, yv = _data(n=48, seed=9)
    rec = Record()
    t = Trainer(_net(batch_norm=True), epochs=5, batch_size=16, seed=5, callbacks=[rec],
                average={"name": "swa", "start": 3}, threads=None)
    t.fit((X, y), (Xv, yv))
    assert t.best_epoch >= 3  # epochs before the start are not candidates
    kept = t.model.state_dict()
    for k, v in rec.averaged[t.best_epoch].items():
        assert torch.equal(kept[k], v)
    # the val loss recorded for the best epoch is that of the weights kept
    assert t.evaluate((Xv, yv))["val_loss"] == t.history[t.best_epoch - 1]["val_loss"]
    raw = _net(batch_norm=True)
    raw.load_state_dict(rec.epochs[t.best_epoch])
    assert t.evaluate((Xv, yv), model=raw)["val_loss"] != t.history[t.best_epoch - 1]["val_loss"]


def test_ema_validation_from_the_first_epoch():
    X, y = _data(n=64)
    Xv, yv = _data(n=32, seed=8)
    rec = Record()
    t = Trainer(_net(), epochs=2, batch_size=16, seed=6, callbacks=[rec],
                average={"name": "ema", "decay": 0.5}, threads=None)
    t.fit((X, y), (Xv, yv))
    assert sorted(rec.averaged) == [1, 2]
    ema = _net()
    ema.load_state_dict(rec.averaged[1])
    assert t.evaluate((Xv, yv), model=ema)["val_loss"] == t.history[0]["val_loss"]


def test_the_checkpoint_holds_both_weight_sets_and_the_count(tmp_path):
    X, y = _data()
    t = Trainer(_net(batch_norm=True), epochs=3, batch_size=16, seed=7, average="ema",
                checkpoint_dir=tmp_path, threads=None)
    t.fit((X, y))
    state = load_training_checkpoint(tmp_path, _net(batch_norm=True))
    assert state["average"]["count"] == 18 and state["average"]["name"] == "ema"
    for k, v in t.averager.module.state_dict().items():
        assert torch.equal(state["average"]["weights"][k], v)
    assert not torch.equal(state["average"]["weights"]["0.weight"], state["model"]["0.weight"])
    # a trainer that does not average refuses averaged weights, and the other way round
    plain = Trainer(_net(batch_norm=True), epochs=4, batch_size=16, seed=7, threads=None)
    with pytest.raises(RunError, match="holds averaged weights but this trainer averages none"):
        plain.fit((X, y), resume=tmp_path)
    swa = Trainer(_net(batch_norm=True), epochs=4, batch_size=16, seed=7, threads=None,
                  average={"name": "swa", "start": 2})
    with pytest.raises(RunError, match="averaged weights are 'ema' but this run averages"):
        swa.fit((X, y), resume=tmp_path)
    # averaged weights that do not fit, or a count that is not one, are named
    state["average"]["weights"]["3.weight"] = torch.zeros(4, 8)
    assert training_state_problem(state, _net(batch_norm=True)) == (
        "average.weights holds '3.weight' of shape (4, 8); the model's is (3, 8)"
    )
    state["average"]["count"] = -1
    assert training_state_problem(state).startswith("average.count should be a count")


def test_average_names_agree_with_the_registry_and_bad_settings_are_refused():
    assert list_averages() == AVERAGES.names() == ["ema", "swa"]
    assert AVERAGE_NAMES.canonical("off") == "none" and make_averager("none") is None
    assert TrainConfig.model_validate({"average": "swa"}).average.name == "swa"
    base = {"data": {"source": "builtin:digits"}}
    cases = {
        "train.average.decay=1.5": "train.average.decay: must be in (0, 1) exclusive; got 1.5",
        "train.average.lr=0": "train.average.lr: Input should be greater than 0",
        "train.average.start=25": "train.average.start: 25 (epoch 25) is beyond train.epochs 20",
        "train.average.start=20": "averages 1 set of weights; it needs at least 2",
        "train.average.start=1.5": "must be an epoch (an integer >= 1) or a fraction",
        "train.average.every=0": "train.average.every: Input should be greater than or equal",
    }
    for override, message in cases.items():
        name = "ema" if "decay" in override else "swa"
        with pytest.raises(ConfigError) as info:
            load_config(base, [f"train.average.name={name}", override])
        assert message in str(info.value), str(info.value)
    with pytest.raises(ConfigError, match="train.average.decay: does not apply to 'swa'"):
        load_config(base, ["train.average.name=swa", "train.average.decay=0.9"])
    with pytest.raises(ConfigError, match="unknown weight averaging 'emma'; did you mean 'ema'"):
        load_config(base, ["train.average=emma"])
    # the Trainer checks the same against its own epochs
    with pytest.raises(ConfigError, match="needs at least 2"):
        Trainer(_net(), epochs=1, average="swa", threads=None).fit(_data())
    with pytest.raises(ConfigError, match="invalid train.average"):
        Trainer(_net(), average={"name": "ema", "decay": 0})
    assert AverageConfig(name="swa").swa_epochs(20) == (16, 5)
    # a fraction averages at least the last two epochs (every epoch, or every `every`)
    assert AverageConfig(name="swa").swa_epochs(4) == (3, 2)
    assert AverageConfig(name="swa", start=0.9, every=2).swa_epochs(5) == (3, 2)


def test_swa_lr_keeps_each_parameter_group_ratio():
    X, y = _data()
    net = _net()
    opt = torch.optim.SGD([{"params": net[0].parameters(), "lr": 0.1},
                           {"params": net[2].parameters(), "lr": 0.01}])
    seen: list[list[float]] = []

    class Rates:
        def before_batch(self, trainer):
            if trainer.epoch >= 2:
                seen.append([g["lr"] for g in trainer.optimizer.param_groups])

    Trainer(net, optimizer=opt, epochs=3, batch_size=32, seed=0, callbacks=[Rates()],
            average={"name": "swa", "start": 2, "lr": 0.05}, threads=None).fit((X, y))
    assert len(seen) == 6 and all(r == pytest.approx([0.05, 0.005]) for r in seen)


def test_without_restore_best_the_last_averaged_weights_are_kept():
    X, y = _data()
    Xv, yv = _data(n=32, seed=3)
    t = Trainer(_net(), epochs=3, batch_size=16, seed=1, restore_best=False, threads=None,
                average={"name": "ema", "decay": 0.7})
    t.fit((X, y), (Xv, yv))
    kept, averaged = t.model.state_dict(), t.averager.module.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in averaged.items())
    assert t.evaluate((Xv, yv))["val_loss"] == t.history[-1]["val_loss"]


class StepCounter:
    """A callback whose state (a count and a tensor) must survive a resume."""

    state_key = "counter"

    def __init__(self) -> None:
        self.steps, self.total = 0, torch.zeros(2)

    def after_step(self, trainer):
        self.steps += 1
        self.total += float(trainer.loss.detach())

    def state_dict(self):
        return {"steps": self.steps, "total": self.total.clone()}

    def load_state_dict(self, state):
        self.steps, self.total = int(state["steps"]), state["total"].clone()


def test_callback_state_is_checkpointed_and_restored(tmp_path, caplog):
    X, y = _data()
    first = StepCounter()
    Trainer(_net(), epochs=2, batch_size=32, seed=0, callbacks=[first], threads=None,
            checkpoint_dir=tmp_path).fit((X, y))
    state = load_training_checkpoint(tmp_path)
    assert state["callbacks"]["counter"]["steps"] == 6
    assert torch.equal(state["callbacks"]["counter"]["total"], first.total)
    again = StepCounter()
    Trainer(_net(), epochs=3, batch_size=32, seed=0, callbacks=[again], threads=None,
            checkpoint_dir=tmp_path).fit((X, y), resume=tmp_path)
    assert again.steps == 9
    full = StepCounter()
    Trainer(_net(), epochs=3, batch_size=32, seed=0, callbacks=[full], threads=None).fit((X, y))
    assert torch.equal(again.total, full.total)
    # a callback with no saved state starts afresh, with a warning; two with one key are refused
    other = StepCounter()
    other.state_key = "other"
    with caplog.at_level(logging.WARNING, logger="trainwell"):  # whatever earlier tests set
        Trainer(_net(), epochs=4, batch_size=32, seed=0, callbacks=[other], threads=None).fit(
            (X, y), resume=tmp_path)
    assert other.steps == 3 and "no state for callback StepCounter" in caplog.text
    with pytest.raises(ConfigError, match="two callbacks have the state_key 'counter'"):
        Trainer(_net(), callbacks=[StepCounter(), StepCounter()])


def test_swa_with_batch_norm_refuses_batches_it_cannot_read_before_training():
    X, y = _data()
    rows = [{"x": X[i], "y": y[i]} for i in range(len(X))]
    batches = torch.utils.data.DataLoader(rows, batch_size=16)  # type: ignore[arg-type]

    def step(model, batch):
        return nn.functional.cross_entropy(model(batch["x"]), batch["y"])

    t = Trainer(_net(batch_norm=True), step=step, epochs=3, seed=0, threads=None,
                average={"name": "swa", "start": 2})
    with pytest.raises(ConfigError, match="swa recomputes BatchNorm statistics .* got dict"):
        t.fit(batches)
    assert t.step == 0


@pytest.mark.parametrize("loader", [False, True])
def test_averaging_leaves_the_training_trajectory_unchanged(loader):
    """EMA, and SWA without its own LR, only watch: the raw weights end as without them, bit
    for bit, though SWA's BatchNorm passes iterate the data (and dropout) between epochs."""
    X, y = _data(n=96)
    Xv, yv = _data(n=32, seed=5)

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(8, 3))

    def train(average):
        rec = Record()
        data = (X, y)
        if loader:
            g = torch.Generator().manual_seed(1)
            data = torch.utils.data.DataLoader(  # type: ignore[assignment]
                torch.utils.data.TensorDataset(X, y), batch_size=16, shuffle=True, generator=g)
        t = Trainer(net(), epochs=4, seed=0, batch_size=16, callbacks=[rec], threads=None,
                    average=average)
        t.fit(data, (Xv, yv))
        return rec, t

    plain, plain_trainer = train(None)
    for average in ("ema", {"name": "swa", "start": 2}):
        rec, t = train(average)
        assert t.averager.count > 0 and rec.averaged
        for epoch in (1, 4):
            assert all(torch.equal(v, plain.epochs[epoch][k]) for k, v in rec.epochs[epoch].items())
        assert [r["train_loss"] for r in t.history] == [
            r["train_loss"] for r in plain_trainer.history
        ]


@pytest.mark.parametrize("name", list_averages())
def test_every_registered_method_averages_and_keeps_its_average(name):
    X, y = _data()
    rec = Record()
    t = Trainer(_net(batch_norm=True), epochs=3, batch_size=32, seed=0, callbacks=[rec],
                average=name, threads=None)
    t.fit((X, y))
    assert AVERAGE_NAMES.canonical(name) == name and t.averager.method.name == name
    assert t.averager.count >= 2 and t.averager.started(3)
    kept = t.model.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in rec.averaged[t.best_epoch].items())
    assert not torch.equal(kept["0.weight"], rec.epochs[t.best_epoch]["0.weight"])


def test_a_run_stopped_before_the_swa_start_keeps_its_last_weights():
    X, y = _data()
    Xv, yv = _data(n=32, seed=3)

    class Stop:
        def after_epoch(self, trainer):
            trainer.stop_training = True

    rec = Record()
    t = Trainer(_net(), epochs=4, batch_size=32, seed=0, callbacks=[rec, Stop()], threads=None,
                average={"name": "swa", "start": 3})
    t.fit((X, y), (Xv, yv))
    assert t.outcome == "stopped" and t.averager.count == 0 and t.best_epoch == 1
    assert all(torch.equal(t.model.state_dict()[k], v) for k, v in rec.epochs[1].items())
    assert t.evaluate((Xv, yv))["val_loss"] == t.history[0]["val_loss"]
