"""trainwell's network as a scikit-learn estimator, so it sits in a Pipeline or GridSearchCV.

``__init__`` stores the arguments, ``fit`` returns ``self`` and learned state ends in ``_``
(scikit-learn's conventions). Input is checked with scikit-learn's own helpers
(``validate_data``, ``check_is_fitted``, ``check_classification_targets``), so the estimators
pass ``sklearn.utils.estimator_checks`` (two that could fail by float32 rounding are listed
with the reason in :data:`EXPECTED_FAILED_CHECKS`). The model is the
trainwell MLP of :func:`trainwell.nn.build_model` or any ``torch.nn.Module`` given as
``module``, trained by :class:`trainwell.train.Trainer` with a step that weights each sample's
loss by ``sample_weight`` times ``class_weight``.
"""

from __future__ import annotations

import copy
import inspect
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from trainwell.errors import NotFittedError

if TYPE_CHECKING:
    from torch import nn

_EQUIVALENCE = (
    "may fail by rounding: weights of 0 and k equal leaving rows out and repeating them k "
    "times only in exact arithmetic (with one batch); training sums float32 losses in another "
    "order, so the predictions differ by about 1e-8 (at most 1.7e-8 measured after 50 epochs), "
    "close to the check's relative 1e-7 for predictions near 0; the checks pass on the "
    "machines measured, and tests/tune/test_estimator.py checks the equivalence to 1e-5"
)


#: checks of ``sklearn.utils.estimator_checks`` these estimators may fail, with the reason (they
#: are expected failures that may pass, not skipped)
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_sample_weight_equivalence_on_dense_data": _EQUIVALENCE,
    "check_sample_weight_equivalence_on_sparse_data": _EQUIVALENCE,
}

_CHUNK = 4096  # rows per forward pass when predicting (a sparse X is densified chunk by chunk)


class EstimatorNotFittedError(NotFittedError, SklearnNotFittedError):
    """``predict`` before ``fit``: both trainwell's and scikit-learn's ``NotFittedError``."""


