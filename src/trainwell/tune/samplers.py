"""Samplers by name: trainwell's GP sampler (bayes / ucb / ei), random, grid, and Optuna's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError
from trainwell.registry import Registry

if TYPE_CHECKING:
    import optuna

    from trainwell.tune.config import TuneConfig

SAMPLERS: Registry[Any] = Registry("sampler", error=ConfigError)


def _bayes_kwargs(tc: TuneConfig, acquisition: str | None = None) -> dict[str, Any]:
    b = tc.bayes
    return {
        "acquisition": acquisition or b.acquisition,
        "beta0": b.beta0,
        "decay": b.decay,
        "beta_min": b.beta_min,
        "delta": b.delta,
        "n_startup_trials": b.n_startup_trials,
        "deterministic": b.deterministic,
    }


@SAMPLERS.register("bayes")
def _bayes(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    from trainwell.tune.bayes import BayesSampler

    return BayesSampler(seed=seed, **_bayes_kwargs(tc))


@SAMPLERS.register("ucb")
def _ucb(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    from trainwell.tune.bayes import BayesSampler

    return BayesSampler(seed=seed, **_bayes_kwargs(tc, "ucb"))


@SAMPLERS.register("ei")
def _ei(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    from trainwell.tune.bayes import BayesSampler

    return BayesSampler(seed=seed, **_bayes_kwargs(tc, "ei"))


@SAMPLERS.register("random")
def _random(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("grid")
def _grid(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    # grid points are enqueued as fixed trials and claimed one by one (trainwell.tune.study);
    # the sampler is only asked for parameters outside the grid, which do not exist
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("tpe")
def _tpe(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


@SAMPLERS.register("gp")
def _gp(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


@SAMPLERS.register("cmaes")
def _cmaes(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def make_sampler(
    tc: TuneConfig, seed: int, method: str | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler of ``method`` (default ``tc.method``), configured from ``tc``.

    Example:
        >>> from trainwell.tune.config import TuneConfig
        >>> type(make_sampler(TuneConfig(method="random"), seed=0)).__name__
        'RandomSampler'
    """
    return SAMPLERS.get(method or tc.method)(tc, seed)


def list_samplers() -> list[str]:
    return SAMPLERS.names()


__all__ = ["SAMPLERS", "list_samplers", "make_sampler"]
