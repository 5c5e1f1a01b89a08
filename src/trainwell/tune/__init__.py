"""Running hyperparameter searches: studies in a study directory, workers on one or many
machines, the trial objective, the coarse-to-fine recipe, algorithm selection, the study files.

What is searched and how it is drawn (the ``[tune]`` section, spaces, samplers, pruners) is
:mod:`trainwell.search`; its public names are re-exported here. Public names are imported
lazily, so that importing this package loads neither optuna nor torch. The entry point is
:func:`trainwell.tune.study.tune`, also ``trainwell.tune.tune`` and the top package's
``tw.tune``.

Example:
    >>> from trainwell.tune import tune
    >>> study = tune("experiment.toml", trials=20)  # doctest: +SKIP
    >>> print(study.leaderboard())  # doctest: +SKIP
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr
from trainwell.search import PUBLIC_NAMES

_LAZY = {
    **PUBLIC_NAMES,  # what is searched and how: trainwell.search's names
    "NetClassifier": "trainwell.tune.estimator",
    "NetRegressor": "trainwell.tune.estimator",
    "Study": "trainwell.tune.study",
    "tune": "trainwell.tune.study",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
