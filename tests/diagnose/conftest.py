"""Shared small data and models for the doctor's tests (scikit-learn's bundled digits)."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(StandardScaler().fit_transform(X[:1000]), dtype=torch.float32)
    return X, torch.tensor(y[:1000])


def _make_mlp(
    d_in=64, d_out=10, hidden=(64, 64), act=nn.ReLU, dropout=0.0, seed=0, init="kaiming", std=1.0
):
    torch.manual_seed(seed)
    layers, prev = [], d_in
    for h in hidden:
        layers += [nn.Linear(prev, h), act()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, d_out))
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if init == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif init == "xavier":
                nn.init.normal_(m.weight, std=m.in_features**-0.5)
            elif init == "normal":
                nn.init.normal_(m.weight, std=std)
            elif init == "zeros":
                nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@pytest.fixture
def make_mlp():
    """The MLP builder: make_mlp(d_in=64, d_out=10, hidden=(64, 64), act=nn.ReLU, dropout=0,
    init=...)."""
    return _make_mlp
