"""trainwell's GP sampler against Optuna's sampler contract: relative and independent sampling,
every kind of distribution, conditional spaces, pruned and failed trials in the study, the
study's seed, and workers asking before others tell."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from trainwell.search.bayes import BayesSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: one parameter of every kind Optuna has
SPACE = {
    "f": FloatDistribution(-2.0, 3.0),
    "flog": FloatDistribution(1e-4, 1e-1, log=True),
    "fstep": FloatDistribution(0.0, 1.0, step=0.25),
    "i": IntDistribution(-3, 5),
    "ilog": IntDistribution(1, 64, log=True),
    "istep": IntDistribution(0, 100, step=10),
    "c": CategoricalDistribution(["relu", "tanh", None, 3]),
}


def _suggest(trial: optuna.Trial) -> dict:
    return {
        "f": trial.suggest_float("f", -2.0, 3.0),
        "flog": trial.suggest_float("flog", 1e-4, 1e-1, log=True),
        "fstep": trial.suggest_float("fstep", 0.0, 1.0, step=0.25),
        "i": trial.suggest_int("i", -3, 5),
        "ilog": trial.suggest_int("ilog", 1, 64, log=True),
        "istep": trial.suggest_int("istep", 0, 100, step=10),
        "c": trial.suggest_categorical("c", ["relu", "tanh", None, 3]),
    }


def _value(p: dict) -> float:
    """Minimum 0 at f = 1, flog = 1e-2, fstep = 0.5, i = 2, ilog = 8, istep = 30, c = tanh."""
    return (
        (p["f"] - 1) ** 2
        + (math.log10(p["flog"]) + 2) ** 2
        + (p["fstep"] - 0.5) ** 2
        + 0.1 * (p["i"] - 2) ** 2
        + (math.log2(p["ilog"]) - 3) ** 2
        + 1e-3 * (p["istep"] - 30) ** 2
        + (0.0 if p["c"] == "tanh" else 1.0)
    )


def _assert_within(params: dict) -> None:
    for name, value in params.items():
        dist = SPACE[name]
        assert dist._contains(dist.to_internal_repr(value)), (name, value)
        if isinstance(dist, IntDistribution):
            assert type(value) is int, (name, value)
        elif isinstance(dist, FloatDistribution):
            assert type(value) is float, (name, value)


class _Recording(BayesSampler):
    """The sampler, with what each of Optuna's hooks returned."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.relative: list[dict] = []
        self.independent: list[str] = []

    def sample_relative(self, study, trial, search_space):
        out = super().sample_relative(study, trial, search_space)
        self.relative.append(out)
        return out

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.independent.append(param_name)
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_every_distribution_kind_is_sampled_within_it_and_the_gp_does_the_sampling():
    sampler = _Recording(n_startup_trials=4, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: _value(_suggest(t)), n_trials=12)
    for t in study.trials:
        _assert_within(t.params)
    # the intersection of the finished trials' spaces is the relative space, every kind in it
    assert sampler.infer_relative_search_space(study, study.trials[-1]) == SPACE
    # 4 random startup trials (all parameters drawn independently), then the GP draws them all
    assert [bool(r) for r in sampler.relative] == [False] * 4 + [True] * 8
    assert all(set(r) == set(SPACE) for r in sampler.relative[4:])
    assert len(sampler.independent) == 4 * len(SPACE)


def test_conditional_parameters_are_sampled_independently_and_the_shared_ones_by_the_gp():
    sampler = _Recording(n_startup_trials=4, seed=1)

    def objective(trial):
        kind = trial.suggest_categorical("kind", ["sgd", "adam"])
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        if kind == "sgd":
            momentum = trial.suggest_float("momentum", 0.0, 0.99)
            return (math.log10(lr) + 1) ** 2 + (momentum - 0.9) ** 2
        beta = trial.suggest_float("beta", 0.5, 0.999)
        return (math.log10(lr) + 3) ** 2 + (beta - 0.9) ** 2 + 0.5

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=14)
    kinds = {t.params["kind"] for t in study.trials}
    assert kinds == {"sgd", "adam"}
    for t in study.trials:
        # each trial has exactly the parameters of its branch, each within its range
        branch = {"momentum"} if t.params["kind"] == "sgd" else {"beta"}
        assert set(t.params) == {"kind", "lr"} | branch
        assert 1e-4 <= t.params["lr"] <= 1.0
    # after the startup, the shared parameters come from the GP, the branch's from the random
    # sampler (they are not in every trial, so not in the relative space)
    assert all(set(r) == {"kind", "lr"} for r in sampler.relative[4:])
    assert {"momentum", "beta"} & set(sampler.independent[4 * 3 :])
    assert "lr" not in sampler.independent[4 * 3 :]


