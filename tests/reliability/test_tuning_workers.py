"""Parallel workers never get the same point (issue 12, item 2).

Two workers that sample at the same moment used to see the same history and no pending trial
(a claimed trial's parameters were stored only once its objective asked for them), so the GP
sampler proposed the same configuration to both: within 1e-7 in every resumed 2-worker study
tried. A claimed trial is now drawn in claim order and counted as pending from then on.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from trainwell.search.config import TuneConfig
from trainwell.search.distinct import DistinctSampler
from trainwell.search.optuna_internals import claim_waiting
from trainwell.search.samplers import make_sampler
from trainwell.search.space import parse_space
from trainwell.tune.interrupts import StopSignals
from trainwell.tune.storage import open_storage
from trainwell.tune.study import tune
from trainwell.tune.worker import claimant, draw

TUNE_TESTS = Path(__file__).resolve().parents[1] / "tune"
if str(TUNE_TESTS) not in sys.path:
    sys.path.insert(0, str(TUNE_TESTS))  # synthetic.py: forked workers import it too


def _tune_fixture(name: str):
    """A fixture of the tuning tests' conftest (the PostgreSQL server), loaded by path."""
    spec = importlib.util.spec_from_file_location("tune_fixtures", TUNE_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


postgres_url = _tune_fixture("postgres_url")

QUAD = "synthetic:quadratic"
# two continuous parameters: a duplicate is a point proposed twice, not a coincidence
SPACE = {"train.optimizer.lr": "loguniform(1e-4, 1e-1)", "model.dropout": "uniform(0, 0.5)"}
LOW, HIGH = math.log10(1e-4), math.log10(1e-1)


def _cfg(name, trials, seed, **tune_fields):
    return {
        "name": name,
        "log": {"report": False},
        "tune": {
            "method": "bayes",
            "trials": trials,
            "space": SPACE,
            "seed": seed,
            "pruner": {"name": "none"},
            **tune_fields,
        },
    }


def _unit(params) -> tuple[float, float]:
    """A configuration in the unit square of the space (log scale for the learning rate)."""
    lr = (math.log10(params["train.optimizer.lr"]) - LOW) / (HIGH - LOW)
    return lr, params["model.dropout"] / 0.5


def _closest_pair(trials) -> float:
    """The smallest distance (max-norm, unit square) between two trials' configurations."""
    points = [_unit(t.params) for t in trials]
    return min(
        max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in itertools.combinations(points, 2)
    )


def _resumed_with_two_workers(seed: int, storage: str | None = None) -> list:
    """Four trials by one worker, then four more by two workers starting at the same instant
    with the same history (a resumed study: where the GP proposed one point to both)."""
    study = tune(_cfg(f"w{seed}", 4, seed), objective=QUAD, storage=storage)
    tune(None, resume=study.dir, sets=["tune.trials=8"], objective=QUAD, workers=2)
    url = storage or f"sqlite:///{study.dir / 'study.db'}"
    trials = optuna.load_study(study_name=study.dir.name, storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 8
    return trials


@pytest.mark.parametrize("seed", [0, 1])
def test_two_workers_of_a_resumed_bayes_study_never_get_the_same_point(runs_dir, seed):
    trials = _resumed_with_two_workers(seed)
    # the kriging believer keeps a pending point's neighbourhood out of the next proposal
    assert _closest_pair(trials) > 1e-3


@pytest.mark.postgres
def test_two_workers_sharing_a_postgresql_study_never_get_the_same_point(runs_dir, postgres_url):
    trials = _resumed_with_two_workers(7, postgres_url)
    assert _closest_pair(trials) > 1e-3


def _worker_study(url: str, name: str) -> optuna.Study:
    """A study handle as one worker holds it: its own connection, its own sampler."""
    params = parse_space(SPACE)
    sampler = DistinctSampler(lambda s: make_sampler(TuneConfig(), s, "bayes"), params, {}, 0)
    return optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)


def test_a_draw_waits_for_the_trials_claimed_before_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    params = parse_space(SPACE)
    dists = {p.path: p.distribution() for p in params}
    for lr, dropout in [(1e-4, 0.0), (1e-1, 0.5), (1e-2, 0.1), (3e-3, 0.3)]:  # a GP's history
        value = (math.log10(lr) + 2) ** 2 + (dropout - 0.2) ** 2
        study.add_trial(
            optuna.trial.create_trial(
                params={"train.optimizer.lr": lr, "model.dropout": dropout},
                distributions=dists,
                value=value,
            )
        )
    for _ in range(2):
        study.enqueue_trial({})
    first, second = _worker_study(url, "s"), _worker_study(url, "s")
    stop = StopSignals()
    a = claim_waiting(first, claimant("test"))
    b = claim_waiting(second, claimant("test"))
    assert a is not None and b is not None
    later = threading.Thread(target=draw, args=(second, b, params, {}, stop))
    later.start()
    time.sleep(1.0)
    # claimed second, it waits for the trial claimed before it to be drawn
    assert later.is_alive()
    assert second.trials[b.number].params == {}
    draw(first, a, params, {}, stop)
    later.join(timeout=60)
    assert not later.is_alive()
    stored = {t.number: t for t in study.trials}
    assert set(stored[a.number].params) == set(stored[b.number].params) == set(SPACE)
    # drawn with the first one pending, the second one keeps away from it
    pa, pb = _unit(stored[a.number].params), _unit(stored[b.number].params)
    assert max(abs(pa[0] - pb[0]), abs(pa[1] - pb[1])) > 1e-3
