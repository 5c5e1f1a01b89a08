"""Planted-bug setups for the doctor, and healthy ones (plain torch + scikit-learn's bundled data).

Each case builds ``(module, data, kwargs)`` for ``trainwell.doctor`` and names the check that
should find the planted problem (``None`` for a healthy setup: no check may fail).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn


@dataclass
class Case:
    name: str
    planted: str  # what is wrong, in words ("-" for healthy)
    expect: tuple[str, ...] | None  # checks (or check groups) that name it; None = healthy
    build: Callable[[], tuple[nn.Module, dict[str, Any]]]


def _split(X: np.ndarray, y: np.ndarray, scale: bool = True, seed: int = 0):
    Xa, Xb, ya, yb = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y if y.dtype.kind in "iu" else None
    )
    if scale:
        sc = StandardScaler().fit(Xa)
        Xa, Xb = sc.transform(Xa), sc.transform(Xb)
    def t(a):
        return torch.tensor(a, dtype=torch.float32)

    def lab(a):
        return torch.tensor(a, dtype=torch.long) if y.dtype.kind in "iu" else t(a)

    return (t(Xa), lab(ya)), (t(Xb), lab(yb))


def digits(scale: bool = True):
    X, y = load_digits(return_X_y=True)
    return _split(X, y, scale)


def cancer(scale: bool = True):
    X, y = load_breast_cancer(return_X_y=True)
    return _split(X, y, scale)


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    y = ((y - y.mean()) / y.std()).reshape(-1, 1)
    return _split(X, y, True)


def mlp(
    d_in: int,
    d_out: int,
    hidden=(256, 256),
    act: type[nn.Module] = nn.ReLU,
    norm: bool = False,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = d_in
    for h in hidden:
        layers.append(nn.Linear(prev, h))
        if norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, d_out))
    return nn.Sequential(*layers)


def init_(model: nn.Module, how: str, std: float = 1.0) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if how == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif how == "xavier":
                nn.init.normal_(m.weight, std=1 / np.sqrt(m.in_features))  # lecture 001
            elif how == "normal":
                nn.init.normal_(m.weight, std=std)
            elif how == "zeros":
                nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    return model


# ------------------------------------------------------------------ planted bugs


def labels_shuffled():
    tr, te = digits()
    gen = torch.Generator().manual_seed(1)
    tr = (tr[0], tr[1][torch.randperm(len(tr[1]), generator=gen)])
    return init_(mlp(64, 10), "kaiming"), {"data": tr, "test": te, "lr": 1e-3}


def lr_10():
    tr, te = digits()
    return init_(mlp(64, 10), "kaiming"), {"data": tr, "test": te, "optimizer": "sgd", "lr": 10.0}


def zero_init():
    tr, te = digits()
    return init_(mlp(64, 10), "zeros"), {"data": tr, "test": te, "lr": 1e-3}


def deep_sigmoid_std1():
    tr, te = digits()
    model = init_(mlp(64, 10, hidden=(256,) * 6, act=nn.Sigmoid), "normal", 1.0)
    return model, {"data": tr, "test": te, "lr": 1e-3}


def unscaled_features():
    X, y = load_digits(return_X_y=True)
    scales = 10.0 ** np.random.default_rng(0).uniform(-3, 3, X.shape[1])
    tr, te = _split(X * scales, y, scale=False)
    return init_(mlp(64, 10), "kaiming"), {"data": tr, "test": te, "lr": 1e-3}


def train_test_duplicates():
    tr, te = digits()
    te = (torch.cat([te[0][:200], tr[0][:250]]), torch.cat([te[1][:200], tr[1][:250]]))
    return init_(mlp(64, 10), "kaiming"), {"data": tr, "test": te, "lr": 1e-3}


def relu_negative_bias():
    tr, te = digits()
    model = init_(mlp(64, 10), "kaiming")
    nn.init.constant_(model[0].bias, -10.0)
    return model, {"data": tr, "test": te, "lr": 1e-3}


def wrong_loss():
    tr, te = digits()
    return init_(mlp(64, 10), "kaiming"), {
        "data": tr,
        "test": te,
        "lr": 1e-3,
        "loss": "mse",
        "task": "multiclass",
    }


def dropout_099():
    tr, te = digits()
    return init_(mlp(64, 10, dropout=0.99), "kaiming"), {"data": tr, "test": te, "lr": 1e-3}


def target_leak():
    (Xa, ya), (Xb, yb) = cancer()

    def leak(X, y):
        return torch.cat([X, (y.float()[:, None] - 0.5) * 2], 1)

    return init_(mlp(31, 1, hidden=(64, 64)), "kaiming"), {
        "data": (leak(Xa, ya), ya),
        "test": (leak(Xb, yb), yb),
        "lr": 1e-3,
    }


def tanh_small_init():
    tr, te = digits()
    model = init_(mlp(64, 10, hidden=(256,) * 6, act=nn.Tanh), "normal", 0.01)  # lecture 001
    return model, {"data": tr, "test": te, "lr": 1e-3}


def softmax_then_ce():
    tr, te = digits()
    return nn.Sequential(init_(mlp(64, 10), "kaiming"), nn.Softmax(dim=1)), {
        "data": tr,
        "test": te,
        "lr": 1e-3,
    }


def nan_inputs():
    (Xa, ya), te = digits()
    Xa = Xa.clone()
    Xa[::50, 5] = float("nan")
    return init_(mlp(64, 10), "kaiming"), {"data": (Xa, ya), "test": te, "lr": 1e-3}


# ------------------------------------------------------------------ healthy setups


def healthy_digits_relu():
    tr, te = digits()
    return init_(mlp(64, 10), "kaiming"), {"data": tr, "test": te, "lr": 1e-3}


def healthy_digits_tanh_sgd():
    tr, te = digits()
    return init_(mlp(64, 10, hidden=(128, 128), act=nn.Tanh), "xavier"), {
        "data": tr,
        "test": te,
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "lr": 0.05,
    }


def healthy_cancer_bn_dropout():
    tr, te = cancer()
    return mlp(30, 1, hidden=(64, 64), norm=True, dropout=0.2), {"data": tr, "test": te, "lr": 1e-3}


def healthy_diabetes_regression():
    tr, te = diabetes()
    return init_(mlp(10, 1, hidden=(64, 64)), "kaiming"), {"data": tr, "test": te, "lr": 1e-3}


def healthy_digits_cnn():
    (Xa, ya), (Xb, yb) = digits()

    def img(X):
        return X.reshape(-1, 1, 8, 8)

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    return model, {"data": (img(Xa), ya), "test": (img(Xb), yb), "lr": 1e-3}


CASES = [
    Case("labels_shuffled", "training labels randomly permuted", ("data.signal",), labels_shuffled),
    Case("lr_10", "SGD with a learning rate of 10", ("lr.setting",), lr_10),
    Case("zero_init", "every weight and bias initialized to 0", ("init.symmetry",), zero_init),
    Case(
        "deep_sigmoid_std1",
        "6 sigmoid layers, weights N(0, 1)",
        ("init.saturation",),
        deep_sigmoid_std1,
    ),
    Case(
        "unscaled_features",
        "features left unscaled, scales 1e-3 .. 1e3",
        ("data.scale",),
        unscaled_features,
    ),
    Case(
        "train_test_dups",
        "250 training rows copied into the test split",
        ("data.leakage",),
        train_test_duplicates,
    ),
    Case(
        "relu_neg_bias",
        "first-layer bias -10 kills every ReLU",
        ("init.dead_relu",),
        relu_negative_bias,
    ),
    Case("wrong_loss", "MSE loss on a 10-class task", ("loss.task",), wrong_loss),
    Case("dropout_099", "dropout p = 0.99 after each hidden layer", ("overfit",), dropout_099),
    Case("target_leak", "the label copied into a feature", ("data.target_leak",), target_leak),
    Case(
        "tanh_std001",
        "6 tanh layers, weights N(0, 0.01^2) (lecture 001)",
        ("init.vanishing",),
        tanh_small_init,
    ),
    Case("softmax_then_ce", "softmax output fed to cross-entropy", ("loss.task",), softmax_then_ce),
    Case("nan_inputs", "NaN in an input feature", ("data.finite",), nan_inputs),
    Case("healthy_relu", "-", None, healthy_digits_relu),
    Case("healthy_tanh_sgd", "-", None, healthy_digits_tanh_sgd),
    Case("healthy_bn_dropout", "-", None, healthy_cancer_bn_dropout),
    Case("healthy_regression", "-", None, healthy_diabetes_regression),
    Case("healthy_cnn", "-", None, healthy_digits_cnn),
    Case("healthy_demo_toml", "-", None, lambda: (None, {"config": "demo.toml"})),
]
