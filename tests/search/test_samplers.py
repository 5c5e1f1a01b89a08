"""Samplers and pruners by name: every registered name is made from the config, unknown names
are refused at load with the registry's list, each method says how a study runs it."""

from __future__ import annotations

import optuna
import pytest

from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.search.pruners import PRUNERS, list_pruners, make_pruner
from trainwell.search.samplers import SAMPLERS, list_samplers, method_of


@pytest.mark.parametrize("name", list_pruners())
def test_every_registered_pruner_is_made_from_its_config(name):
    cfg = load_config({"tune": {"pruner": {"name": name, "warmup_epochs": 2}}})
    pruner = make_pruner(cfg.tune.pruner)
    assert isinstance(pruner, optuna.pruners.BasePruner)
    assert PRUNERS.get(name) is PRUNERS.get(cfg.tune.pruner.name)


def test_unknown_method_and_pruner_names_are_refused_with_the_registrys_list():
    with pytest.raises(ConfigError) as exc:
        load_config({"tune": {"method": "bayess"}})
    line = str(exc.value).splitlines()[1].strip()
    valid = ", ".join(SAMPLERS.names(aliases=True))
    assert line == f"tune.method: unknown sampler 'bayess'; did you mean 'bayes'? valid: {valid}"
    with pytest.raises(ConfigError, match="tune.pruner.name: unknown pruner 'medain'; did you"):
        load_config({"tune": {"pruner": {"name": "medain"}}})


@pytest.mark.parametrize("name", list_samplers())
def test_every_method_says_how_a_study_runs_it(name):
    method = method_of(name)
    # only the grid enqueues its points; random search and the grid do not learn from trials,
    # so the recipe refines with bayes after them
    assert method.grid == (name == "grid")
    assert method.guided == (name not in ("grid", "random"))
