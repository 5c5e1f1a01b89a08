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


def test_a_trial_run_again_reuses_what_its_run_directory_holds(runs_dir):
    from trainwell.tune.objective import earlier_run, train_trial

    cfg = load_config(IRIS)
    trials = runs_dir / "trials"
    first = optuna.create_study().ask()
    value = train_trial(cfg, first, "val_loss", trials)
    # the trial is run again (it was put back in the queue after its run had ended): the
    # finished run is read, not trained again, and the trial gets its whole curve
    again = optuna.create_study()
    trial = again.ask()
    mtime = (trials / "0" / "model.safetensors").stat().st_mtime_ns
    assert train_trial(cfg, trial, "val_loss", trials) == value
    assert (trials / "0" / "model.safetensors").stat().st_mtime_ns == mtime
    assert sorted(again.trials[0].intermediate_values) == [1, 2, 3]
    # interrupted before its first checkpoint: nothing worth keeping, trained from the start
    meta = json.loads((trials / "0" / "meta.json").read_text())
    (trials / "0" / "meta.json").write_text(json.dumps({**meta, "status": "failed"}))
    (trials / "0" / "checkpoints" / "last.json").unlink()
    assert earlier_run(trials / "0", cfg) is None and not (trials / "0").exists()
    # a run directory of another config is kept, moved aside
    train_trial(cfg, optuna.create_study().ask(), "val_loss", trials)
    other = cfg.model_copy(deep=True)
    other.train.epochs = 4
    assert earlier_run(trials / "0", other) is None
    assert (trials / "0-old" / "config.toml").is_file() and not (trials / "0").exists()