def test_pruned_failed_and_running_trials_in_the_study_do_not_break_it():
    sampler = _Recording(n_startup_trials=4, seed=2)
    study = optuna.create_study(sampler=sampler)
    for _ in range(4):
        t = study.ask()
        study.tell(t, (t.suggest_float("x", -2, 2) - 1) ** 2)
    # a pruned trial with intermediate values, a failed one, one that returned nan, a running
    # one, one waiting in the queue without parameters
    pruned = study.ask()
    pruned.suggest_float("x", -2, 2)
    pruned.report(0.5, 1)
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask()
    failed.suggest_float("x", -2, 2)
    study.tell(failed, state=TrialState.FAIL)
    nan = study.ask()
    nan.suggest_float("x", -2, 2)
    with pytest.warns(UserWarning, match="nan is not acceptable"):
        study.tell(nan, float("nan"))  # Optuna records it as FAIL
    study.ask().suggest_float("x", -2, 2)  # still running
    study.enqueue_trial({})
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=8)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 1 and states.count(TrialState.FAIL) == 2
    assert states.count(TrialState.RUNNING) == 1 and states.count(TrialState.COMPLETE) == 12
    assert all(sampler.relative[-8:])  # the GP sampled each trial after the startup
    assert study.best_value < 1e-2


@pytest.mark.slow
def test_the_same_seed_gives_the_same_study_and_another_seed_another():
    def run(seed):
        study = optuna.create_study(sampler=BayesSampler(n_startup_trials=4, seed=seed))
        study.optimize(lambda t: _value(_suggest(t)), n_trials=8)
        return [t.params for t in study.trials]

    first = run(5)
    assert run(5) == first
    other = run(6)
    assert other[0] != first[0] and other[-1] != first[-1]


def test_fixed_parameters_of_an_enqueued_trial_are_kept():
    study = optuna.create_study(sampler=BayesSampler(n_startup_trials=4, seed=0))
    study.optimize(lambda t: _value(_suggest(t)), n_trials=5)
    study.enqueue_trial({"c": "relu", "i": -3})
    study.optimize(lambda t: _value(_suggest(t)), n_trials=1)
    last = study.trials[-1].params
    assert last["c"] == "relu" and last["i"] == -3
    _assert_within(last)


