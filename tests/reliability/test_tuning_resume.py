"""A resumed study never re-runs a configuration it already tried (issue 12, item 1).

Each study here is interrupted part-way (its objective raises ``KeyboardInterrupt``, as Ctrl-C
does inside a trial), then resumed with the same budget, possibly several times: every trial of
the study ends with a configuration of its own and the budget is completed exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from trainwell.tune.study import tune

TUNE_TESTS = Path(__file__).resolve().parents[1] / "tune"
if str(TUNE_TESTS) not in sys.path:
    sys.path.insert(0, str(TUNE_TESTS))  # synthetic.py, the tuning tests' objectives

import synthetic  # noqa: E402

SPACE = {
    "train.optimizer.lr": "loguniform(1e-4, 1e-1)",
    "model.dropout": "uniform(0, 0.5)",
    "model.activation": ["relu", "tanh"],
}


def _cfg(method, trials, space=SPACE, **tune_fields):
    return {
        "name": "r",
        "log": {"report": False},
        "tune": {
            "method": method,
            "trials": trials,
            "space": space,
            "pruner": {"name": "none"},
            **tune_fields,
        },
    }


def _trials(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    stored = optuna.load_study(
        study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}"
    )
    return stored.get_trials(deepcopy=False)


def _configs(trials) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials]


class _InterruptAfter:
    """The quadratic objective, interrupted (as by Ctrl-C) at its ``n``-th call."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self, cfg, trial) -> float:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return synthetic.quadratic(cfg, trial)


def _interrupted(config, n, **kwargs) -> Path:
    """Run ``tune`` until its objective is interrupted at call ``n``; the study directory."""
    runs = Path("runs")
    before = set(runs.iterdir()) if runs.exists() else set()
    with pytest.raises(KeyboardInterrupt):
        tune(config, objective=_InterruptAfter(n), **kwargs)
    (study_dir,) = set(runs.iterdir()) - before
    return study_dir


def _assert_complete_and_distinct(study_dir: Path, budget: int) -> None:
    trials = _trials(study_dir)
    configs = _configs(trials)
    assert len(set(configs)) == len(configs), f"a configuration was tried twice: {configs}"
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE"] * budget, states  # no FAIL, nothing left queued or running


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_a_study_resumed_with_the_same_budget_tries_no_configuration_twice(runs_dir, method):
    # interrupted at its 3rd trial of 6, resumed and interrupted again after one trial, then
    # resumed to the end: a fresh stream every time (the sampler was reseeded identically on
    # resume, which replayed the first trials, and the Bayesian sampler's start-up points)
    study_dir = _interrupted(_cfg(method, 6), 3)
    assert [t.state.name for t in _trials(study_dir)].count("COMPLETE") == 2
    with pytest.raises(KeyboardInterrupt):
        tune(None, resume=study_dir, objective=_InterruptAfter(2))
    tune(None, resume=study_dir, objective="synthetic:quadratic")
    _assert_complete_and_distinct(study_dir, 6)


def test_an_interrupted_trial_is_run_again_with_its_configuration(runs_dir):
    study_dir = _interrupted(_cfg("random", 4), 2)
    waiting = [t for t in _trials(study_dir) if t.number == 1]
    # back in the queue (not FAIL), holding the configuration it was drawn
    assert waiting[0].state.name == "WAITING"
    fixed = waiting[0].system_attrs["fixed_params"]
    assert set(fixed) == set(SPACE)
    tune(None, resume=study_dir, objective="synthetic:quadratic")
    again = next(t for t in _trials(study_dir) if t.number == 1)
    assert again.state.name == "COMPLETE" and again.params == fixed
    _assert_complete_and_distinct(study_dir, 4)


def test_a_resumed_grid_runs_every_point_once(runs_dir):
    study_dir = _interrupted(_cfg("grid", 1, grid_points=2), 3)
    tune(None, resume=study_dir, objective="synthetic:quadratic")
    _assert_complete_and_distinct(study_dir, 2 * 2 * 2)


def test_a_finite_space_gets_each_configuration_once_and_no_more(runs_dir):
    # 2 activations x 3 depths: six configurations; random draws repeat them by chance, and a
    # budget of 9 cannot be spent without repeating: it is cut to the six
    space = {"model.activation": ["relu", "tanh"], "model.hidden.depth": "int(1, 3)"}
    study = tune(_cfg("random", 4, space=space), objective="synthetic:quadratic")
    tune(None, resume=study.dir, sets=["tune.trials=9"], objective="synthetic:quadratic")
    _assert_complete_and_distinct(study.dir, 6)
