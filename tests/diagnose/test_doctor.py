"""The public entry point: ``trainwell.doctor`` on any module, its errors, its speed on digits."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import trainwell
from trainwell.diagnose import doctor
from trainwell.errors import ConfigError, DataError


def test_reexported_and_full_recipe_on_a_healthy_digits_mlp(digits, make_mlp):
    X, y = digits
    model = make_mlp(hidden=(256, 256))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    rep = trainwell.doctor(model, (X[:800], y[:800]), test=(X[800:], y[800:]), lr=1e-3)
    secs = time.perf_counter() - t0
    assert secs < 30, f"the doctor took {secs:.1f}s on the digits MLP"
    assert rep.exit_code == 0, rep.summary()
    groups = {f.check.split(".")[0] for f in rep.findings}
    assert groups == {"data", "loss", "init", "overfit", "lr"}
    assert rep.suggested_lr is not None and set(rep.info["seconds"]) >= {
        "data",
        "init",
        "overfit",
        "lr",
    }
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _Split:
    def __init__(self, X, y):
        self.X, self.y = X, y


class _Prepared:
    def __init__(self, X, y):
        self.task = "multiclass"
        self.train, self.val, self.test = (
            _Split(X[:600], y[:600]),
            _Split(X[600:800], y[600:800]),
            _Split(X[:100], y[:100]),
        )


def test_prepared_data_uses_its_splits_for_leakage(digits):
    rep = doctor(nn.Linear(64, 10), _Prepared(*digits), checks=["data"])
    f = rep.get("data.leakage")[0]
    assert (
        f.status == "fail"
        and f.evidence["test_duplicates"] == 100
        and f.evidence["val_duplicates"] == 0
    )


def test_bad_inputs_get_clear_errors(digits):
    X, y = digits
    with pytest.raises(ConfigError, match="module must be a torch.nn.Module; got str"):
        doctor("mlp", (X, y))
    with pytest.raises(DataError, match="same number of rows"):
        doctor(nn.Linear(64, 10), (X, y[:10]))
    with pytest.raises(DataError, match="cannot run on the data"):
        doctor(nn.Linear(32, 10), (X, y))
    with pytest.raises(
        ConfigError, match="task must be one of binary, multiclass, regression; got 'multi'"
    ):
        doctor(nn.Linear(64, 10), (X, y), task="multi")
    with pytest.raises(ConfigError, match="did you mean 'overfit'"):
        doctor(nn.Linear(64, 10), (X, y), checks=["overfitt"])
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        doctor(nn.Linear(64, 10), (X, y), optimizer="adm")
    with pytest.raises(ConfigError, match="overfit_iters"):
        doctor(nn.Linear(64, 10), (X, y), config={"overfit_iters": 0})
    with pytest.raises(ConfigError, match="lr must be a positive float; got -1"):
        doctor(nn.Linear(64, 10), (X, y), lr=-1)


def test_a_check_that_crashes_becomes_a_failed_finding(digits):
    class Picky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            if len(x) == 1:
                raise RuntimeError("batch of one")
            return self.fc(x)

    rep = doctor(Picky(), digits, checks=["overfit"])
    f = rep.get("overfit")[0]
    assert f.status == "fail" and "batch of one" in f.detail