def test_a_single_value_parameter_and_a_maximized_study():
    sampler = BayesSampler(n_startup_trials=3, seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize")

    def objective(t):
        fixed = t.suggest_float("fixed", 2.0, 2.0)
        return -((t.suggest_float("x", -2, 2) - 0.5) ** 2) + fixed

    study.optimize(objective, n_trials=12)
    assert all(t.params["fixed"] == 2.0 for t in study.trials)
    assert study.best_value > 2.0 - 1e-2  # maximized, not minimized


def test_workers_that_ask_before_others_tell_get_distinct_points():
    """Four workers starting one after another before any tells: each trial's parameters are
    stored when drawn, so the next worker's sampler sees them RUNNING and goes elsewhere."""
    study = optuna.create_study(sampler=BayesSampler(n_startup_trials=4, seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=6)
    xs = np.array([study.ask().suggest_float("x", -2, 2) for _ in range(4)])
    gaps = np.abs(xs[:, None] - xs[None, :])[np.triu_indices(4, 1)]
    assert gaps.min() > 1e-3


def test_warp_is_a_config_field_and_fits_the_gp_to_transformed_values():
    from trainwell.search.config import TuneConfig
    from trainwell.search.samplers import make_sampler

    assert make_sampler(TuneConfig(), seed=0).warp is True  # the default portfolio warps
    # the lecture's acquisitions by name do not, unless asked
    assert make_sampler(TuneConfig(method="ucb"), seed=0).warp is False
    assert make_sampler(TuneConfig(method="ei"), seed=0).warp is False
    on = TuneConfig.model_validate({"method": "ei", "bayes": {"warp": True}})
    assert make_sampler(on, seed=0).warp is True
    off = TuneConfig.model_validate({"bayes": {"warp": False}})
    assert make_sampler(off, seed=0).warp is False
    # a heavy tail of bad values (to be maximized: very negative ones): standardized, the
    # good values are squashed together; warped, they stay apart, in the same order
    from trainwell.search.bayes import _warp

    raw = -np.array([0.1, 0.2, 0.3, 0.4, 50.0, 1e4])
    warped = _warp(raw)
    standardized = (raw - raw.mean()) / raw.std()
    assert np.ptp(warped[:4]) > 3 * np.ptp(standardized[:4])
    assert np.argsort(warped).tolist() == np.argsort(raw).tolist()
    assert warped.mean() == pytest.approx(0, abs=1e-9) and warped.std() == pytest.approx(1)


def test_the_warp_is_scikit_learns_yeo_johnson():
    from sklearn.preprocessing import PowerTransformer

    from trainwell.search.bayes import _warp, yeo_johnson

    # the transform's closed forms: lambda = 1 is the identity, 0 is log1p on x >= 0, and 2
    # is -log1p(-x) on x < 0
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    assert yeo_johnson(x, 1.0) == pytest.approx(x)
    assert yeo_johnson(x, 0.0)[2:] == pytest.approx(np.log1p(x[2:]))
    assert yeo_johnson(x, 2.0)[:2] == pytest.approx(-np.log1p(-x[:2]))
    rng = np.random.default_rng(0)
    for sign in (1, -1):
        raw = sign * rng.lognormal(0, 2, 40)
        z = -raw
        z = (z - z.mean()) / z.std()
        expected = -PowerTransformer(method="yeo-johnson").fit_transform(z[:, None])[:, 0]
        assert _warp(raw) == pytest.approx(expected, abs=1e-6)


def test_the_warps_log_jacobian_is_the_derivative_of_the_map_it_applies():
    from trainwell.search.bayes import _warp, warp_with_jacobian, yeo_johnson, yeo_johnson_lambda

    rng = np.random.default_rng(0)
    raw = -np.exp(1.5 * rng.standard_normal(25))  # maximized: a heavy tail of bad values
    y, log_jacobian = warp_with_jacobian(raw)
    assert y == pytest.approx(_warp(raw))
    # the map with the standardizations' statistics and the exponent fixed at raw's, which
    # acts elementwise: its log-Jacobian is the sum of the logs of its slopes
    z0 = (raw.mean() - raw) / raw.std()
    lmbda = yeo_johnson_lambda(z0)
    t0 = yeo_johnson(z0, lmbda)

    def fixed(r):
        return -(yeo_johnson((raw.mean() - r) / raw.std(), lmbda) - t0.mean()) / t0.std()

    assert fixed(raw) == pytest.approx(y)
    h = 1e-6
    slopes = (fixed(raw + h) - fixed(raw - h)) / (2 * h)
    assert log_jacobian == pytest.approx(np.log(slopes).sum(), rel=1e-5)
    # constant values: nothing to warp
    assert warp_with_jacobian(np.full(5, 2.0))[1] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_warp_is_chosen_when_the_values_are_likelier_warped(seed):
    """A GP explains a smooth function's values as they are, and the exponential of one (a
    heavy tail of bad values, or of good ones) after the warp: choose_warp keeps the plain fit
    for the first and the warped one for the others."""
    space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    X = np.random.default_rng(seed).uniform(size=(40, 2))
    smooth = np.sin(3 * X[:, 0] + 1) + np.cos(4 * X[:, 1])
    chosen = {}
    for name, values in (("smooth", smooth), ("exp", np.exp(3 * smooth)),
                         ("-exp", -np.exp(3 * smooth))):
        model, y, warped = BayesSampler(seed=0).choose_warp(space, X, -values)  # minimized
        chosen[name] = warped
        scale = values.std()
        expected = _warp_of(-values) if warped else (values.mean() - values) / scale
        assert y == pytest.approx(expected)
        assert model.dim == 2
    assert chosen == {"smooth": False, "exp": True, "-exp": True}


def _warp_of(raw):
    from trainwell.search.bayes import _warp

    return _warp(raw)


def test_the_default_warps_for_30_trials_then_chooses_at_each_fit(monkeypatch):
    from trainwell.search.config import TuneConfig
    from trainwell.search.samplers import make_sampler

    chosen = []  # (finished trials, warped) of each choice
    real = BayesSampler.choose_warp

    def spy(self, search_space, X, raw):
        model, y, warped = real(self, search_space, X, raw)
        warped = len(X) != 33  # the fit at 33 trials keeps the plain values, the others warp
        y = _warp_of(raw) if warped else (raw - raw.mean()) / raw.std()
        model.fit(X, y, deterministic=False)
        chosen.append((len(X), warped))
        return model, y, warped

    monkeypatch.setattr(BayesSampler, "choose_warp", spy)

    def run(config):
        sampler = make_sampler(config, seed=0)
        study = optuna.create_study(sampler=sampler)
        seen = []
        for _ in range(40):
            trial = study.ask()
            x, y = trial.suggest_float("x", -2, 2), trial.suggest_float("y", -2, 2)
            seen.append(sampler.last_warped)
            study.tell(trial, math.exp(x + y) + (x - 1) ** 2)
        return sampler, seen

    sampler, seen = run(TuneConfig())
    assert sampler.choose
    # warped while 30 trials or fewer have finished; chosen at each fit from 30 on (every 3)
    assert chosen == [(30, True), (33, False), (36, True), (39, True)]
    assert seen[4:30] == [True] * 26 and seen[:4] == [None] * 4  # 4 random startup trials
    assert seen[30:] == [True, True, True, False, False, False, True, True, True, True]
    chosen.clear()
    for config, expected in (
        ({"bayes": {"warp": True}}, True),  # asked for: always, never chosen
        ({"bayes": {"warp": False}}, False),
        ({"method": "ucb"}, False),  # the lecture's acquisitions: never
        ({"method": "ei"}, False),
    ):
        sampler, seen = run(TuneConfig.model_validate(config))
        assert not sampler.choose and set(seen[4:]) == {expected}
    assert chosen == []


def test_trust_region_length_follows_turbo():
    from trainwell.search.bayes import trust_region_length

    # 2 startup values, then steps (maximized): 3 improvements in a row double the side,
    # max(4, dim) steps without one halve it
    assert trust_region_length(np.array([0.0, 1.0]), 2) == 0.8
    assert trust_region_length(np.array([0.0, 1.0, 2.0, 3.0]), 2) == 0.8
    assert trust_region_length(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 2) == 1.6
    assert trust_region_length(np.arange(12.0), 2) == 1.6  # at most 1.6
    flat = np.array([0.0, 1.0] + [0.5] * 4)
    assert trust_region_length(flat, 2) == 0.4
    assert trust_region_length(flat, 2, dim=6) == 0.8  # 6 dimensions: 6 failures to halve
    # an improvement smaller than 1e-3 of the best counts as a failure
    tiny = np.array([0.0, 1.0] + [1.0 + 1e-4 * k for k in range(1, 5)])
    assert trust_region_length(tiny, 2) == 0.4
    # seven halvings fall below 0.5^7: the region starts over at 0.8
    assert trust_region_length(np.array([0.0, 1.0] + [0.5] * 24), 2) == pytest.approx(0.8 / 64)
    assert trust_region_length(np.array([0.0, 1.0] + [0.5] * 28), 2) == 0.8


def test_trust_region_box_is_centered_on_the_best_point_and_shaped_by_the_length_scales():
    from trainwell.search.bayes import trust_region_box

    X = np.array([[0.1, 0.1], [0.5, 0.9], [0.3, 0.3]])
    raw = np.array([0.0, 2.0, 1.0])  # maximized: the best is the second point
    low, high = trust_region_box(X, raw, np.array([0.5, 2.0]), n_startup=3)
    # side 0.8 * l / geomean(l) = (0.4, 1.6), clipped to the unit cube
    assert low == pytest.approx([0.3, 0.1])
    assert high == pytest.approx([0.7, 1.0])


def test_the_default_searches_a_trust_region_and_keeps_discrete_parameters_whole():
    from trainwell.search.bayes import relax_ints
    from trainwell.search.optuna_internals import GaussianProcess

    # the GP's space: Optuna's intersection search space (sorted by name), wide ints relaxed
    space = relax_ints({n: SPACE[n] for n in sorted(SPACE)})
    names = list(space)
    sampler = BayesSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    narrowed = 0
    for _ in range(14):
        trial = study.ask()
        params = _suggest(trial)
        _assert_within(params)
        study.tell(trial, _value(params))
        if len(study.trials) <= sampler.startup_trials(len(space)):
            continue
        assert sampler.trust_region and sampler.last_box is not None
        low, high = sampler.last_box
        x = GaussianProcess(space).normalize([study.trials[-1]])[0]
        # each suggestion's continuous parameters lie in its box; a 64-value int too, up to
        # its rounding to the nearest valid value
        # (but the one coordinate of a one-coordinate move, which goes anywhere in its range)
        for name, tol in (("f", 1e-9), ("flog", 1e-9), ("ilog", 0.05)):
            k = names.index(name)
            if k != sampler.last_move:
                assert low[k] - tol <= x[k] <= high[k] + tol, (name, low[k], x[k], high[k])
            narrowed += high[k] - low[k] < 0.9
    assert narrowed > 5  # the boxes are smaller than the space
    # the lecture's acquisitions by name search the whole space, with a noise-free GP
    for acquisition in ("ucb", "ei"):
        plain = BayesSampler(acquisition=acquisition, seed=0)
        optuna.create_study(sampler=plain).optimize(lambda t: _value(_suggest(t)), n_trials=8)
        assert plain.last_box is None and plain.deterministic is True


def test_trust_region_and_noise_are_config_fields():
    from trainwell.search.config import TuneConfig
    from trainwell.search.samplers import make_sampler

    default = make_sampler(TuneConfig(), seed=0)
    assert default.trust_region is True and default.deterministic is False
    assert make_sampler(TuneConfig(method="ucb"), seed=0).trust_region is False
    assert default.slices == 16
    off = TuneConfig.model_validate({"bayes": {"trust_region": False, "deterministic": True}})
    sampler = make_sampler(off, seed=0)
    assert sampler.trust_region is False and sampler.deterministic is True
    assert sampler.slices == 0
    assert make_sampler(TuneConfig.model_validate({"bayes": {"slices": 4}}), seed=0).slices == 4
    optuna.create_study(sampler=sampler).optimize(lambda t: _value(_suggest(t)), n_trials=8)
    assert sampler.last_box is None


def test_the_acquisition_is_maximized_inside_the_box_on_continuous_parameters_only():
    from trainwell.search.optuna_internals import GaussianProcess

    space = {
        "c": CategoricalDistribution(["a", "b"]),
        "x": FloatDistribution(0.0, 1.0),
        "y": FloatDistribution(0.0, 1.0),
    }
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 2, 30), rng.random(30), rng.random(30)]).astype(float)
    # maximized: best at x = y = 0.9 with c = "b"
    y = -((X[:, 1] - 0.9) ** 2) - (X[:, 2] - 0.9) ** 2 + 0.5 * X[:, 0]
    model = GaussianProcess(space)
    model.fit(X, (y - y.mean()) / y.std())
    mean = model.ucb(0.0)  # beta = 0: the posterior mean
    args = dict(
        start=X[np.argmax(y), None], n_candidates=256, n_local_search=4, tol=1e-8
    )
    free = model.maximize(mean, rng=np.random.RandomState(0), **args)
    assert free["c"] == "b" and free["x"] > 0.7 and free["y"] > 0.7
    box = (np.array([0.0, 0.1, 0.2]), np.array([1.0, 0.3, 0.4]))
    boxed = model.maximize(mean, rng=np.random.RandomState(0), box=box, **args)
    # the box's corner nearest the optimum; the categorical parameter searched whole
    assert boxed["c"] == "b"
    assert boxed["x"] == pytest.approx(0.3, abs=1e-3) and boxed["y"] == pytest.approx(0.4, abs=1e-3)


