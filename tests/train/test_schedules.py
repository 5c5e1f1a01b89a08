"""Each schedule's LR at given steps against the lectures' formulas (lectures 000 and 002)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from trainwell.errors import ConfigError
from trainwell.tasks import metric_mode
from trainwell.train.config import SCHEDULE_NAMES, ScheduleConfig
from trainwell.train.early_stopping import EarlyStopping
from trainwell.train.schedules import SCHEDULES, LRSchedule, list_schedules

LR0 = 0.5
SPE = 10  # steps per epoch
EPOCHS = 100


def run_schedule(cfg: dict, steps: int, epochs: int = EPOCHS, metric_values=None) -> list[float]:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    sched = LRSchedule(opt, ScheduleConfig(**cfg), SPE, epochs)
    lrs = []
    for s in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if metric_values is not None and (s + 1) % SPE == 0:
            sched.epoch_end({"val_loss": metric_values[(s + 1) // SPE - 1]})
    return lrs


def test_constant():
    assert set(run_schedule({"name": "constant"}, 50)) == {LR0}


def test_time_based_per_step():
    lrs = run_schedule({"name": "time", "k": 0.01, "unit": "step"}, 200)
    for t in (0, 1, 57, 199):
        assert lrs[t] == pytest.approx(LR0 / (1 + 0.01 * t))  # lecture 000


def test_exponential_per_epoch_fraction():
    lrs = run_schedule({"name": "exponential", "k": 0.05}, 300)
    for step in (0, 15, 299):
        assert lrs[step] == pytest.approx(LR0 / math.exp(0.05 * step / SPE))  # lecture 000


def test_step_decay_at_30_60_90_epochs():
    lrs = run_schedule({"name": "step"}, EPOCHS * SPE)  # defaults: x0.1 at 30, 60, 90 (lecture 002)
    assert lrs[30 * SPE - 1] == pytest.approx(LR0)
    assert lrs[30 * SPE] == pytest.approx(LR0 * 0.1)
    assert lrs[60 * SPE] == pytest.approx(LR0 * 0.01)
    assert lrs[90 * SPE] == pytest.approx(LR0 * 0.001)


def test_cosine_and_linear_over_the_run():
    total = EPOCHS * SPE
    cos = run_schedule({"name": "cosine"}, total)
    lin = run_schedule({"name": "linear"}, total)
    for step in (0, 250, 500, 999):
        t = step / SPE
        # lecture 002
        assert cos[step] == pytest.approx(0.5 * LR0 * (1 + math.cos(t * math.pi / EPOCHS)))
        assert lin[step] == pytest.approx(LR0 * (1 - t / EPOCHS))
    assert cos[500] == pytest.approx(LR0 / 2)


def test_inverse_sqrt():
    lrs = run_schedule({"name": "inverse_sqrt"}, 500)
    assert lrs[5] == pytest.approx(LR0)  # t < 1 epoch: held
    for step in (40, 90, 490):
        assert lrs[step] == pytest.approx(LR0 / math.sqrt(step / SPE))  # lecture 002


def test_warmup_in_front_of_cosine():
    lrs = run_schedule({"name": "cosine", "warmup": 2, "total": 8}, 100, epochs=10)
    assert lrs[0] == pytest.approx(LR0 / 20)
    assert lrs[9] == pytest.approx(LR0 * 10 / 20)
    assert lrs[19] == pytest.approx(LR0)
    assert lrs[20] == pytest.approx(LR0)  # the cosine starts at t = 0 after warmup
    assert lrs[60] == pytest.approx(0.5 * LR0 * (1 + math.cos(4 * math.pi / 8)))


def test_warmup_in_steps_before_step_decay():
    lrs = run_schedule({"name": "step", "warmup": 5, "unit": "step", "milestones": [10]}, 30)
    assert lrs[:5] == pytest.approx([LR0 * (i + 1) / 5 for i in range(5)])
    assert lrs[14] == pytest.approx(LR0) and lrs[15] == pytest.approx(LR0 * 0.1)


def test_reduce_on_plateau_after_patience():
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]
    cfg = {"name": "plateau", "patience": 2, "factor": 0.5}
    lrs = run_schedule(cfg, 6 * SPE, metric_values=values)
    # epoch 2 is best; epochs 3 and 4 are bad (patience 2); epoch 5 is the third bad one -> halve
    assert lrs[5 * SPE - 1] == pytest.approx(LR0)
    assert lrs[5 * SPE] == pytest.approx(LR0 * 0.5)


def test_one_cycle_matches_torch():
    lrs = run_schedule({"name": "onecycle"}, 10 * SPE, epochs=10)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR0, total_steps=100, pct_start=0.3, cycle_momentum=False
    )
    expected = []
    for _ in range(100):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        if len(expected) < 100:
            ref.step()
    assert lrs == pytest.approx(expected)
    assert max(lrs) == pytest.approx(LR0, rel=1e-3)


def test_schedule_state_roundtrip_continues_exactly():
    cfg = {"name": "cosine", "warmup": 1}
    full = run_schedule(cfg, 60, epochs=6)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    s = LRSchedule(opt, ScheduleConfig(**cfg), SPE, 6)
    for _ in range(25):
        opt.step()
        s.step()
    state = s.state_dict()
    opt2 = torch.optim.SGD([p], lr=LR0)
    s2 = LRSchedule(opt2, ScheduleConfig(**cfg), SPE, 6)
    s2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(full[25])


def test_schedule_config_validation():
    with pytest.raises(Exception, match="did you mean 'cosine'"):
        ScheduleConfig(name="cosin")
    with pytest.raises(Exception, match="onecycle has its own warmup"):
        ScheduleConfig(name="onecycle", warmup=1)
    with pytest.raises(Exception, match="milestones must be increasing"):
        ScheduleConfig(name="step", milestones=[60, 30])
    assert ScheduleConfig(name="reduce_on_plateau").name == "plateau"


def test_plateau_on_unlogged_metric_is_refused():
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    s = LRSchedule(opt, ScheduleConfig(name="plateau", metric="val_acc"), SPE, 2)
    msg = "train.schedule.metric 'val_acc' is not logged; logged: train_loss"
    with pytest.raises(ConfigError, match=msg):
        s.epoch_end({"train_loss": 1.0})


# ---------------------------------------------------------------------------- conformance


def test_every_schedule_name_is_registered_once():
    assert SCHEDULES.names() == list_schedules() == SCHEDULE_NAMES.names()
    for alias in SCHEDULE_NAMES.names(aliases=True):
        assert SCHEDULES.get(SCHEDULE_NAMES.canonical(alias)).name in list_schedules()


def _conformance_cfg(name: str) -> ScheduleConfig:
    extra = {"milestones": [1.0]} if name == "step" else {}
    return ScheduleConfig(name=name, metric="train_loss", patience=0, **extra)


@pytest.mark.parametrize("name", list_schedules())
def test_each_schedule_sets_finite_positive_lrs_and_resumes_exactly(name):
    cfg = _conformance_cfg(name)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    sched = LRSchedule(opt, cfg, SPE, 3)
    lrs = []
    for s in range(3 * SPE):
        lr = opt.param_groups[0]["lr"]
        assert math.isfinite(lr) and 0 < lr <= LR0 + 1e-12
        assert sched.lr_at(s) == pytest.approx(lr)  # what the trainer reports at a divergence
        lrs.append(lr)
        opt.step()
        sched.step()
        if (s + 1) % SPE == 0:
            sched.epoch_end({"train_loss": 1.0})  # a plateau from the first epoch on
            if s + 1 == SPE:  # a checkpoint: the optimizer's state and the schedule's
                saved = copy.deepcopy((opt.state_dict(), sched.state_dict()))
    # resumed from the checkpoint after epoch 1, the run continues with the same LRs
    opt2 = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR0)
    again = LRSchedule(opt2, cfg, SPE, 3)
    opt2.load_state_dict(saved[0])
    again.load_state_dict(saved[1])
    resumed = []
    for s in range(SPE, 3 * SPE):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        again.step()
        if (s + 1) % SPE == 0:
            again.epoch_end({"train_loss": 1.0})
    assert resumed == pytest.approx(lrs[SPE:])
    if name not in ("constant", "plateau"):
        assert len(set(lrs)) > 1  # the schedule does change the LR


@pytest.mark.parametrize(
    ("metric", "mode"),
    [("val_loss", "min"), ("val_accuracy", "max"), ("val_auc", "max"), ("val_f1", "max"),
     ("val_r2", "max"), ("train_loss", "min"), ("val_top5_accuracy", "max")],
)
def test_plateau_and_early_stopping_share_the_metric_direction(metric, mode):
    assert metric_mode(metric) == mode
    assert EarlyStopping(metric).mode == mode
    # rising values are improvements for a "max" metric and a plateau for a "min" one
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    sched = LRSchedule(opt, ScheduleConfig(name="plateau", metric=metric, patience=0), SPE, 5)
    for value in (0.5, 0.6, 0.7):
        sched.epoch_end({metric: value})
    assert (opt.param_groups[0]["lr"] == LR0) == (mode == "max")


def test_early_stopping_refuses_an_unknown_mode():
    with pytest.raises(ConfigError, match="mode must be one of auto, min, max; got 'up'"):
        EarlyStopping("val_loss", mode="up")
