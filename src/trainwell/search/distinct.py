"""No configuration twice: the sampler a study's workers draw through.

A study's trials are drawn by several workers, over any number of resumptions. Two things make
a configuration come back when each worker simply keeps one seeded sampler:

* a sampler seeded the same way again (a resumed study, a second worker) replays its stream, so
  a resumed random search re-ran the configurations it had tried, and so did the Bayesian
  sampler's random start-up points;
* a discrete space (choices, integers) gives the same point twice by chance, and a guided
  sampler asked twice with the same history proposes the same point twice.

:class:`DistinctSampler` wraps the method's sampler and fixes both at the root:

* each trial draws from its own stream, seeded from the study seed and the trial's number
  (unique in a study, whichever worker claims it and however often the study is resumed), so
  a random search's configurations depend on neither the number of workers nor the resumptions;
* it draws the whole configuration at once and refuses one equal to the configuration of any
  other trial of the study (finished, running, failed or queued): the proposal is replaced by
  random draws, and in a finite space by an untried point. When every point of a finite space
  has been tried, the draw raises :class:`SpaceExhausted`.

Trials still being evaluated are seen by the wrapped sampler as they are claimed: the workers
draw in the order of their claims (:mod:`trainwell.tune.worker`), so a worker's draw sees the
configurations of every trial claimed before its own (the Bayesian sampler's kriging believer,
TPE's and Optuna's GP's constant liar use them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from trainwell.errors import RunError
from trainwell.search.space import Param, decode, finite_points

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study

#: random draws tried after the wrapped sampler's proposal was a configuration already tried
RANDOM_ATTEMPTS = 64


class SpaceExhausted(RunError):
    """Every configuration of a finite space has been tried."""


def trial_seed(seed: int, number: int, attempt: int = 0) -> int:
    """The seed of trial ``number``'s stream (and of its ``attempt``-th fallback draw).

    Example:
        >>> trial_seed(0, 3) == trial_seed(0, 3) != trial_seed(0, 4)
        True
    """
    return int(np.random.SeedSequence([int(seed), int(number), int(attempt)]).generate_state(1)[0])


def same_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two configurations (parameter -> value) are the same point; floats equal to
    within rounding (a value read back from a database may differ in its last bit)."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) or isinstance(y, float):
            if isinstance(x, (bool, str)) or isinstance(y, (bool, str)):
                return False
            if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def config_of(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's configuration: its parameters, or for a queued trial its fixed ones."""
    if trial.params:
        return dict(trial.params)
    fixed = trial.system_attrs.get("fixed_params")
    return dict(fixed) if isinstance(fixed, dict) else {}


class DistinctSampler(BaseSampler):
    """The sampler ``make(seed)`` makes, reseeded for each trial, drawing whole configurations
    of ``params`` that no other trial of the study has.

    Args:
        make: ``make(seed)`` -> the method's sampler; a sampler with a ``reseed(seed)`` method
            (trainwell's GP sampler, which keeps its last fit to warm-start the next) is made
            once and reseeded, any other is made again for each trial.
        params: the study's space, in sampling order (conditional parameters after those they
            depend on), as :func:`~trainwell.search.space.parse_space` gives it.
        base: the config dict the ``when`` conditions read fixed fields from.
        seed: the study seed.
    """

    def __init__(
        self,
        make: Callable[[int], BaseSampler],
        params: Sequence[Param],
        base: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self._make = make
        self.params = list(params)
        self.base = dict(base or {})
        self.seed = int(seed)
        self._dists = {p.path: p.distribution() for p in self.params}
        self._sampler = make(self.seed)
        self._number: int | None = None  # the trial the current sampler is seeded for
        self._points: list[dict[str, Any]] | None | bool = False  # finite_points, once
        self.replaced = 0  # proposals refused as already tried (for tests and logs)

    # ------------------------------------------------------------------ the trial's sampler

    def sampler_for(self, number: int) -> BaseSampler:
        """The wrapped sampler, seeded for trial ``number``."""
        if number != self._number:
            seed = trial_seed(self.seed, number)
            reseed = getattr(self._sampler, "reseed", None)
            if callable(reseed):
                reseed(seed)
            else:
                self._sampler = self._make(seed)
            self._number = number
        return self._sampler

    # ------------------------------------------------------------------ Optuna's sampler API

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {k: d for k, d in self._dists.items() if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # values the trial already holds (a queued trial's fixed parameters) are kept
        fixed = {**(trial.system_attrs.get("fixed_params") or {}), **trial.params}
        taken = [
            c
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and (c := config_of(t))
        ]
        sampler = self.sampler_for(trial.number)
        proposal = self._draw(sampler, study, trial, fixed)
        if all(k in fixed for k in proposal) or not _is_taken(proposal, taken):
            return proposal
        self.replaced += 1
        for attempt in range(1, RANDOM_ATTEMPTS + 1):
            rs = RandomSampler(seed=trial_seed(self.seed, trial.number, attempt))
            proposal = self._draw(rs, study, trial, fixed)
            if not _is_taken(proposal, taken):
                return proposal
        points = self._finite_points()
        if points is None:  # a continuous parameter: 64 random draws cannot all collide
            return proposal
        untried = [
            p
            for p in points
            if same_config({k: p.get(k) for k in fixed}, fixed) and not _is_taken(p, taken)
        ]
        if not untried:
            raise SpaceExhausted(
                f"every one of the {len(points)} configurations of the search space has been "
                "tried; widen tune.space or lower tune.trials"
            )
        rng = np.random.default_rng(trial_seed(self.seed, trial.number, RANDOM_ATTEMPTS + 1))
        return dict(untried[int(rng.integers(len(untried)))])

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # a parameter outside the space (a custom objective's own): the wrapped sampler's
        return self.sampler_for(trial.number).sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.sampler_for(trial.number).before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.sampler_for(trial.number).after_trial(study, trial, state, values)

    # ------------------------------------------------------------------ drawing

    def _draw(
        self, sampler: BaseSampler, study: Study, trial: FrozenTrial, fixed: dict[str, Any]
    ) -> dict[str, Any]:
        """One whole configuration from ``sampler``: its relative proposal where it makes one,
        its independent draws elsewhere, the trial's fixed values kept."""
        space = sampler.infer_relative_search_space(study, trial)
        relative = sampler.sample_relative(study, trial, space) if space else {}
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active({k: decode(v) for k, v in values.items()}, self.base):
                continue
            dist = self._dists[p.path]
            if p.path in fixed:
                value = fixed[p.path]
            elif dist.single():
                value = _single(dist)
            elif p.path in relative and space.get(p.path) == dist:
                value = relative[p.path]
            else:
                value = sampler.sample_independent(study, trial, p.path, dist)
            values[p.path] = value
        return values

    def _finite_points(self) -> list[dict[str, Any]] | None:
        if self._points is False:
            self._points = finite_points(self.params, self.base)
        return self._points if isinstance(self._points, list) else None


def _single(dist: BaseDistribution) -> Any:
    """The one value of a distribution that has one (a choice of one, a range of one)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    return getattr(dist, "low", None)


def _is_taken(config: dict[str, Any], taken: list[dict[str, Any]]) -> bool:
    return any(same_config(config, other) for other in taken)


__all__ = [
    "RANDOM_ATTEMPTS",
    "DistinctSampler",
    "SpaceExhausted",
    "config_of",
    "same_config",
    "trial_seed",
]