def test_points_beyond_the_box_are_taken_only_when_they_score_higher():
    from trainwell.search.optuna_internals import GaussianProcess

    space = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    y = -((X[:, 0] - 0.9) ** 2) - (X[:, 1] - 0.9) ** 2  # maximized at (0.9, 0.9)
    model = GaussianProcess(space)
    model.fit(X, (y - y.mean()) / y.std())
    mean = model.ucb(0.0)
    args = dict(start=np.array([[0.2, 0.2]]), n_candidates=256, n_local_search=4, tol=1e-8,
                box=(np.array([0.1, 0.1]), np.array([0.3, 0.3])))
    also = np.array([[0.2, 0.9], [0.9, 0.2], [0.2, 0.05]])
    moved = model.maximize(mean, rng=np.random.RandomState(0), also=also, **args)
    assert model.taken_from_also in (0, 1)  # the posterior mean is higher there than in the box
    assert (moved["x"], moved["y"]) == tuple(also[model.taken_from_also])
    kept = model.maximize(mean, rng=np.random.RandomState(0), also=also[2:], **args)
    assert model.taken_from_also is None  # lower than the box's best corner: not taken
    assert kept["x"] == pytest.approx(0.3, abs=1e-3) and kept["y"] == pytest.approx(0.3, abs=1e-3)


