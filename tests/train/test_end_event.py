"""The ``end`` event fires after every ending: normal, early stop, divergence, StopRun, error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.errors import DivergenceError, StopRun
from trainwell.train import Callback, Trainer
from trainwell.train.config import EarlyStoppingConfig


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    return X, (X[:, 0] > 0).long()


class EndRecorder(Callback):
    def __init__(self):
        self.ends: list[tuple[str, str | None, int]] = []
        self.after_fit_calls = 0

    def after_fit(self, trainer):
        self.after_fit_calls += 1

    def end(self, trainer):
        err = type(trainer.error).__name__ if trainer.error is not None else None
        self.ends.append((trainer.outcome, err, trainer.epoch))


class RaiseAt(Callback):
    def __init__(self, epoch, exc):
        self.epoch, self.exc = epoch, exc

    def after_epoch(self, trainer):
        if trainer.epoch == self.epoch:
            raise self.exc


def fit(*callbacks, **kw):
    torch.manual_seed(0)
    return Trainer(nn.Linear(4, 2), epochs=kw.pop("epochs", 3), seed=0, callbacks=callbacks, **kw)


def test_end_after_a_normal_fit():
    rec = EndRecorder()
    fit(rec).fit(data())
    assert rec.ends == [("completed", None, 3)] and rec.after_fit_calls == 1


def test_end_after_an_early_stop():
    rec = EndRecorder()
    X, y = data()
    es = EarlyStoppingConfig(metric="val_loss", patience=1, min_delta=10.0)  # never improves enough
    fit(rec, epochs=20, early_stopping=es).fit((X, y), (X, y))
    assert rec.ends[0][0] == "stopped_early" and rec.ends[0][2] < 20 and rec.after_fit_calls == 1


def test_end_after_a_divergence():
    rec = EndRecorder()
    X, y = data()
    with pytest.raises(DivergenceError):
        fit(rec, optimizer={"name": "sgd", "lr": 1e30}, loss="mse").fit(
            (X, torch.stack([y, y], 1).float())
        )
    assert rec.ends[0][:2] == ("diverged", "DivergenceError") and rec.after_fit_calls == 0


def test_end_after_a_stop_run_carries_its_status():
    rec = EndRecorder()
    with pytest.raises(StopRun):
        fit(rec, RaiseAt(2, StopRun(status="pruned"))).fit(data())
    assert rec.ends == [("pruned", "StopRun", 2)]


def test_end_after_an_error_and_the_error_is_not_masked():
    class BrokenEnd(Callback):
        def end(self, trainer):
            raise RuntimeError("end failed")

    rec = EndRecorder()
    with pytest.raises(ValueError, match="boom"):
        fit(BrokenEnd(), rec, RaiseAt(1, ValueError("boom"))).fit(data())
    assert rec.ends == [("failed", "ValueError", 1)]


def test_an_error_in_end_after_success_is_raised():
    class BrokenEnd(Callback):
        def end(self, trainer):
            raise RuntimeError("end failed")

    with pytest.raises(RuntimeError, match="end failed"):
        fit(BrokenEnd()).fit(data())


def test_regression_targets_that_do_not_match_the_outputs_are_named():
    from trainwell.errors import DataError

    X, y = data()
    with pytest.raises(DataError, match="2 output.*targets have 1"):
        fit(loss="mse").fit((X, y.float()))


def test_end_after_an_interrupt():
    rec = EndRecorder()
    with pytest.raises(KeyboardInterrupt):
        fit(rec, RaiseAt(1, KeyboardInterrupt())).fit(data())
    assert rec.ends[0][0] == "interrupted"


def test_end_fires_when_the_fit_fails_before_training():
    rec = EndRecorder()
    es = EarlyStoppingConfig(metric="val_nonsense", patience=3)
    X, y = data()
    from trainwell.errors import ConfigError, RunError

    with pytest.raises(ConfigError, match="val_nonsense"):
        fit(rec, early_stopping=es).fit((X, y), (X, y))
    assert rec.ends == [("failed", "ConfigError", 0)]
    rec2 = EndRecorder()
    with pytest.raises((RunError, ConfigError, FileNotFoundError)):
        fit(rec2).fit((X, y), resume="no/such/checkpoint/dir")
    assert rec2.ends and rec2.ends[0][0] == "failed"


def test_every_end_runs_even_when_one_fails_and_the_first_error_is_raised():
    class BrokenEnd(Callback):
        def end(self, trainer):
            raise RuntimeError("first end failed")

    rec = EndRecorder()
    with pytest.raises(RuntimeError, match="first end failed"):
        fit(BrokenEnd(), rec).fit(data())
    assert rec.ends == [("completed", None, 3)]
