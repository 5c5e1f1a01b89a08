"""trainwell: train neural networks the way the lectures teach it.

The top-level package re-exports the entry points only, imported lazily so that
``trainwell --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fit": ("trainwell.api", "fit"),
    "load": ("trainwell.api", "load"),
    "doctor": ("trainwell.diagnose", "doctor"),
    "tune": ("trainwell.tune", "tune"),
    "load_config": ("trainwell.config", "load_config"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'trainwell' has no attribute {name!r}")
