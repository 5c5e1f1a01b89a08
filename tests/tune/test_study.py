"""Studies: every method end to end on a synthetic objective, files, resume, workers, dead
workers."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import optuna
import pytest

import trainwell as tw
from trainwell.config import load_config
from trainwell.errors import ConfigError, RunError
from trainwell.search.optuna_internals import claim_waiting, trial_id
from trainwell.tune.study import tune

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # synthetic.py, the objectives beside this file

QUAD = "synthetic:quadratic"
SPACE = {
    "train.optimizer.lr": "loguniform(1e-4, 1e-1)",
    "model.dropout": "uniform(0, 0.5)",
    "model.activation": ["relu", "tanh"],
}


def _cfg(method="random", trials=8, **tune_fields):
    return {
        "name": "q",
        "log": {"report": False},  # the study report is tested once, in test_recipe
        "tune": {
            "method": method,
            "trials": trials,
            "space": SPACE,
            "pruner": {"name": "none"},
            **tune_fields,
        },
    }


def _load(study_dir: Path) -> optuna.Study:
    return optuna.load_study(
        study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}"
    )


@pytest.mark.parametrize("method", ["random", "bayes", "ucb", "ei", "tpe", "gp", "cmaes"])
def test_each_method_runs_and_writes_the_study_files(runs_dir, method):
    study = tune(_cfg(method, trials=6), objective=QUAD)
    d = study.dir
    assert d.parent == Path("runs") and (d / "trials").is_dir()
    for name in (
        "study.db",
        "study.json",
        "trials.csv",
        "best_config.toml",
        "config.toml",
        "curves.json",
    ):
        assert (d / name).is_file(), name
    info = json.loads((d / "study.json").read_text())
    assert info["method"] == method and info["direction"] == "minimize"
    rows = list(csv.DictReader((d / "trials.csv").open()))
    assert len(rows) == 6 and all(r["state"] == "COMPLETE" for r in rows)
    best = min(float(r["value"]) for r in rows)
    assert study.best_value == pytest.approx(best) == pytest.approx(info["best_trial"]["value"])
    # the best config is a runnable, valid config carrying the best parameters
    best_cfg = load_config(d / "best_config.toml")
    assert best_cfg.train.optimizer.lr == pytest.approx(study.best_params["train.optimizer.lr"])
    assert best_cfg.model.dropout == pytest.approx(study.best_params["model.dropout"])
    assert set(info["importances"]) == set(SPACE)
    assert "rank" in study.leaderboard() and "val_loss" in study.leaderboard()


def test_top_level_tune_is_the_same_function(runs_dir):
    study = tw.tune(_cfg("random", trials=3), objective=QUAD)
    assert len(study.rows) == 3


def test_grid_evaluates_every_point_once(runs_dir):
    cfg = _cfg("grid", grid_points=2, important=["train.optimizer.lr"], grid_points_important=3)
    study = tune(cfg, objective=QUAD)
    rows = study.rows
    assert len(rows) == 3 * 2 * 2
    keys = {
        (r["params.train.optimizer.lr"], r["params.model.dropout"], r["params.model.activation"])
        for r in rows
    }
    assert len(keys) == len(rows)
    assert study.best_params["model.activation"] == "tanh"
    assert study.best_params["train.optimizer.lr"] == pytest.approx(
        10**-2.5
    )  # nearest grid point to 1e-2


def test_overrides_and_bad_keywords(runs_dir):
    study = tune(_cfg("random", trials=2), objective=QUAD, trials=4, name="custom")
    assert study.dir.name == "custom" and len(study.rows) == 4
    with pytest.raises(ConfigError, match="unknown keyword 'trails'; did you mean 'trials'"):
        tune(_cfg(), objective=QUAD, trails=3)
    with pytest.raises(RunError, match="already exists"):
        tune(_cfg(), objective=QUAD, name="custom")
    with pytest.raises(ConfigError, match="tune.space is empty"):
        tune({"tune": {"trials": 2}, "log": {"report": False}})


def test_resume_continues_and_keeps_finished_trials(runs_dir):
    first = tune(_cfg("bayes", trials=5), objective=QUAD)
    before = {t.number: t.value for t in _load(first.dir).trials}
    again = tune(None, resume=first.dir, sets=["tune.trials=8"], objective=QUAD)
    after = _load(first.dir).trials
    assert again.dir == first.dir and len(after) == 8
    assert {t.number: t.value for t in after if t.number in before} == before
    assert len(list(csv.DictReader((first.dir / "trials.csv").open()))) == 8


def test_direction_follows_the_metric(runs_dir):
    # the study's direction is trainwell.tasks.metric_direction's: accuracies up, losses down
    cfg = _cfg("random", trials=2, metric="val_accuracy")
    assert json.loads((tune(cfg, objective=QUAD).dir / "study.json").read_text())[
        "direction"
    ] == "maximize"
    cfg = _cfg("random", trials=2, metric="val_accuracy", direction="minimize")
    assert tune(cfg, objective=QUAD).direction == "minimize"


def test_two_workers_share_one_sqlite_study(runs_dir):
    study = tune(
        _cfg("random", trials=12), objective="synthetic:quadratic", workers=2
    )
    trials = _load(study.dir).trials
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    # two processes, two random streams: no parameter set is drawn twice
    assert len({t.params["train.optimizer.lr"] for t in trials}) == 12
    assert len({t.datetime_start.isoformat() for t in trials}) == 12


def test_two_workers_never_evaluate_a_grid_point_twice(runs_dir):
    study = tune(_cfg("grid", grid_points=3), objective=QUAD, workers=2)
    trials = _load(study.dir).trials
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert len(points) == 3 * 3 * 2 == len(set(points))
    assert all(t.state.name == "COMPLETE" for t in trials)


def test_a_callable_objective_needs_an_import_path_with_workers(runs_dir):
    with pytest.raises(ConfigError, match="module:function"):
        tune(_cfg(), objective=lambda cfg, trial: 0.0, workers=2)


def _claimed_elsewhere(study_dir: Path, number: int) -> None:
    """Make trial ``number``'s claim read as made on another machine (whose processes this one
    cannot see): only its heartbeats tell whether its worker is alive."""
    import sqlite3

    with sqlite3.connect(study_dir / "study.db") as conn:
        conn.execute(
            "UPDATE trial_system_attributes SET value_json = json_set(value_json, '$.host', "
            "'elsewhere') WHERE key = 'trainwell:claim' AND trial_id = (SELECT trial_id FROM "
            "trials WHERE number = ?)",
            (number,),
        )


@pytest.mark.parametrize("machine", ["this", "another"])
def test_a_killed_worker_leaves_the_study_consistent(runs_dir, machine):
    """A worker killed mid-trial: its trial is failed and re-queued, every finished trial kept.
    On this machine the dead process is seen at once; on another one, through heartbeats."""
    cfg = _cfg("random", trials=4, heartbeat=1)
    study = tune(cfg, objective=QUAD, trials=2)  # two finished trials to protect
    before = {t.number: (t.value, t.params) for t in _load(study.dir).trials}
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(
        target=tune,
        args=(None,),
        kwargs={
            "resume": study.dir,
            "sets": ["tune.trials=4"],
            "objective": "synthetic:slow_quadratic",
        },
    )
    proc.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            # running, with every parameter sampled (they are stored one by one): the worker is
            # inside the objective, not between two suggestions
            running = [
                t for t in _load(study.dir).trials
                if t.state.name == "RUNNING" and len(t.params) == len(SPACE)
            ]
            if running:
                break
            time.sleep(0.05)
        assert running, "the worker never started a trial"
        os.kill(proc.pid, signal.SIGKILL)  # dies in the middle of a 30-second trial
        proc.join(timeout=30)
    finally:
        if proc.is_alive():
            proc.kill()
    killed = running[0].number
    if machine == "another":
        _claimed_elsewhere(study.dir, killed)
        # past the grace period (2 * heartbeat + 1 s), with a second more because SQLite's
        # CURRENT_TIMESTAMP, which Optuna's heartbeats use, has a resolution of one second
        time.sleep(4.5)
    tune(None, resume=study.dir, sets=["tune.trials=4"], objective=QUAD)
    trials = {t.number: t for t in _load(study.dir).trials}
    assert trials[killed].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == trials[killed].params
    for number, (value, _params) in before.items():
        assert trials[number].state.name == "COMPLETE" and trials[number].value == value
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 4
    assert not any(t.state.name in ("RUNNING", "WAITING") for t in trials.values())


def test_pruning_from_per_epoch_reports(runs_dir):
    cfg = _cfg(
        "random", trials=12, pruner={"name": "median", "startup_trials": 2, "warmup_epochs": 0}
    )
    study = tune(cfg, objective=QUAD)
    states = [r["state"] for r in study.rows]
    assert "PRUNED" in states and "COMPLETE" in states
    curves = json.loads((study.dir / "curves.json").read_text())
    assert all(len(c["values"]) <= 3 for c in curves.values())


def test_bad_storage_url_is_refused(runs_dir):
    with pytest.raises(ConfigError, match="tune.storage"):
        tune(_cfg(), objective=QUAD, storage="nosuchdb://x")
    with pytest.raises(ConfigError, match="cannot open .*driver is not installed"):
        tune(_cfg(), objective=QUAD, storage="mysql://nobody@localhost/x")
    assert not Path("runs").exists() or not list(Path("runs").iterdir())  # no study dir left


def test_plain_postgresql_urls_get_the_installed_driver():
    # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; the postgres extra installs psycopg2
    import importlib.util

    from trainwell.tune.storage import with_driver

    if importlib.util.find_spec("psycopg") is None:  # psycopg 3 absent, as in trainwell's env
        assert with_driver("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    else:
        assert with_driver("postgresql://u@h/db") == "postgresql://u@h/db"
    assert with_driver("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


def test_a_resumed_random_search_does_not_replay_its_configs(runs_dir):
    first = tune(_cfg("random", trials=4), objective=QUAD)
    tune(None, resume=first.dir, sets=["tune.trials=8"], objective=QUAD)
    lrs = [t.params["train.optimizer.lr"] for t in _load(first.dir).trials]
    assert len(lrs) == 8 and len(set(lrs)) == 8


def test_a_study_whose_every_trial_fails_says_why(runs_dir):
    with pytest.raises(
        RunError, match="every trial of .* failed; the first error: ZeroDivisionError"
    ):
        tune(_cfg("random", trials=2), objective=_boom)


def _boom(cfg, trial):
    return 1 / 0


def test_successive_halving_prunes_from_epoch_reports(runs_dir):
    from trainwell.search.pruners import make_pruner

    cfg = _cfg("random", trials=12, pruner={"name": "halving", "warmup_epochs": 1})
    pruner = make_pruner(load_config(cfg).tune.pruner)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    study = tune(cfg, objective=QUAD)
    curves = json.loads((study.dir / "curves.json").read_text())
    pruned = [c for c in curves.values() if c["state"] == "PRUNED"]
    complete = [c for c in curves.values() if c["state"] == "COMPLETE"]
    assert pruned and complete
    assert all(len(c["values"]) < 3 for c in pruned)  # stopped before the last epoch
    assert all(c["epochs"] == [1, 2, 3] for c in complete)
    # the pruned trials are the hopeless ones: none beats the best finished trial at rung 1
    best_first = min(c["values"][0] for c in complete)
    assert all(c["values"][0] > best_first for c in pruned)


def _claimer(url, name, barrier, out):
    from trainwell.tune.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(url))
    barrier.wait()  # every process claims at the same instant
    claimed = []
    while (trial := claim_waiting(study)) is not None:
        claimed.append(trial_id(trial))
    out.put(claimed)


def test_concurrent_claims_on_sqlite_never_hand_out_a_trial_twice(tmp_path):
    """SQLite ignores SELECT ... FOR UPDATE: the claim must be one atomic conditional UPDATE."""
    from trainwell.tune.storage import open_storage

    url = f"sqlite:///{tmp_path / 'claims.db'}"
    study = optuna.create_study(study_name="c", storage=open_storage(url))
    for i in range(24):
        study.enqueue_trial({"x": i}, user_attrs={"trainwell:grid": i})
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(url, "c", barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [tid for _ in procs for tid in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(claimed) == sorted(trial_id(t) for t in study.trials)  # each exactly once
    assert all(t.state.name == "RUNNING" and t.datetime_start for t in study.trials)
