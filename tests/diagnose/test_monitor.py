"""TrainingMonitor on the real Trainer: stats.jsonl, hooks only on sampled steps, divergence."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trainwell.diagnose.monitor import FIELDS, TrainingMonitor, layer_map
from trainwell.errors import DivergenceError
from trainwell.train.trainer import Trainer


class _HookSpy:
    """Records, after each loss, how many forward hooks the first activation carries."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.counts = module, []

    def after_loss(self, trainer) -> None:
        self.counts.append(len(self.module._forward_hooks))


def test_stats_jsonl_follows_the_contract(tmp_path, digits, make_mlp):
    X, y = digits
    model = make_mlp()
    mon = TrainingMonitor(tmp_path, every=4)
    t = Trainer(model, epochs=2, batch_size=100, seed=0, callbacks=[mon]).fit(
        (X[:800], y[:800]), (X[800:], y[800:])
    )
    lines = [json.loads(s) for s in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and lines[-1]["step"] == 16
    assert set(lines[0]["layers"]) == {
        "0",
        "2",
        "4",
    }  # weighted layers, with their activation's stats
    for entry in lines[0]["layers"].values():
        assert set(entry) == set(FIELDS)
        assert entry["grad_norm"] > 0 and 0 < entry["update_ratio"] < 1
    assert lines[0]["layers"]["4"]["dead_frac"] == 0.0  # the output layer has no ReLU
    doc = json.loads((tmp_path / "doctor.json").read_text())
    assert doc["findings"][-1]["check"] == "curves.verdict"
    assert set(doc["activation_stats"]) == {"init", "end"}
    assert mon.verdict(t.history).status in {"pass", "warn"}


def test_hooks_are_attached_only_on_sampled_steps(digits, make_mlp):
    X, y = digits
    model = make_mlp()
    spy = _HookSpy(model[1])
    mon = TrainingMonitor(every=5)
    Trainer(model, epochs=1, batch_size=50, seed=0, callbacks=[mon, spy]).fit((X, y))  # 20 steps
    # the monitor removes its hooks in its own after_loss, which runs before the spy's
    assert spy.counts == [0] * 20
    assert len(mon.records) == 1 and mon.first_sample["step"] == 1 and mon.last_sample["step"] == 16
    assert not any(m._forward_hooks for m in model.modules())


def test_update_ratio_matches_sgd_closed_form(digits, make_mlp):
    # plain SGD: W_new - W_old = -lr * grad, so the ratio is lr * ||grad|| / ||W_old||
    X, y = digits
    model = make_mlp(hidden=(16,))
    w0 = model[0].weight.detach().clone()
    mon = TrainingMonitor(every=1)
    Trainer(
        model,
        epochs=1,
        batch_size=1000,
        seed=0,
        optimizer={"name": "sgd", "lr": 0.1},
        callbacks=[mon],
    ).fit((X, y))
    layer = mon.first_sample["layers"]["0"]
    assert layer["update_ratio"] == pytest.approx(
        0.1 * layer["grad_norm"] / w0.norm().item(), rel=1e-4
    )


def test_divergence_names_step_and_first_layer(digits, make_mlp):
    X, y = digits
    model = make_mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    mon = TrainingMonitor(every=100)
    with pytest.raises(DivergenceError):
        Trainer(model, epochs=1, batch_size=100, seed=0, callbacks=[mon]).fit((X, y))
    assert mon.divergence["step"] == 1 and mon.divergence["first_layer"] == "2"
    assert "2.weight" in mon.divergence["nonfinite_params"]
    v = mon.verdict([])
    assert v.status == "fail" and v.evidence["verdict"] == "diverged" and "step 1" in v.detail


def test_the_verdict_is_written_at_the_end_event_after_a_divergence(tmp_path, digits, make_mlp):
    X, y = digits
    model = make_mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    mon = TrainingMonitor(tmp_path, every=100)
    with pytest.raises(DivergenceError):  # no after_fit; nobody calls mon.finish by hand
        Trainer(model, epochs=1, batch_size=100, seed=0, callbacks=[mon]).fit((X, y))
    doc = json.loads((tmp_path / "doctor.json").read_text())
    (verdict,) = [f for f in doc["findings"] if f["check"] == "curves.verdict"]
    assert verdict["status"] == "fail" and verdict["evidence"]["verdict"] == "diverged"
    assert not model[0]._forward_hooks  # the hooks are gone too


def test_layer_map_pairs_weighted_layers_with_their_activation():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)
    )
    assert {k: v[1] for k, v in layer_map(model).items()} == {"2": "0", "4": "4"}


