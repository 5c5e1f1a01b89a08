"""Gradient check: autograd vs central differences in float64."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.diagnose import doctor


class _BadSquare(torch.autograd.Function):
    """x^2 with a wrong backward (x instead of 2x): the bug a gradient check must catch."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x


class _Custom(nn.Module):
    def __init__(self, bad: bool) -> None:
        super().__init__()
        self.fc1, self.fc2, self.bad = nn.Linear(6, 8), nn.Linear(8, 3), bad

    def forward(self, x):
        h = self.fc1(x)
        h = _BadSquare.apply(h) if self.bad else h * h
        return self.fc2(torch.tanh(h))


def _data():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)


def test_correct_layer_passes_and_agrees_with_torch_gradcheck():
    torch.manual_seed(0)
    model = _Custom(bad=False)
    rep = doctor(model, _data(), checks=[], gradcheck=True)
    f = rep.get("gradcheck")[0]
    assert f.status == "pass" and f.evidence["max_rel_error"] < 1e-6
    x = _data()[0][:4].double().requires_grad_()
    net = _Custom(False).double()
    assert torch.autograd.gradcheck(net, (x,))


def test_wrong_backward_fails_and_names_the_parameter():
    torch.manual_seed(0)
    rep = doctor(_Custom(bad=True), _data(), checks=[], gradcheck=True)
    f = rep.get("gradcheck")[0]
    assert f.status == "fail" and f.evidence["max_rel_error"] > 0.1
    assert f.evidence["per_param"]["fc2.weight"] < 1e-6  # after the bad op: still right
    assert f.evidence["per_param"]["fc1.weight"] > 0.1