def test_one_coordinate_moves_change_one_boxed_coordinate_each():
    from trainwell.search.bayes import one_coordinate_moves

    incumbent = np.array([0.2, 0.5, 0.7, 0.1])
    boxed = np.array([True, False, True, True])
    moves = one_coordinate_moves(incumbent, boxed, 5, np.random.RandomState(0))
    assert moves.shape == (15, 4)
    changed = moves != incumbent
    assert (changed.sum(axis=1) == 1).all() and not changed[:, 1].any()
    # five draws per boxed coordinate, in order, spread over the whole range
    assert [int(np.flatnonzero(row)[0]) for row in changed] == [0] * 5 + [2] * 5 + [3] * 5
    assert ((moves >= 0) & (moves <= 1)).all()


def test_the_default_moves_one_coordinate_beyond_its_box_and_the_lectures_do_not():
    """On a sum of wells in 4 dimensions, started with three coordinates in the central well
    and one in a far one, the default takes one-coordinate moves beyond its trust region (each
    changing one coordinate of the best trial) and brings the far one in; ``slices = 0`` and
    the lecture's acquisitions take none."""

    def wells(t):  # minimum 0 at x = 0.5; each coordinate's wells are 0.25 apart
        x = np.array([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(4)])
        return float(np.sum((x - 0.5) ** 2 * 4 + 0.3 * np.sin(8 * np.pi * (x - 0.5)) ** 2))

    def run(sampler):
        study = optuna.create_study(sampler=sampler)
        for start in ([0.5, 0.5, 0.5, 0.95], [0.45, 0.55, 0.5, 0.9], [0.5, 0.52, 0.48, 0.97],
                      [0.55, 0.5, 0.5, 0.93], [0.5, 0.45, 0.55, 0.95]):
            study.enqueue_trial({f"x{i}": v for i, v in enumerate(start)})
        moves = []
        for _ in range(30):
            trial = study.ask()
            study.tell(trial, wells(trial))
            moves.append(getattr(sampler, "last_move", None))
        return study, [m for m in moves[5:] if m is not None]

    study, moves = run(BayesSampler(seed=0, n_startup_trials=5))
    assert moves, "no one-coordinate move was taken"
    assert abs(study.best_params["x3"] - 0.5) < 0.15  # the far coordinate came in
    for acquisition in ("ucb", "ei"):
        assert run(BayesSampler(acquisition=acquisition, seed=0))[1] == []
    assert run(BayesSampler(seed=0, slices=0, n_startup_trials=5))[1] == []
    # with a trial pending (another worker's), no move: the same study, asked in pairs
    sampler = BayesSampler(seed=0, n_startup_trials=5)
    study, _ = run(sampler)
    pending = []
    for _ in range(10):
        first = study.ask()
        value = wells(first)  # drawn: the first is running with its parameters
        second = study.ask()
        study.tell(second, wells(second))
        pending.append(sampler.last_move)
        study.tell(first, value)
    assert pending == [None] * 10
    # two boxed coordinates: no move is scored (and no draw taken from the sampler's stream)
    flat = BayesSampler(seed=0)
    plane = optuna.create_study(sampler=flat)
    seen = []
    for _ in range(12):
        trial = plane.ask()
        plane.tell(trial, (trial.suggest_float("a", 0, 1) - 0.9) ** 2
                   + trial.suggest_float("b", 0, 1) ** 2)
        seen.append(flat.last_move)
    assert flat.last_box is not None and seen == [None] * 12
    assert BayesSampler().slices == 16 and BayesSampler(trust_region=False).slices == 0
    with pytest.raises(Exception, match="slices must be >= 0"):
        BayesSampler(slices=-1)