class _NetBase(BaseEstimator):
    """What the classifier and the regressor share: parameters, input checks, training."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 20,
        batch_size: int = 64,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        module: Any = None,
        module_params: dict[str, Any] | None = None,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
        self.norm = norm
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.module = module
        self.module_params = module_params
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified (see _dense)
        return tags

    # ------------------------------------------------------------------ input

    def _validate_X(self, X: Any, reset: bool) -> Any:
        return validate_data(
            self, X, reset=reset, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32)
        )

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "model_")
        except SklearnNotFittedError:
            raise EstimatorNotFittedError(
                f"this {type(self).__name__} instance is not fitted yet; call 'fit' with "
                "appropriate arguments before using this estimator"
            ) from None

    def _sample_weights(self, sample_weight: Any, X: Any) -> np.ndarray:
        """One non-negative weight per row of ``X``: ``None`` (all 1), a number, or an array,
        refused with the rules and messages of scikit-learn's own estimators."""
        from sklearn.utils import check_array

        n = X.shape[0]
        if sample_weight is None:
            w = np.ones(n, dtype=np.float64)
        elif isinstance(sample_weight, numbers.Number):
            w = np.full(n, float(sample_weight), dtype=np.float64)  # type: ignore[arg-type]
        else:
            w = check_array(sample_weight, ensure_2d=False, dtype=np.float64,
                            input_name="sample_weight")
            if w.ndim != 1:
                raise ValueError(f"Sample weights must be 1D array or scalar, got {w.ndim}D array.")
            if w.shape != (n,):
                raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
        if not np.isfinite(w).all():
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if (w < 0).any():
            raise ValueError("Negative values in data passed to `sample_weight`.")
        if not w.sum() > 0:
            raise ValueError(f"{type(self).__name__}: sample_weight sums to zero")
        return np.asarray(w, dtype=np.float64)

    # ------------------------------------------------------------------ training

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(
            self.random_state, bool
        ):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _build_module(self, n_features: int, n_outputs: int, task: str, example: Any) -> nn.Module:
        from torch import nn

        from trainwell.nn import build_model
        from trainwell.nn.config import ModelConfig
        from trainwell.schema import validate_section

        name = type(self).__name__
        if self.module is None:
            cfg = validate_section(
                ModelConfig,
                {
                    "arch": "mlp",
                    "hidden": [int(h) for h in np.atleast_1d(self.hidden)],
                    "activation": self.activation,
                    "dropout": float(self.dropout),
                    "norm": self.norm,
                },
                f"{name} parameters",
            )
            return build_model(cfg, (n_features,), n_outputs, task, example_batch=example)
        if isinstance(self.module, nn.Module):
            if self.module_params:
                raise ValueError(
                    f"{name}: module_params is for a module class; module is an instance "
                    f"({type(self.module).__name__}); pass the class or leave module_params out"
                )
            return copy.deepcopy(self.module)  # each fit starts from the instance as given
        if inspect.isclass(self.module) and issubclass(self.module, nn.Module):
            return self.module(**(self.module_params or {}))
        raise ValueError(
            f"{name}: module must be a torch.nn.Module class or instance, or None for "
            f"trainwell's MLP; got {self.module!r}"
        )

    def _fit_net(
        self, X: Any, y: np.ndarray, weights: np.ndarray, task: str, n_outputs: int
    ) -> None:
        """Train on validated ``X`` and encoded targets ``y`` (class indices or float rows)."""
        import torch

        from trainwell.schema import validate_section
        from trainwell.train.config import EarlyStoppingConfig, TrainConfig
        from trainwell.train.device import resolve_device
        from trainwell.train.trainer import Trainer
        from trainwell.tune.estimator_step import WeightedStep

        name = type(self).__name__
        train_cfg = validate_section(
            TrainConfig,
            {
                "optimizer": {
                    "name": self.optimizer,
                    "lr": float(self.lr),
                    "weight_decay": float(self.weight_decay),
                },
                "epochs": int(self.epochs),
                "batch_size": int(self.batch_size),
            },
            f"{name} parameters",
        )
        seed = self._seed()
        device = resolve_device(self.device)
        Xd = _dense(X)
        n = len(Xd)
        train_idx = np.arange(n)
        val_idx = np.arange(0)
        if self.early_stopping:
            train_idx, val_idx = self._validation_split(y, task, seed)
            for part, rows in (("training", train_idx), ("validation", val_idx)):
                if not weights[rows].sum() > 0:
                    raise ValueError(
                        f"{name}: early_stopping's validation split leaves sample weight 0 on "
                        f"every {part} row; weight more rows, or set early_stopping=False"
                    )
        cuda = device.type == "cuda"
        # seeds the initialization and dropout, and leaves the caller's generators as they were
        with torch.random.fork_rng(devices=[device.index or 0] if cuda else []):
            if cuda:
                torch.manual_seed(seed)
            else:
                torch.default_generator.manual_seed(seed)
            Xt = torch.from_numpy(Xd)
            model = self._build_module(Xd.shape[1], n_outputs, task, Xt[train_idx[:8]])
            step = WeightedStep(task, torch.from_numpy(y), torch.from_numpy(weights), train_idx)
            stopping = (
                EarlyStoppingConfig(
                    metric="val_loss", mode="min", patience=int(self.n_iter_no_change),
                    min_delta=float(self.tol),
                )
                if self.early_stopping
                else EarlyStoppingConfig(metric="train_loss", patience=None)
            )
            trainer = Trainer.from_config(
                model, train_cfg, task=task, seed=seed, device=device, step=step,
                early_stopping=stopping, restore_best=bool(self.early_stopping),
            )
            val = (Xt[val_idx], torch.from_numpy(val_idx)) if len(val_idx) else None
            trainer.fit((Xt[train_idx], torch.from_numpy(train_idx)), val)
        self.model_ = trainer.model.eval()
        self.history_ = list(trainer.history)
        self.n_iter_ = trainer.epoch
        self.best_epoch_ = trainer.best_epoch if self.early_stopping else trainer.epoch
        self.device_ = device

    def _validation_split(self, y: np.ndarray, task: str, seed: int) -> tuple[Any, Any]:
        from sklearn.model_selection import train_test_split

        name = type(self).__name__
        frac = float(self.validation_fraction)
        if not 0.0 < frac < 1.0:
            raise ValueError(
                f"{name}: validation_fraction must be in (0, 1); got {self.validation_fraction!r}"
            )
        n = len(y)
        # the labels (not their indices), so that an error names them; the split is the same
        labels = getattr(self, "classes_", None)
        stratify = None if task == "regression" or labels is None else labels[y]
        try:
            return train_test_split(
                np.arange(n), test_size=frac, random_state=seed, stratify=stratify
            )
        except ValueError as exc:
            raise ValueError(
                f"{name}: early_stopping holds out validation_fraction={frac} of {n} rows and "
                f"that cannot be split ({exc}); give more rows or set early_stopping=False"
            ) from None

    def _outputs(self, X: Any) -> np.ndarray:
        """The model's outputs on ``X``, float64, in chunks of rows.

        On the CPU the trained weights are applied in float64: a float32 matrix product rounds
        differently for one row than for many, and predictions must not depend on which other
        rows are predicted with them (scikit-learn's check_methods_subset_invariance).
        """
        import torch
        from torch.func import functional_call

        model = self.model_
        dtype = torch.float64 if self.device_.type == "cpu" else torch.float32
        state = {
            k: v.to(dtype) if v.is_floating_point() else v
            for k, v in {**dict(model.named_parameters()), **dict(model.named_buffers())}.items()
        }
        outs = []
        with torch.no_grad():
            for i in range(0, X.shape[0], _CHUNK):
                xb = torch.from_numpy(_dense(X[i : i + _CHUNK])).to(self.device_, dtype)
                out = functional_call(model, state, (xb,)).double().cpu()
                outs.append(out.reshape(len(xb), -1).numpy())
        width = outs[0].shape[1] if outs else 1
        return np.concatenate(outs) if outs else np.empty((0, width))


