"""The sampler a study's workers draw through: a stream per trial, no configuration twice."""

from __future__ import annotations

import optuna
import pytest

from trainwell.search.config import TuneConfig
from trainwell.search.distinct import DistinctSampler, SpaceExhausted, same_config, trial_seed
from trainwell.search.samplers import make_sampler
from trainwell.search.space import parse_space, suggest

SPACE = {
    "train.optimizer.lr": "loguniform(1e-4, 1e-1)",
    "model.dropout": "uniform(0, 0.5)",
    "model.activation": ["relu", "tanh"],
}


def _sampler(method="random", space=SPACE, seed=0) -> DistinctSampler:
    params = parse_space(space)
    return DistinctSampler(lambda s: make_sampler(TuneConfig(), s, method), params, {}, seed)


def _draw(study: optuna.Study, space=SPACE) -> dict:
    trial = study.ask()
    values = suggest(trial, parse_space(space), {})
    study.tell(trial, 0.0)
    return values


def test_a_trials_configuration_depends_on_the_seed_and_its_number_only():
    first = optuna.create_study(sampler=_sampler())
    a = [_draw(first) for _ in range(4)]
    # a second sampler with the same seed, as a resumed study or another worker makes it,
    # does not replay trial 0's stream at trial 4: each trial number has its own
    again = optuna.create_study(sampler=_sampler())
    b = [_draw(again) for _ in range(4)]
    assert a == b  # reproducible from the seed
    assert len({tuple(sorted(c.items())) for c in a}) == 4
    first.sampler = _sampler()  # a fresh sampler on the same study: a resumption
    fifth = _draw(first)
    assert all(not same_config(fifth, c) for c in a)
    other = optuna.create_study(sampler=_sampler(seed=1))
    assert _draw(other) != a[0]


def test_a_proposal_equal_to_a_tried_configuration_is_replaced():
    # what the sampler proposes for trial 1 ...
    probe = optuna.create_study(sampler=_sampler())
    probe.enqueue_trial(
        {"train.optimizer.lr": 1e-3, "model.dropout": 0.1, "model.activation": "relu"}
    )
    _draw(probe)
    proposal = _draw(probe)
    # ... is the configuration trial 0 already has: it is refused, another one drawn
    sampler = _sampler()
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial(proposal)
    assert same_config(_draw(study), proposal)  # a queued configuration is kept as it is
    drawn = _draw(study)
    assert not same_config(drawn, proposal) and sampler.replaced == 1


def test_a_finite_space_gives_every_point_once_then_says_it_is_exhausted():
    space = {"model.activation": ["relu", "tanh"], "model.hidden.depth": "int(1, 2)"}
    study = optuna.create_study(sampler=_sampler(space=space))
    drawn = [_draw(study, space) for _ in range(4)]
    assert len({tuple(sorted(c.items())) for c in drawn}) == 4
    with pytest.raises(SpaceExhausted, match="every one of the 4 configurations"):
        _draw(study, space)


def test_floats_read_back_from_a_database_are_the_same_point():
    assert same_config({"x": 0.1 + 0.2}, {"x": 0.3})
    assert not same_config({"x": 0.3}, {"x": 0.3001})
    assert not same_config({"x": 1.0}, {"x": "1.0"})
    assert not same_config({"x": 1}, {"x": 1, "y": 2})


def test_trial_seeds_differ_by_number_and_attempt():
    seeds = {trial_seed(0, n, a) for n in range(50) for a in range(3)}
    assert len(seeds) == 150


def test_the_gp_sampler_reseeded_draws_the_same_start_up_points():
    from trainwell.search.bayes import BayesSampler

    def startup(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        return [t.params["x"] for t in study.trials]

    a, b = BayesSampler(seed=1), BayesSampler(seed=2)
    b.reseed(1)
    assert startup(a) == startup(b)