def test_past_30_trials_the_kernel_is_refitted_every_third_step_on_the_same_space():
    from trainwell.search import optuna_internals

    fits: list[bool] = []
    original = optuna_internals.GaussianProcess.fit

    def spy(self, X, y, **kwargs):
        fits.append(kwargs.get("refit", True))
        fitted = original(self, X, y, **kwargs)
        assert fitted == kwargs.get("refit", True)
        # refit=False conditions on the new data with the previous hyperparameters
        if not kwargs.get("refit", True):
            previous = kwargs["previous"]._gpr
            assert self._gpr.kernel_scale == previous.kernel_scale
            assert self._gpr._X_train.shape[0] == len(X)
        return fitted

    optuna_internals.GaussianProcess.fit = spy
    try:
        study = optuna.create_study(sampler=BayesSampler(seed=0))
        study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=38)
    finally:
        optuna_internals.GaussianProcess.fit = original
    # trials 5..38 ask with 4..37 finished; a fit when <= 30 or a multiple of 3; from 30 on
    # each fit is two (the warped and the plain values, of which the likelier is kept)
    expected = []
    for n in range(4, 38):
        expected += [True] if n < 30 else [True, True] if n % 3 == 0 else [False]
    assert fits == expected
    assert abs(study.best_params["x"] - 1) < 1e-3


