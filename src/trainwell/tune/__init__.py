"""Hyperparameter search: spaces, grid / random / Bayesian samplers on Optuna, the coarse-to-fine
recipe, parallel and multi-machine studies, algorithm selection.

Public names are imported lazily, so that reading a config (``trainwell check``) loads neither
optuna nor torch.

Example:
    >>> import trainwell as tw
    >>> study = tw.tune("experiment.toml", trials=20)  # doctest: +SKIP
    >>> print(study.leaderboard())  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from typing import Any

from trainwell._lazy import lazy_getattr

_LAZY = {
    "BayesSampler": "trainwell.tune.bayes",
    "expected_improvement": "trainwell.tune.bayes",
    "ucb_beta": "trainwell.tune.bayes",
    "NetClassifier": "trainwell.tune.estimator",
    "NetRegressor": "trainwell.tune.estimator",
    "list_samplers": "trainwell.tune.samplers",
    "make_sampler": "trainwell.tune.samplers",
    "Param": "trainwell.tune.space",
    "grid": "trainwell.tune.space",
    "narrow": "trainwell.tune.space",
    "parse_space": "trainwell.tune.space",
    "validate_space": "trainwell.tune.space",
    "Study": "trainwell.tune.study",
    "resolve_direction": "trainwell.tune.study",
    "tune": "trainwell.tune.study",
    "TuneConfig": "trainwell.tune.config",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)


class _CallableModule(types.ModuleType):
    """``trainwell.tune`` is both this package and the function ``tune``: once the package is
    imported, ``import trainwell as tw; tw.tune(...)`` finds the package, so calling the package
    calls :func:`trainwell.tune.study.tune`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from trainwell.tune.study import tune

        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
