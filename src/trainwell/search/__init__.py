"""What a hyperparameter search searches and how it draws: the ``[tune]`` section, search
spaces, samplers (trainwell's GP sampler and Optuna's) and pruners, by name in registries.

Everything here can be described and checked without running anything, so the experiment
config (:mod:`trainwell.config`) composes the ``[tune]`` section from here; running a study
(workers, trials, the recipe, algorithm selection) is :mod:`trainwell.tune`, which builds on
this package and on the config. Optuna's private modules are reached only through
:mod:`trainwell.search.optuna_internals`.

Public names are imported lazily, so that reading a config loads neither optuna nor torch.
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

#: public name -> the module defining it (trainwell.tune re-exports these too)
PUBLIC_NAMES = {
    "BayesSampler": "trainwell.search.bayes",
    "expected_improvement": "trainwell.search.bayes",
    "ucb_beta": "trainwell.search.bayes",
    "list_pruners": "trainwell.search.pruners",
    "make_pruner": "trainwell.search.pruners",
    "list_samplers": "trainwell.search.samplers",
    "make_sampler": "trainwell.search.samplers",
    "Param": "trainwell.search.space",
    "grid": "trainwell.search.space",
    "narrow": "trainwell.search.space",
    "parse_space": "trainwell.search.space",
    "validate_space": "trainwell.search.space",
    "TuneConfig": "trainwell.search.config",
}

__all__ = sorted(PUBLIC_NAMES)


__getattr__ = lazy_getattr(__name__, PUBLIC_NAMES)
