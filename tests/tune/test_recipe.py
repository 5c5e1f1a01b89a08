"""The coarse-to-fine recipe: on a synthetic objective, then end to end with real training."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import optuna
import pytest

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import StopRun
from trainwell.search.optuna_internals import trial_id
from trainwell.tune.objective import PruningCallback
from trainwell.tune.recipe import train_final
from trainwell.tune.study import tune

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # synthetic.py, the objectives beside this file


SPACE = {
    "train.optimizer.lr": "loguniform(1e-4, 1e-1)",
    "model.dropout": "uniform(0, 0.5)",
    "model.activation": ["relu", "tanh", "elu"],
}


def test_recipe_narrows_the_space_and_refines_with_bayes(runs_dir):
    cfg = {
        "name": "r",
        "log": {"report": False},
        "tune": {
            "space": SPACE,
            "pruner": {"name": "none"},
            "recipe": {
                "coarse_trials": 8,
                "coarse_epochs": 2,
                "refine_trials": 6,
                "top_k": 3,
                "refine_epochs": 7,
            },
        },
    }
    study = tune(cfg, objective="synthetic:quadratic", recipe=True)
    info = json.loads((study.dir / "study.json").read_text())
    coarse, refine = info["stages"]
    assert (coarse["method"], coarse["trials"], coarse["epochs"]) == ("random", 8, 2)
    assert (refine["method"], refine["trials"], refine["epochs"]) == ("bayes", 6, 7)
    # the refined range covers the three best coarse values, inside the original range
    lo, hi = (
        float(v) for v in refine["space"]["train.optimizer.lr"][len("loguniform(") : -1].split(",")
    )
    best_lrs = [p["train.optimizer.lr"] for p in refine["narrowed_around"]]
    assert 1e-4 <= lo <= min(best_lrs) and max(best_lrs) <= hi <= 1e-1
    assert math.log(hi / lo) < math.log(1e-1 / 1e-4)
    rows = list(csv.DictReader((study.dir / "trials.csv").open()))
    assert [r["stage"] for r in rows].count("coarse") == 8 and [r["stage"] for r in rows].count(
        "refine"
    ) == 6
    for r in rows:
        if r["stage"] == "refine":
            assert lo <= float(r["params.train.optimizer.lr"]) <= hi
    # best config: the best refined trial, with the refine budget
    assert info["best_trial"]["stage"] == "refine"
    best = load_config(study.dir / "best_config.toml")
    assert best.train.epochs == 7
    assert best.train.optimizer.lr == pytest.approx(study.best_params["train.optimizer.lr"])


def test_recipe_end_to_end_with_real_training(runs_dir):
    cfg = {
        "name": "iris",
        "data": {"source": "builtin:iris"},
        "model": {"hidden": [8]},
        "train": {"epochs": 3, "batch_size": 32},
        "tune": {
            "space": {
                "train.optimizer.lr": "loguniform(1e-3, 3e-1)",
                "model.hidden.width": "logint(4, 32)",
            },
            "metric": "val_loss",
            "pruner": {"name": "median", "startup_trials": 1, "warmup_epochs": 0},
            "recipe": {"coarse_trials": 3, "coarse_epochs": 1, "refine_trials": 2, "top_k": 2},
        },
    }
    study = tune(cfg, recipe=True)
    d = study.dir
    assert sorted(p.name for p in (d / "trials").iterdir()) == [
        "coarse-0",
        "coarse-1",
        "coarse-2",
        "refine-0",
        "refine-1",
    ]
    # each trial is a full run directory whose recorded metric is the study's value
    rows = {(r["stage"], r["number"]): r for r in csv.DictReader((d / "trials.csv").open())}
    curves = json.loads((d / "curves.json").read_text())
    for (stage, number), r in rows.items():
        run = d / "trials" / f"{stage}-{number}"
        if r["state"] == "COMPLETE":
            results = json.loads((run / "results.json").read_text())
            assert float(r["value"]) == pytest.approx(results["best"]["val_loss"])
            epochs = len((run / "metrics.jsonl").read_text().splitlines())
            assert epochs == (1 if stage == "coarse" else 3)
            # per-trial learning curves: the metric of every epoch, as the run logged it
            logged = [
                json.loads(line)["val_loss"]
                for line in (run / "metrics.jsonl").read_text().splitlines()
            ]
            assert curves[f"{stage}-{number}"]["values"] == pytest.approx(logged)
    # the final run trains the best config in full, from best_config.toml
    final = json.loads((d / "final" / "results.json").read_text())
    best = load_config(d / "best_config.toml")
    assert best.train.epochs == 3 and best.model.hidden == [study.best_params["model.hidden.width"]]
    assert load_config(d / "final" / "config.toml").model.hidden == best.model.hidden
    # the study's report.html ([log] report, on by default) and the final run's; none per trial
    assert (d / "report.html").is_file() and (d / "final" / "report.html").is_file()
    assert not list((d / "trials").glob("*/report.html"))
    # best_config.toml is runnable: `trainwell train` gives the final run again (seeded)
    assert main(["train", str(d / "best_config.toml"), "--set", "log.report=false"]) == 0
    again = json.loads((runs_dir / "iris" / "results.json").read_text())
    assert again["best"]["val_loss"] == pytest.approx(final["best"]["val_loss"])
    # --resume of a finished recipe keeps the final run trained from the same best config
    stamp = (d / "final" / "results.json").stat().st_mtime_ns
    assert train_final(best, d) == d / "final"
    assert (d / "final" / "results.json").stat().st_mtime_ns == stamp
    # ... and moves it aside when the best config changed
    other = best.model_copy(deep=True)
    other.train.epochs, other.log.report = 1, False
    train_final(other, d)
    assert (d / "final-old" / "results.json").is_file()
    assert len((d / "final" / "metrics.jsonl").read_text().splitlines()) == 1


class _FakeTrainer:
    def __init__(self):
        self.history = []
        self.epoch = 0


def test_pruning_callback_reports_each_epoch_and_prunes():
    study = optuna.create_study(
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    good = study.ask()
    cb, trainer = PruningCallback(good, "val_loss"), _FakeTrainer()
    for epoch, loss in enumerate([1.0, 0.5, 0.2], 1):
        trainer.history.append({"epoch": epoch, "val_loss": loss})
        cb.after_epoch(trainer)
    study.tell(good, 0.2)
    assert good.storage.get_trial(trial_id(good)).intermediate_values == {1: 1.0, 2: 0.5, 3: 0.2}
    bad = study.ask()
    cb, trainer = PruningCallback(bad, "val_loss"), _FakeTrainer()
    trainer.history.append({"epoch": 1, "val_loss": 3.0})
    # trainwell's own stop signal, with the status the run directory ends with
    with pytest.raises(StopRun) as stop:
        cb.after_epoch(trainer)
    assert stop.value.status == "pruned" and "pruned at epoch 1" in str(stop.value)
    assert not isinstance(stop.value, optuna.TrialPruned)
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError, match="'val_acc' is not among the per-epoch metrics"):
        PruningCallback(study.ask(), "val_acc").after_epoch(trainer)
