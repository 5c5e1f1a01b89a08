"""Hyperparameter search: spaces, grid / random / Bayesian samplers on Optuna, the coarse-to-fine
recipe, parallel and multi-machine studies, algorithm selection.

Example:
    >>> import trainwell as tw
    >>> study = tw.tune("experiment.toml", trials=20)  # doctest: +SKIP
    >>> print(study.leaderboard())  # doctest: +SKIP
"""

from __future__ import annotations

from trainwell.tune.bayes import BayesSampler, expected_improvement, ucb_beta
from trainwell.tune.samplers import list_samplers, make_sampler
from trainwell.tune.space import Param, grid, narrow, parse_space, validate_space
from trainwell.tune.study import Study, resolve_direction, tune

__all__ = [
    "BayesSampler",
    "Param",
    "Study",
    "expected_improvement",
    "grid",
    "list_samplers",
    "make_sampler",
    "narrow",
    "parse_space",
    "resolve_direction",
    "tune",
    "ucb_beta",
    "validate_space",
]


def _make_callable() -> None:
    """``trainwell.tune`` is both this package and the function ``tune``: once the package is
    imported, ``import trainwell as tw; tw.tune(...)`` finds the package, so the package calls
    :func:`tune`."""
    import sys
    import types

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
            return tune(*args, **kwargs)

    sys.modules[__name__].__class__ = _CallableModule


_make_callable()
