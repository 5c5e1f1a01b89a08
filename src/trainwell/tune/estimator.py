"""trainwell's network as a scikit-learn estimator, so it sits in a Pipeline or GridSearchCV.

``__init__`` stores the arguments, ``fit`` returns ``self`` and learned state ends in ``_``
(scikit-learn's conventions); the model is built by :func:`trainwell.nn.build_model` and trained
by :class:`trainwell.train.Trainer`, exactly as ``trainwell train`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from trainwell.errors import NotFittedError


class _NetBase(BaseEstimator):
    _task_kind = "classification"

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
        seed: int = 0,
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
        self.seed = seed

    # ------------------------------------------------------------------ helpers

    def _configs(self) -> tuple[Any, Any]:
        from trainwell.nn.config import ModelConfig
        from trainwell.schema import validate_section
        from trainwell.train.config import TrainConfig

        source = f"{type(self).__name__} parameters"
        model = validate_section(
            ModelConfig,
            {
                "arch": "mlp",
                "hidden": [int(h) for h in np.atleast_1d(self.hidden)],
                "activation": self.activation,
                "dropout": float(self.dropout),
                "norm": self.norm,
            },
            source,
        )
        train = validate_section(
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
            source,
        )
        return model, train

    def _check_X(self, X: Any, fitting: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: X must be 2-D (n_samples, n_features); got shape {X.shape}"
            )
        if not np.isfinite(X).all():
            raise ValueError(
                f"{type(self).__name__}: X contains NaN or inf; impute first (e.g. SimpleImputer)"
            )
        if not fitting:
            if not hasattr(self, "model_"):
                raise NotFittedError(
                    f"this {type(self).__name__} is not fitted yet; call fit first"
                )
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"{type(self).__name__}: X has {X.shape[1]} features, but it was fitted "
                    f"with {self.n_features_in_}"
                )
        return X

    def _fit(self, X: np.ndarray, y_t: Any, task: str, n_outputs: int) -> None:
        import torch

        from trainwell.data import Split
        from trainwell.nn import build_model
        from trainwell.train.trainer import Trainer

        model_cfg, train_cfg = self._configs()
        torch.manual_seed(int(self.seed))
        Xt = torch.from_numpy(X)
        model = build_model(model_cfg, (X.shape[1],), n_outputs, task, example_batch=Xt[:8])
        trainer = Trainer.from_config(
            model, train_cfg, task=task, seed=int(self.seed), device="cpu"
        )
        trainer.fit(Split(Xt, y_t))
        self.model_ = trainer.model.eval()
        self.history_ = list(trainer.history)
        self.n_features_in_ = X.shape[1]

    def _outputs(self, X: np.ndarray) -> np.ndarray:
        import torch

        outs = []
        with torch.no_grad():
            for i in range(0, len(X), 4096):
                outs.append(self.model_(torch.from_numpy(X[i : i + 4096])).float().numpy())
        return np.concatenate(outs) if outs else np.empty((0, 1), dtype=np.float32)


class NetClassifier(ClassifierMixin, _NetBase):
    """A trainwell MLP as a scikit-learn classifier (softmax / sigmoid output, cross-entropy).

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = NetClassifier(hidden=(16,), lr=1e-2, epochs=30).fit(X, y)
        >>> clf.predict_proba(X).shape
        (150, 3)
    """

    def fit(self, X: Any, y: Any) -> NetClassifier:
        import torch

        X = self._check_X(X, fitting=True)
        y = np.asarray(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"NetClassifier: y needs at least 2 classes; got {list(self.classes_)}"
            )
        task = "binary" if len(self.classes_) == 2 else "multiclass"
        n_out = 1 if task == "binary" else len(self.classes_)
        self._fit(X, torch.from_numpy(y_idx.astype(np.int64)), task, n_out)
        self.task_ = task
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._check_X(X, fitting=False)
        out = self._outputs(X).astype(np.float64)
        if self.task_ == "binary":
            p1 = 1.0 / (1.0 + np.exp(-out[:, 0]))
            return np.stack([1 - p1, p1], axis=1)
        out -= out.max(axis=1, keepdims=True)
        e = np.exp(out)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class NetRegressor(RegressorMixin, _NetBase):
    """A trainwell MLP as a scikit-learn regressor (linear output, squared loss)."""

    def fit(self, X: Any, y: Any) -> NetRegressor:
        import torch

        X = self._check_X(X, fitting=True)
        y = np.asarray(y, dtype=np.float32)
        self.n_targets_ = 1 if y.ndim == 1 else y.shape[1]
        y2 = y.reshape(len(y), -1)
        self._fit(X, torch.from_numpy(y2), "regression", self.n_targets_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = self._check_X(X, fitting=False)
        out = self._outputs(X)
        return out[:, 0] if self.n_targets_ == 1 else out


__all__ = ["NetClassifier", "NetRegressor"]
