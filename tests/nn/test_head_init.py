"""Under ``init = "auto"`` the output layer starts small, so the initial loss is the chance loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.config import load_config
from trainwell.data import prepare
from trainwell.nn import build_model, init_model_
from trainwell.nn.initialize import HEAD_SCALE


def test_auto_scales_only_the_output_layer():
    torch.manual_seed(0)
    net = init_model_(nn.Sequential(nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 300)), "auto")
    assert net[0].weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.03)
    assert net[2].weight.std().item() == pytest.approx(HEAD_SCALE / math.sqrt(400), rel=0.03)
    assert "x0.1 (output layer)" in net[2].init_scheme
    torch.manual_seed(0)
    plain = init_model_(nn.Sequential(nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 300)),
                        "xavier_normal")
    assert plain[2].weight.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.03)


def test_a_cnn_on_digits_starts_at_the_chance_loss():
    cfg = load_config({"data": {"source": "builtin:digits_images"}, "model": {"arch": "cnn"}})
    data = prepare(cfg.data, cfg.seed)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.n_outputs, data.task).eval()
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(data.train.X[:512]), data.train.y[:512])
    assert loss.item() == pytest.approx(math.log(10), rel=0.05)