def test_bad_every_is_refused():
    with pytest.raises(ValueError, match="every must be an int >= 1; got 0"):
        TrainingMonitor(every=0)


def test_statistics_are_computed_on_sampled_steps_only(digits, monkeypatch, make_mlp):
    import trainwell.diagnose.monitor as monitor_mod

    calls = []
    real = monitor_mod.layer_stats
    monkeypatch.setattr(
        monitor_mod, "layer_stats", lambda a, kind: calls.append(kind) or real(a, kind)
    )
    X, y = digits
    Trainer(make_mlp(), epochs=2, batch_size=20, seed=0, callbacks=[TrainingMonitor(every=25)]).fit(
        (X, y)
    )
    # 100 steps, sampled at steps 0, 25, 50, 75; three watched layers (two ReLUs, the output)
    assert len(calls) == 4 * 3


def _fit_verdict(model, train, val, **kw):
    mon = TrainingMonitor(every=10)
    t = Trainer(model, seed=0, callbacks=[mon], **kw).fit(train, val)
    return mon.verdict(t.history)


def test_real_runs_get_the_right_verdict(digits, make_mlp):
    X, y = digits
    val = (X[800:], y[800:])
    # 30 training rows, a wide MLP, Adam at 1e-2 for 40 epochs: val loss turns up (lecture 004)
    over = _fit_verdict(
        make_mlp(hidden=(256, 256)), (X[:30], y[:30]), val,
        epochs=40, batch_size=30, optimizer={"name": "adam", "lr": 1e-2},
    )
    assert over.evidence["verdict"] == "overfitting" and over.status == "warn"
    assert over.evidence["final_val_loss"] > 2 * over.evidence["best_val_loss"]
    # SGD at 1e-5: the training loss stays near its initial value
    under = _fit_verdict(
        make_mlp(), (X[:800], y[:800]), val,
        epochs=2, batch_size=100, optimizer={"name": "sgd", "lr": 1e-5},
    )
    assert under.evidence["verdict"] == "underfitting"
    assert under.evidence["final_train_loss"] > 0.5 * under.evidence["initial_loss"]
    # 800 rows, Adam 1e-3: train and val fall together, a small gap
    good = _fit_verdict(
        make_mlp(), (X[:800], y[:800]), val,
        epochs=6, batch_size=50, optimizer={"name": "adam", "lr": 1e-3},
    )
    assert good.evidence["verdict"] == "good_fit", good.detail
    assert good.evidence["gap_over_initial"] < 0.1


def test_a_too_large_lr_diverges_with_step_and_layer(digits, make_mlp):
    X, y = digits
    mon = TrainingMonitor(every=100)
    with pytest.raises(DivergenceError):
        Trainer(
            make_mlp(), epochs=2, batch_size=100, seed=0,
            optimizer={"name": "sgd", "lr": 1e3}, callbacks=[mon],
        ).fit((X, y))
    d = mon.divergence
    assert d["step"] >= 2 and d["first_layer"] in {"0", "2", "4", "the loss"}
    v = mon.verdict([])
    assert v.evidence["verdict"] == "diverged" and f"step {d['step']}" in v.detail
    assert any("smaller learning rate" in a for a in v.advice)
