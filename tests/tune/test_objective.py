"""The trial objective: pruning ends a real run with trainwell's StopRun, Optuna sees
TrialPruned."""

from __future__ import annotations

import json

import optuna
import pytest

from trainwell.config import load_config
from trainwell.errors import StopRun
from trainwell.tune.objective import evaluate_config, make_objective
from trainwell.tune.worker import StageSpec, run_trial

IRIS = {
    "name": "iris",
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [8]},
    "train": {"epochs": 3, "batch_size": 32},
    "log": {"report": False},
    "tune": {"method": "random", "space": {"train.optimizer.lr": "loguniform(1e-3, 1e-1)"}},
}


class _AlwaysPrune(optuna.pruners.BasePruner):
    """Prunes every trial at its first report."""

    def prune(self, study, trial) -> bool:  # noqa: ARG002 - Optuna's signature
        return True


def _spec(tmp_path, cfg) -> StageSpec:
    return StageSpec(
        study_dir=str(tmp_path),
        storage="",
        study_name="s",
        config=cfg.to_dict(),
        space=cfg.tune.space,
        method=cfg.tune.method,
        trials=1,
        metric="val_loss",
        direction="minimize",
    )


def test_a_pruned_training_run_is_a_pruned_trial(runs_dir):
    cfg = load_config(IRIS)
    (runs_dir / "trials").mkdir()
    study = optuna.create_study(pruner=_AlwaysPrune())
    objective = make_objective(_spec(runs_dir, cfg), cfg)
    trial = study.ask()
    # the callback stops the run with trainwell's StopRun; the objective hands Optuna its own
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 1"):
        objective(trial)
    run = runs_dir / "trials" / "0"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "pruned"  # the run directory says why it ended, not "failed"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # stopped after epoch 1
    # through the worker's loop the trial is recorded PRUNED, with its one report
    trial = study.ask()
    run_trial(study, trial, objective)
    frozen = study.trials[-1]
    assert frozen.state == optuna.trial.TrialState.PRUNED
    assert list(frozen.intermediate_values) == [1]


def test_a_custom_objective_may_stop_with_stoprun(tmp_path):
    cfg = load_config(IRIS)
    spec = _spec(tmp_path, cfg)
    study = optuna.create_study()

    def pruned(cfg, trial):
        raise StopRun("enough", status="pruned")

    def stopped(cfg, trial):
        raise StopRun("stopped on purpose")

    with pytest.raises(optuna.TrialPruned, match="enough"):
        evaluate_config(study.ask(), cfg.to_dict(), spec, pruned, tmp_path)
    # any other stop is not a pruned trial: it propagates as it is
    with pytest.raises(StopRun, match="stopped on purpose"):
        evaluate_config(study.ask(), cfg.to_dict(), spec, stopped, tmp_path)
