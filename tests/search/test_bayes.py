"""trainwell's GP sampler: the lecture's UCB schedule and EI formula, and the sampler on Optuna."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from trainwell.errors import ConfigError
from trainwell.search.bayes import BayesSampler, expected_improvement, ucb_beta
from trainwell.search.config import TuneConfig
from trainwell.search.optuna_internals import GaussianProcess
from trainwell.search.samplers import list_samplers, make_sampler

SYNTHETIC = Path(__file__).resolve().parents[1] / "tune"  # tests/tune/synthetic.py
if str(SYNTHETIC) not in sys.path:
    sys.path.insert(0, str(SYNTHETIC))

from synthetic import PROBLEMS, branin  # noqa: E402


def test_ucb_beta_is_the_lectures_schedule():
    # lecture 002: beta = 0.8^t, t = 1, 2, 3 -> 0.8, 0.64, 0.512
    assert [ucb_beta(t) for t in (1, 2, 3)] == pytest.approx([0.8, 0.64, 0.512])
    assert ucb_beta(4, beta0=2.6) == pytest.approx(2.6 * 0.8**4)
    assert ucb_beta(30, beta0=2.0, beta_min=0.5) == 0.5


def test_expected_improvement_matches_numerical_integration():
    from scipy.integrate import quad
    from scipy.stats import norm

    mu, sigma, best, delta = np.array([0.3, -1.0, 2.0]), np.array([0.5, 1.5, 0.1]), 0.5, 0.1
    # EI = E[max(0, Y - best - delta)], Y ~ N(mu, sigma^2), integrated directly
    exact = [
        quad(lambda y, m=m, s=s_: (y - best - delta) * norm.pdf(y, m, s), best + delta, np.inf)[0]
        for m, s_ in zip(mu, sigma, strict=True)
    ]
    assert expected_improvement(mu, sigma, best, delta) == pytest.approx(exact, rel=1e-7, abs=1e-12)


def _fitted_gp(seed=0):
    from optuna.distributions import FloatDistribution

    model = GaussianProcess({"x0": FloatDistribution(0, 1), "x1": FloatDistribution(0, 1)})
    rng = np.random.default_rng(seed)
    X = rng.random((12, 2))
    y = np.array([-branin(15 * a - 5, 15 * b) for a, b in X])
    y = (y - y.mean()) / y.std()
    model.fit(X, y, deterministic=False)
    return model, y


def test_acquisitions_are_the_lectures_formulas_on_the_gp_posterior():
    model, y = _fitted_gp()
    x = np.random.default_rng(1).random((50, 2))
    mean, var = model.posterior(x)
    mu, sigma = mean, np.sqrt(var)
    ucb = model.evaluate(model.ucb(0.64), x)
    assert ucb == pytest.approx(mu + 0.64 * sigma, rel=1e-9)  # mu + beta * sigma
    log_ei = model.evaluate(model.log_ei(best=float(y.max()), delta=0.05), x)
    assert np.exp(log_ei) == pytest.approx(
        expected_improvement(mu, sigma, float(y.max()), 0.05), rel=1e-5, abs=1e-12
    )


def _run(sampler, problem="branin", n=16):
    p = PROBLEMS[problem]
    study = optuna.create_study(sampler=sampler)
    study.optimize(p.objective, n_trials=n)
    return study, study.best_value - p.optimum


def test_ucb_uses_the_decaying_beta_step_by_step():
    sampler = BayesSampler(acquisition="ucb", n_startup_trials=3, seed=0)
    betas = []
    study = optuna.create_study(sampler=sampler)
    for _ in range(7):
        study.optimize(PROBLEMS["branin"].objective, n_trials=1)
        if sampler.last_acquisition is not None:
            betas.append(sampler.last_acquisition)
            sampler.last_acquisition = None
    assert betas == [("ucb", pytest.approx(0.8**t)) for t in (1, 2, 3, 4)]


def test_default_portfolio_alternates_ei_and_floored_ucb():
    s = BayesSampler(seed=0)
    kinds = [s.step_acquisition(t) for t in range(1, 7)]
    assert [k for k, _ in kinds] == ["ei", "ucb"] * 3
    assert kinds[1][1] == pytest.approx(2.0 * 0.8**2)
    assert s.step_acquisition(40) == ("ucb", 0.5)  # the floor
    assert (
        s.startup_trials(2) == 4
        and s.startup_trials(6) == 4
        and s.startup_trials(12) == 6
        and s.startup_trials(30) == 10
    )


@pytest.mark.parametrize("acquisition", ["auto", "ei"])
def test_sampler_beats_random_search_on_branin(acquisition):
    # same seeds, same budget: the GP's choice lands far closer to a minimum than random picks
    _, regret = _run(BayesSampler(acquisition=acquisition, seed=3), n=18)
    _, random_regret = _run(optuna.samplers.RandomSampler(seed=3), n=18)
    assert regret < 0.5 and regret < random_regret


def test_lecture_ucb_converges_on_a_smooth_bowl():
    sampler = BayesSampler(acquisition="ucb", seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2, n_trials=12)
    assert abs(study.best_params["x"] - 1) < 0.05


def test_sampler_works_with_storage_pruner_and_categoricals(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        storage=storage,
        sampler=BayesSampler(seed=0, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
    )

    def objective(trial):
        x = trial.suggest_float("x", -3, 3)
        n = trial.suggest_int("n", 1, 8, log=True)
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        return (x - 1) ** 2 + 0.1 * abs(n - 4) + (0 if act == "tanh" else 0.5)

    study.optimize(objective, n_trials=14)
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage)
    assert len(reloaded.trials) == 14
    assert reloaded.best_params["act"] == "tanh" and abs(reloaded.best_params["x"] - 1) < 0.5


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="acquisition must be one of auto, ucb, ei; got 'pi'"):
        BayesSampler(acquisition="pi")
    with pytest.raises(ConfigError, match="decay"):
        BayesSampler(decay=1.5)
    with pytest.raises(ConfigError, match="tune.bayes.beta0"):
        BayesSampler(beta0=-1)


EXPECTED = {
    "bayes": (BayesSampler, "auto"),
    "ucb": (BayesSampler, "ucb"),
    "ei": (BayesSampler, "ei"),
    "random": (optuna.samplers.RandomSampler, None),
    "grid": (optuna.samplers.RandomSampler, None),  # grid points are enqueued trials
    "tpe": (optuna.samplers.TPESampler, None),
    "gp": (optuna.samplers.GPSampler, None),
    "cmaes": (optuna.samplers.CmaEsSampler, None),
}


@pytest.mark.parametrize("name", list_samplers())
def test_every_registered_sampler_runs_a_small_study(name):
    sampler = make_sampler(TuneConfig(method=name), seed=0)
    cls, acquisition = EXPECTED[name]  # a name missing here fails: every method is checked
    assert type(sampler) is cls
    if acquisition is not None:
        assert sampler.acquisition == acquisition
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: (t.suggest_float("x", -2, 2) - 0.5) ** 2 + t.suggest_float("y", 0, 1), n_trials=8
    )
    assert len(study.trials) == 8 and study.best_value < 2.0


def test_unknown_sampler_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown sampler 'tpee'; did you mean 'tpe'"):
        make_sampler(TuneConfig(), seed=0, method="tpee")


def test_ucb_method_is_the_lectures_schedule_and_ei_margin_is_in_metric_units():
    ucb = make_sampler(TuneConfig(method="ucb"), seed=0)
    assert (ucb.beta0, ucb.decay, ucb.beta_min) == (1.0, 0.8, 0.0)  # beta_t = 0.8^t exactly
    assert [ucb.step_acquisition(t) for t in (1, 2, 3)] == [
        ("ucb", pytest.approx(0.8)),
        ("ucb", pytest.approx(0.64)),
        ("ucb", pytest.approx(0.512)),
    ]
    # EI's delta is given in the metric's units; the GP sees standardized values, so the
    # acquisition's threshold is best + delta / std (of the maximized, sign-flipped values)
    delta = 5.0
    sampler = BayesSampler(acquisition="ei", delta=delta, n_startup_trials=4, seed=0)
    study = optuna.create_study(sampler=sampler)  # minimize 100 * x^2: a metric in large units
    study.optimize(lambda t: 100 * t.suggest_float("x", -1, 1) ** 2, n_trials=5)
    observed = -np.array([t.value for t in study.trials[:4]])
    assert sampler.last_acquisition == ("ei", delta)
    standardized_best = (observed.max() - observed.mean()) / observed.std()
    assert sampler.last_acqf.f0 == pytest.approx(standardized_best + delta / observed.std())


def test_wide_int_parameters_are_searched_continuously_and_rounded_back():
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    from trainwell.search.bayes import relax_ints, round_ints

    space = {"width": IntDistribution(16, 256, log=True), "k": IntDistribution(0, 100, step=5),
             "depth": IntDistribution(1, 4)}
    relaxed = relax_ints(space)
    assert isinstance(relaxed["width"], FloatDistribution) and relaxed["width"].log
    assert isinstance(relaxed["k"], FloatDistribution)  # 21 values
    assert relaxed["depth"] is space["depth"]  # few values: stays discrete
    assert round_ints({"width": 40.6, "k": 12.6, "depth": 2}, space) == {
        "width": 41, "k": 15, "depth": 2
    }
    assert round_ints({"width": 300.0, "k": -1.0, "depth": 4}, space) == {
        "width": 256, "k": 0, "depth": 4
    }

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=BayesSampler(seed=0))
    study.optimize(lambda t: (t.suggest_int("width", 16, 256, log=True) - 100) ** 2
                   + (t.suggest_int("k", 0, 100, step=5) - 35) ** 2, n_trials=14)
    for t in study.trials:
        assert isinstance(t.params["width"], int) and 16 <= t.params["width"] <= 256
        assert isinstance(t.params["k"], int) and t.params["k"] % 5 == 0
    assert study.best_value < 400


def test_a_running_trial_counts_as_observed_at_its_predicted_mean():
    """Kriging believer: a trial still running (another worker's) is in the GP at its predicted
    mean, so the next suggestion goes elsewhere instead of repeating it."""

    def bowl(t):
        return (t.suggest_float("x", -2, 2) - 1) ** 2

    suggestions = {}
    for still_running in (True, False):
        sampler = BayesSampler(acquisition="ucb", n_startup_trials=4, seed=0)
        study = optuna.create_study(sampler=sampler)
        study.optimize(bowl, n_trials=6)
        first = study.ask()
        x_first = first.suggest_float("x", -2, 2)
        if not still_running:
            study.tell(first, state=optuna.trial.TrialState.FAIL)  # gone: not in the GP
        x_next = study.ask().suggest_float("x", -2, 2)
        suggestions[still_running] = abs(x_next - x_first)
    assert suggestions[False] < 1e-5  # the same GP suggests the same point again
    assert suggestions[True] > 1e-3  # with the running trial believed, another one


def test_a_queued_trial_with_its_configuration_counts_as_pending():
    """A trial put back in the queue (an interrupted worker's) will run its configuration
    soon: the next suggestion goes elsewhere, as for a running trial."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    space = {"x": FloatDistribution(-2, 2)}

    def history() -> optuna.Study:
        study = optuna.create_study()
        for x in (-2.0, -1.0, 0.5, 2.0, 1.5):
            study.add_trial(create_trial(params={"x": x}, distributions=space, value=(x - 1) ** 2))
        return study

    probe = create_trial(state=TrialState.WAITING)  # the trial being sampled
    alone = BayesSampler(acquisition="ucb", n_startup_trials=4, seed=0)
    x = alone.sample_relative(history(), probe, space)["x"]
    study = history()
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": {"x": x}}))
    again = BayesSampler(acquisition="ucb", n_startup_trials=4, seed=0)
    assert abs(again.sample_relative(study, probe, space)["x"] - x) > 1e-3
