"""What an Optuna user sees of trainwell's studies, read back with plain Optuna, and the docs'
example of trainwell's sampler and pruning callback in a plain Optuna study, run as written."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import optuna
import pytest

from trainwell.tune.study import tune

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # synthetic.py, the objectives beside this file

DOCS = HERE.parents[1] / "docs" / "tuning.md"
SPACE = {"train.optimizer.lr": "loguniform(1e-4, 1e-1)", "model.dropout": "uniform(0, 0.5)"}


def _studies(url: str) -> dict[str, optuna.Study]:
    return {name: optuna.load_study(study_name=name, storage=url)
            for name in optuna.get_all_study_names(url)}


@pytest.mark.slow
def test_the_recipe_stages_are_linked_studies_that_name_their_metric(runs_dir):
    cfg = {"name": "r", "log": {"report": False},
           "tune": {"space": SPACE, "metric": "val_accuracy", "pruner": {"name": "none"},
                    "recipe": {"coarse_trials": 3, "coarse_epochs": 1, "refine_trials": 2,
                               "top_k": 2, "refine_epochs": 2}}}
    study = tune(cfg, objective="synthetic:quadratic", recipe=True)
    studies = _studies(f"sqlite:///{study.dir / 'study.db'}")
    name = study.dir.name  # the study's name: the recipe's stages are <name>/coarse, /refine
    linked = [f"{name}/coarse", f"{name}/refine"]
    assert sorted(studies) == linked
    for stage, n in (("coarse", 3), ("refine", 2)):
        s = studies[f"{name}/{stage}"]
        assert s.metric_names == ["val_accuracy"]
        assert s.user_attrs == {"trainwell:stage": stage, "trainwell:metric": "val_accuracy",
                                "trainwell:recipe": name, "trainwell:recipe_stages": linked}
        trials = s.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        assert len(trials) == n and {t.user_attrs["trainwell:stage"] for t in trials} == {stage}
    assert json.loads((study.dir / "study.json").read_text())["metric"] == "val_accuracy"


@pytest.mark.slow
def test_a_plain_study_names_its_metric(runs_dir):
    cfg = {"name": "p", "log": {"report": False}, "tune": {"space": SPACE, "trials": 2}}
    study = tune(cfg, objective="synthetic:quadratic")
    (only,) = _studies(f"sqlite:///{study.dir / 'study.db'}").values()
    assert only.metric_names == ["val_loss"]
    assert only.user_attrs == {"trainwell:stage": "search", "trainwell:metric": "val_loss"}


def _docs_example() -> str:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- this block runs in tests/tune/test_optuna_users.py -->\n```python\n"
                      r"(.*?)```", text, re.S)
    assert found, "the tested example is missing from docs/tuning.md"
    return found.group(1)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_docs_example_runs_trainwells_sampler_and_pruner_in_a_plain_study(runs_dir,
                                                                               capsys):
    code = _docs_example()
    assert "BayesSampler(seed=0)" in code and "PruningCallback(trial" in code
    scope: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, str(DOCS), "exec"), scope)  # noqa: S102 - the project's own docs
    study = scope["study"]
    assert isinstance(study, optuna.Study)
    assert study.metric_names == ["val_accuracy"]
    states = [t.state for t in study.trials]
    assert len(states) == 6
    assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    runs = runs_dir.parent / "runs" / "plain-optuna"
    for t in study.trials:  # every trial trained a run; a pruned one's directory says so
        meta = json.loads((runs / f"trial-{t.number}" / "meta.json").read_text())
        want = "pruned" if t.state == optuna.trial.TrialState.PRUNED else "completed"
        assert meta["status"] == want
        assert len(t.intermediate_values) >= 1  # the callback reported epochs
    assert "'width'" in capsys.readouterr().out
