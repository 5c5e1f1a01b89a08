"""``builtin:`` sources: scikit-learn's bundled sets and generators.

============== ====================================================== ============
name           what                                                    task
============== ====================================================== ============
digits         8x8 digit images as 64 features ``pixel_r_c`` (0..16)   multiclass
digits_images  the same digits as 1x8x8 images, scaled to [0, 1]       multiclass
iris           4 features, 3 classes                                   multiclass
wine           13 features, 3 classes                                  multiclass
breast_cancer  30 features, 2 classes                                  binary
diabetes       10 features, a disease-progression score                regression
moons          ``make_moons``: 2 features, 2 classes                   binary
circles        ``make_circles``: 2 features, 2 classes                 binary
blobs          ``make_blobs``: isotropic Gaussian clusters             multiclass
classification ``make_classification``: informative + noise features   by n_classes
============== ====================================================== ============

Generators take their scikit-learn parameters from ``data.params``; ``random_state`` defaults to
the run's seed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainwell.errors import ConfigError, DataError
from trainwell.registry import Registry, closest
from trainwell.tasks import Task


@dataclass(frozen=True)
class Builtin:
    loader: str  # sklearn.datasets function name
    images: bool = False
    generator: bool = False
    task: Task | None = None  # None: classification, binary for two classes, else multiclass


BUILTINS: Registry[Builtin] = Registry("builtin dataset", ConfigError)
for _name, _b, _aliases in [
    ("digits", Builtin("load_digits"), ()),
    ("digits_images", Builtin("load_digits", images=True), ("digits_image", "digits8x8")),
    ("iris", Builtin("load_iris"), ()),
    ("wine", Builtin("load_wine"), ()),
    ("breast_cancer", Builtin("load_breast_cancer"), ("cancer",)),
    ("diabetes", Builtin("load_diabetes", task="regression"), ()),
    ("moons", Builtin("make_moons", generator=True), ()),
    ("circles", Builtin("make_circles", generator=True), ()),
    ("blobs", Builtin("make_blobs", generator=True), ()),
    ("classification", Builtin("make_classification", generator=True), ()),
]:
    BUILTINS.register(_name, *_aliases)(_b)

#: generator defaults that differ from scikit-learn's (small, fast, not trivially separable)
_DEFAULTS: dict[str, dict[str, Any]] = {
    "make_moons": {"n_samples": 500, "noise": 0.2},
    "make_circles": {"n_samples": 500, "noise": 0.1, "factor": 0.5},
    "make_blobs": {"n_samples": 500, "centers": 3, "n_features": 2},
    "make_classification": {"n_samples": 500},
}


@dataclass
class BuiltinData:
    X: np.ndarray            # (n, d) features or (n, C, H, W) images
    y: np.ndarray
    feature_names: list[str]
    task: Task


def _task(spec: Builtin, y: np.ndarray) -> Task:
    if spec.task is not None:
        return spec.task
    return "binary" if len(np.unique(y)) == 2 else "multiclass"


def _generator_params(func: Callable[..., Any], name: str, params: dict[str, Any],
                      seed: int) -> dict[str, Any]:
    allowed = [p for p in inspect.signature(func).parameters if p not in {"return_X_y", "shuffle"}]
    for key in params:
        if key not in allowed:
            hint = closest(key, allowed)
            did = f" did you mean {hint!r}?" if hint else ""
            raise DataError(
                f"data.params.{key} is not a parameter of builtin:{name};{did} allowed: "
                f"{', '.join(allowed)}"
            )
    out = {**_DEFAULTS.get(func.__name__, {}), "random_state": seed, **params}
    return out


def load_builtin(name: str, params: dict[str, Any], seed: int) -> BuiltinData:
    """Load or generate one builtin set.

    Raises:
        DataError: an unknown parameter, or parameters scikit-learn refuses.
    """
    import sklearn.datasets as skd

    canonical = BUILTINS.canonical(name)
    spec = BUILTINS.get(canonical)
    func = getattr(skd, spec.loader)
    if not spec.generator:
        if params:
            raise DataError(
                f"builtin:{canonical} takes no data.params; got {sorted(params)} (parameters are "
                "for the generators moons, circles, blobs, classification)"
            )
        bunch = func()
        X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
        names = [str(n) for n in getattr(bunch, "feature_names", [])]
        names = names or [f"x{i}" for i in range(X.shape[1])]
        if spec.images:
            X = (X / 16.0).reshape(-1, 1, 8, 8)  # pixel values 0..16 -> [0, 1]
            names = []
        return BuiltinData(X, y, names, _task(spec, y))
    kwargs = _generator_params(func, canonical, params, seed)
    try:
        X, y = func(**kwargs)[:2]
    except (TypeError, ValueError) as exc:
        raise DataError(f"builtin:{canonical} refused data.params {params}: {exc}") from None
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    return BuiltinData(X, y, [f"x{i}" for i in range(X.shape[1])], _task(spec, y))


__all__ = ["BUILTINS", "BuiltinData", "load_builtin"]
