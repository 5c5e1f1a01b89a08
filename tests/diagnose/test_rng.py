"""The doctor runs on its own generators: the caller's RNG and a run's numbers stay the same."""

from __future__ import annotations

import json

import torch
from torch import nn

import trainwell
from trainwell.diagnose import find_lr
from trainwell.diagnose.lr import lr_range_test, train_at
from trainwell.diagnose.overfit import fit_subset
from trainwell.diagnose.recipe import make_problem

FAST = {
    "overfit_iters": 20,
    "overfit_batches": 2,
    "lr_iters": 20,
    "probe_iters": 10,
    "probe_lrs": [0.01],
}


def _dropout_problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(128, 6, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    return model, X, y


def test_doctor_leaves_torchs_global_rng_as_it_was():
    model, X, y = _dropout_problem()
    torch.manual_seed(123)
    torch.rand(3)  # somewhere in the middle of a stream
    before = torch.get_rng_state()
    trainwell.doctor(model, (X, y), lr=1e-3, config=FAST, gradcheck=True)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_doctors_loops_leave_the_rng_alone_when_called_directly():
    model, X, y = _dropout_problem()
    p = make_problem(model, (X, y), seed=5)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = fit_subset(p, torch.arange(32), 20, 1e-2, batch_size=8)
    lr_range_test(p, iters=15, batch_size=32)
    train_at(p, 1e-2, iters=10, batch_size=32)
    find_lr(model, (X, y), iters=15)
    assert torch.equal(torch.get_rng_state(), before)
    # each loop draws its dropout masks from its own seeded stream: the same numbers every time
    torch.manual_seed(99)
    again = fit_subset(p, torch.arange(32), 20, 1e-2, batch_size=8)
    assert first["loss"] == again["loss"] and first["start_loss"] == again["start_loss"]


def _iris(tmp_path, doctor: bool) -> dict:
    return {
        "name": f"iris-doctor-{doctor}",
        "runs_dir": str(tmp_path / "runs"),
        "data": {"source": "builtin:iris"},
        "model": {"hidden": [32, 32], "dropout": 0.3},
        "train": {"epochs": 4, "batch_size": 16},
        "doctor": {"enabled": doctor, **FAST},
        "log": {"report": False},
    }


def test_enabling_the_doctor_does_not_change_the_training_numbers(tmp_path):
    plain = trainwell.fit(_iris(tmp_path, False), quiet=True)
    checked = trainwell.fit(_iris(tmp_path, True), quiet=True)
    found = json.loads((checked.run_dir / "doctor.json").read_text())["findings"]
    assert {"loss.initial", "overfit.one", "lr.range"} <= {f["check"] for f in found}
    losses = [r["train_loss"] for r in plain.history]
    assert losses == [r["train_loss"] for r in checked.history]
    assert [r["val_loss"] for r in plain.history] == [r["val_loss"] for r in checked.history]
