"""Lazy public names for packages: import the defining module on first attribute access.

Keeps ``trainwell --help`` and config loading free of torch, pandas, scikit-learn and optuna.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving ``names`` (public name -> defining module).

    Example:
        >>> __getattr__ = lazy_getattr("mypkg", {"fit": "mypkg.api"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
