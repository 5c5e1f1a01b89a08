"""Search methods by name: trainwell's GP sampler (bayes / ucb / ei), random, grid, Optuna's.

Each name of ``tune.method`` is registered once in :data:`SAMPLERS` with a :class:`Method`: how
to make its Optuna sampler, and what a study does with it (enqueue a grid, or refine with it).
``tune.method`` is checked against this registry when the config loads, without importing
Optuna (the samplers import it when they are made).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainwell.errors import ConfigError
from trainwell.registry import Registry

if TYPE_CHECKING:
    import optuna

    from trainwell.search.config import TuneConfig

SamplerFactory = Callable[["TuneConfig", int], "optuna.samplers.BaseSampler"]


@dataclass(frozen=True)
class Method:
    """A search method.

    Attributes:
        make: ``make(tune_config, seed)`` -> the Optuna sampler.
        grid: the study's trials are the points of the grid, enqueued up front (``tune.trials``
            is not used).
        guided: the sampler learns from finished trials; the recipe's refine stage uses the
            configured method when it is guided, else ``bayes``.
    """

    make: SamplerFactory
    grid: bool = False
    guided: bool = True


SAMPLERS: Registry[Method] = Registry("sampler", error=ConfigError)


def _bayes(acquisition: str | None = None) -> SamplerFactory:
    """trainwell's GP sampler with ``[tune.bayes]``'s options (``acquisition`` fixed or not)."""

    def make(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
        from trainwell.search.bayes import BayesSampler

        b = tc.bayes
        return BayesSampler(
            acquisition=acquisition or b.acquisition,
            beta0=b.beta0,
            decay=b.decay,
            beta_min=b.beta_min,
            delta=b.delta,
            n_startup_trials=b.n_startup_trials,
            deterministic=b.deterministic,
            warp=b.warp,
            trust_region=b.trust_region,
            slices=b.slices,
            seed=seed,
        )

    return make


def _optuna(cls_name: str, **kwargs: object) -> SamplerFactory:
    """One of Optuna's samplers, seeded."""

    def make(tc: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        sampler: optuna.samplers.BaseSampler = getattr(optuna.samplers, cls_name)(
            seed=seed, **kwargs
        )
        return sampler

    return make


SAMPLERS.register("bayes")(Method(_bayes()))
SAMPLERS.register("ucb")(Method(_bayes("ucb")))
SAMPLERS.register("ei")(Method(_bayes("ei")))
SAMPLERS.register("random")(Method(_optuna("RandomSampler"), guided=False))
# grid points are enqueued as fixed trials and claimed one by one (trainwell.tune.study); the
# sampler is only asked for parameters outside the grid, which do not exist
SAMPLERS.register("grid")(Method(_optuna("RandomSampler"), grid=True, guided=False))
# constant liar: a trial still running counts as a bad result, so parallel workers spread out
# (Optuna 5's default; 4.x's was off)
SAMPLERS.register("tpe")(Method(_optuna("TPESampler", constant_liar=True)))
SAMPLERS.register("gp")(Method(_optuna("GPSampler")))
SAMPLERS.register("cmaes")(Method(_optuna("CmaEsSampler", warn_independent_sampling=False)))


def method_of(name: str) -> Method:
    """The registered :class:`Method` called ``name``; a ConfigError listing the valid ones."""
    return SAMPLERS.get(name)


def make_sampler(
    tc: TuneConfig, seed: int, method: str | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler of ``method`` (default ``tc.method``), configured from ``tc``.

    Example:
        >>> from trainwell.search.config import TuneConfig
        >>> type(make_sampler(TuneConfig(method="random"), seed=0)).__name__
        'RandomSampler'
    """
    return method_of(method or tc.method).make(tc, seed)


def list_samplers() -> list[str]:
    return SAMPLERS.names()


__all__ = ["SAMPLERS", "Method", "list_samplers", "make_sampler", "method_of"]
