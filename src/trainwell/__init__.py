"""trainwell: train neural networks the way the lectures teach it.

The top-level package re-exports the entry points only, imported lazily so that
``trainwell --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from trainwell._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "fit": "trainwell.api",
    "load": "trainwell.api",
    "doctor": "trainwell.diagnose",
    "load_config": "trainwell.config",
    "ensemble": "trainwell.ensemble_run",
    "NetClassifier": "trainwell.tune.estimator",
    "NetRegressor": "trainwell.tune.estimator",
    "export": "trainwell.deploy.export",
}

# The subpackage ``trainwell.tune`` shares its name with the entry point ``tune``: load the
# (light, lazily exporting) subpackage first, so that the function below is what ``tune`` names.
importlib.import_module("trainwell.tune")


def tune(config: Any = None, **kwargs: Any) -> Any:
    """Run a hyperparameter study: :func:`trainwell.tune.study.tune` (``trainwell tune``)."""
    from trainwell.tune.study import tune as run_study

    return run_study(config, **kwargs)


__all__ = ["__version__", "tune", *_LAZY]

__getattr__ = lazy_getattr(__name__, _LAZY)
