"""The [train] section: boundaries accepted, values past them refused with the field named."""

from __future__ import annotations

import pytest

from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.train.config import TrainConfig


def test_defaults_round_trip_through_toml():
    cfg = load_config(
        {
            "train": {
                "penalty": {"name": "l2", "lambda": 1e-4},
                "optimizer": "nesterov",
                "schedule": {"name": "step", "warmup": 2},
            }
        }
    )
    again = load_config(cfg.to_dict())
    assert again.train == cfg.train
    assert cfg.train.optimizer.kwargs() == {
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.0,
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=0", "train.epochs"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.optimizer.momentum=1.0", "train.optimizer.momentum"),
        ("train.penalty.lambda=-1", "train.penalty.lambda"),
        ("train.grad_clip=0", "train.grad_clip"),
        ("train.accumulate=0", "train.accumulate"),
        ("train.precision='fp8'", "train.precision"),
        (
            "train.device='tpu'",
            "train.device: must be one of auto, cpu, cuda, cuda:N, mps; got 'tpu'",
        ),
        ("train.schedule.gamma=1.5", "train.schedule.gamma"),
        ("train.early_stopping.patience=0", "train.early_stopping.patience"),
        ("train.optimizer.nam='adam'", "did you mean 'train.optimizer.name'"),
    ],
)
def test_values_past_the_boundary_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config({}, [override])


def test_boundary_values_are_accepted():
    cfg = load_config(
        {},
        [
            "train.epochs=1",
            "train.batch_size=1",
            "train.optimizer.name='sgd'",
            "train.optimizer.momentum=0.0",
            "train.penalty.lambda=0",
            "train.schedule.gamma=1",
            "train.early_stopping.patience=1",
            "train.device='cuda:0'",
            "train.checkpoint_every=0",
        ],
    )
    assert cfg.train.epochs == 1 and cfg.train.device == "cuda:0"
    assert TrainConfig(loss="mse").loss.name == "l2"


def test_the_trainers_own_specs_are_checked_with_the_field_named_once():
    from torch import nn

    from trainwell.train import Trainer

    with pytest.raises(
        ConfigError,
        match=r"^invalid train.schedule:\n  name: unknown schedule "
        r"'cosinee'; did you mean 'cosine'\? valid: ",
    ):
        Trainer(nn.Linear(2, 2), schedule="cosinee")
    with pytest.raises(
        ConfigError,
        match=r"^invalid train.optimizer:\n  name: unknown optimizer "
        r"'foo'; valid: ",
    ):
        Trainer(nn.Linear(2, 2), optimizer="foo")


def test_schedule_names_and_the_schedule_registry_agree():
    from trainwell.train.config import SCHEDULE_NAMES
    from trainwell.train.schedules import SCHEDULES

    assert SCHEDULES.names() == SCHEDULE_NAMES.names()


def test_penalty_names_and_the_penalty_registry_agree():
    import typing

    from trainwell.train.config import PenaltyConfig
    from trainwell.train.penalties import PENALTIES

    names = set(typing.get_args(PenaltyConfig.model_fields["name"].annotation)) - {"none"}
    assert set(PENALTIES.names()) == names
