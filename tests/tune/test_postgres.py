"""Two workers on one study stored in a real PostgreSQL server (started by the fixture)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from trainwell.tune.study import tune

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # synthetic.py, the objectives beside this file

QUAD = "synthetic:quadratic"


@pytest.mark.postgres
def test_two_workers_share_one_postgresql_study(runs_dir, postgres_url):
    space = {
        "train.optimizer.lr": "loguniform(1e-4, 1e-1)",
        "model.dropout": "uniform(0, 0.5)",
        "model.activation": ["relu", "tanh"],
    }
    cfg = {
        "name": "pg",
        "log": {"report": False},
        "tune": {"method": "grid", "grid_points": 2, "space": space, "pruner": {"name": "none"}},
    }
    study = tune(cfg, objective=QUAD, workers=2, storage=postgres_url)
    # the study lives in PostgreSQL, not in a study.db
    assert not (study.dir / "study.db").exists()
    stored = optuna.load_study(study_name=study.dir.name, storage=postgres_url)
    points = [tuple(sorted(t.params.items())) for t in stored.trials]
    assert len(points) == 2 * 2 * 2 == len(set(points))  # every grid point once, none twice
    assert all(t.state.name == "COMPLETE" for t in stored.trials)
    assert study.best_value == pytest.approx(min(t.value for t in stored.trials))
    # a second study (random, two workers) in the same database, continued with --resume
    cfg2 = {
        "name": "pg2",
        "log": {"report": False},
        "tune": {"method": "random", "trials": 4, "space": space, "pruner": {"name": "none"}},
    }
    s2 = tune(cfg2, objective=QUAD, workers=2, storage=postgres_url)
    tune(None, resume=s2.dir, sets=["tune.trials=6"], objective=QUAD)
    trials = optuna.load_study(study_name=s2.dir.name, storage=postgres_url).trials
    assert len(trials) == 6 and len({t.params["train.optimizer.lr"] for t in trials}) == 6
