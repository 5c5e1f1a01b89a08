"""trainwell: train neural networks the way the lectures teach it.

The top-level package re-exports the entry points only, imported lazily so that
``trainwell --help`` stays fast.
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "fit": "trainwell.api",
    "load": "trainwell.api",
    "doctor": "trainwell.diagnose",
    "tune": "trainwell.tune",
    "load_config": "trainwell.config",
}

__all__ = ["__version__", *_LAZY]

__getattr__ = lazy_getattr(__name__, _LAZY)