def _dense(X: Any) -> np.ndarray:
    """``X`` as a C-contiguous, writable float32 array; a scipy.sparse matrix is densified, and
    a read-only array (a memory map opened for reading) copied, as torch shares only a writable
    buffer."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.require(X, dtype=np.float32, requirements=["C", "W"])


class NetClassifier(ClassifierMixin, _NetBase):
    """A trainwell MLP (or any ``nn.Module``) as a scikit-learn classifier, cross-entropy loss.

    Args:
        hidden, activation, dropout, norm: trainwell's MLP (``[model]``); unused with ``module``.
        optimizer, lr, weight_decay, epochs, batch_size: the training loop (``[train]``).
        early_stopping: hold out ``validation_fraction`` of the rows (stratified) and stop when
            their loss has not improved by ``tol`` for ``n_iter_no_change`` epochs; the best
            epoch's weights are kept. False: train ``epochs`` epochs, keep the last weights.
        module: a ``torch.nn.Module`` class (built with ``module_params``) or instance (copied
            for each fit) to train instead of the MLP; it maps a float32 ``(n, n_features)``
            batch to ``(n, n_classes)`` logits (``(n, 1)`` or ``(n, 2)`` for two classes).
        class_weight: None, ``"balanced"`` (n / (n_classes * count)) or ``{label: weight}``;
            multiplies ``sample_weight``.
        device: ``cpu`` (default), ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
        random_state: an int fixes the initialization, dropout, batch order and validation
            split; None or a ``RandomState`` draws a seed.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = NetClassifier(hidden=(16,), lr=1e-2, epochs=30).fit(X, y)
        >>> clf.predict_proba(X).shape
        (150, 3)
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 20,
        batch_size: int = 64,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        module: Any = None,
        module_params: dict[str, Any] | None = None,
        class_weight: str | dict[Any, float] | None = None,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        super().__init__(
            hidden=hidden, activation=activation, dropout=dropout, norm=norm,
            optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=epochs,
            batch_size=batch_size, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            tol=tol, module=module, module_params=module_params, device=device,
            random_state=random_state,
        )
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetClassifier:
        """Train on ``X`` (array, DataFrame or scipy.sparse) and labels ``y``."""
        X, y = validate_data(
            self, X, y, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32)
        )
        # 1-D y by now (a column vector flattened with a warning); continuous y is refused here
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"NetClassifier needs samples of at least 2 classes in y; got 1 class "
                f"({self.classes_[0]!r})"
            )
        w = self._sample_weights(sample_weight, X)
        if self.class_weight is not None:
            if not (self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
                raise ValueError(
                    "NetClassifier: class_weight must be None, 'balanced' or a dict {label: "
                    f"weight}}; got {self.class_weight!r}"
                )
            w = w * compute_sample_weight(self.class_weight, y)
            if not w.sum() > 0:
                raise ValueError("NetClassifier: class_weight gives every sample weight 0")
        task = "binary" if len(self.classes_) == 2 else "multiclass"
        n_out = 1 if task == "binary" else len(self.classes_)
        self._fit_net(X, y_idx.astype(np.int64), w, task, n_out)
        self.task_ = task
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class of ``classes_``."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        out = self._outputs(X)
        if out.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-out[:, 0]))
            return np.stack([1 - p1, p1], axis=1)
        out -= out.max(axis=1, keepdims=True)
        e = np.exp(out)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.asarray(np.log(self.predict_proba(X)))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])


class NetRegressor(RegressorMixin, _NetBase):
    """A trainwell MLP (or any ``nn.Module``) as a scikit-learn regressor, squared loss.

    The parameters are :class:`NetClassifier`'s, without ``class_weight``; ``y`` may have
    several columns (one output per column), and early stopping's split is not stratified.
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetRegressor:
        """Train on ``X`` (array, DataFrame or scipy.sparse) and numbers ``y`` (n,) or (n, k)."""
        X, y = validate_data(
            self, X, y, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32),
            multi_output=True, y_numeric=True,
        )
        w = self._sample_weights(sample_weight, X)
        y = np.asarray(y, dtype=np.float32)
        self.n_targets_ = 1 if y.ndim == 1 else int(y.shape[1])
        self.target_ndim_ = y.ndim
        y2 = np.ascontiguousarray(y.reshape(len(y), -1))
        self._fit_net(X, y2, w, "regression", self.n_targets_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions: (n,) for a 1-D ``y`` at fit, else (n, k)."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        out = self._outputs(X)
        return out[:, 0] if self.target_ndim_ == 1 else out


__all__ = ["EXPECTED_FAILED_CHECKS", "EstimatorNotFittedError", "NetClassifier", "NetRegressor"]