def test_the_box_is_normalized_over_the_boxed_parameters_only():
    from trainwell.search.bayes import trust_region_box

    X = np.array([[0.1, 0.1, 0.0], [0.5, 0.9, 1.0], [0.3, 0.3, 0.5]])
    raw = np.array([0.0, 2.0, 1.0])
    boxed = np.array([True, True, False])  # the third: a categorical, never boxed
    for categorical_scale in (1e-3, 1.0, 1e3):
        low, high = trust_region_box(
            X, raw, np.array([0.5, 2.0, categorical_scale]), n_startup=3, boxed=boxed
        )
        # the same box as without the categorical parameter; the categorical whole
        assert low == pytest.approx([0.3, 0.1, 0.0])
        assert high == pytest.approx([0.7, 1.0, 1.0])


def test_each_worker_refits_its_own_kernel_on_schedule():
    from trainwell.search import optuna_internals

    # three workers' samplers taking turns on one study: each sees the finished trials grow by
    # 3 between its steps, so past 30 each refits at every step of its own (a count modulo 3
    # of the study's trials would leave two of them on a kernel fitted at trial 30 for good)
    calls: list[tuple[int, bool]] = []
    original = optuna_internals.GaussianProcess.fit

    def spy(self, X, y, **kwargs):
        fitted = original(self, X, y, **kwargs)
        calls.append((len(X), fitted))
        return fitted

    storage = optuna.storages.InMemoryStorage()
    studies = [
        optuna.create_study(
            storage=storage, study_name="s", load_if_exists=True, sampler=BayesSampler(seed=i)
        )
        for i in range(3)
    ]
    optuna_internals.GaussianProcess.fit = spy
    try:
        for k in range(45):
            study = studies[k % 3]
            trial = study.ask()
            study.tell(trial, (trial.suggest_float("x", -2, 2) - 1) ** 2)
    finally:
        optuna_internals.GaussianProcess.fit = original
    late = [fitted for n, fitted in calls if n > 30]
    # 14 steps, each a fit to the warped and one to the plain values (the likelier is kept)
    assert len(late) == 28 and all(late)
