"""``train.precision = "bf16"`` on a CPU: autocast where the CPU computes bf16 natively, fp32
with one stated warning elsewhere; checkpoints stay fp32 either way."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from trainwell.train import Callback, Trainer
from trainwell.train import device as device_mod
from trainwell.train import trainer as trainer_mod
from trainwell.train.checkpoint import load_checkpoint, rng_state, training_state_problem


def digits_split():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
    t = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return (t(Xtr), torch.tensor(ytr)), (t(Xte), torch.tensor(yte))


class Dtypes(Callback):
    """The dtype of the model's output in training: what autocast computed in."""

    def __init__(self):
        self.seen = set()

    def after_loss(self, trainer):
        self.seen.add(trainer.output.dtype)


def fit(precision, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    watch = Dtypes()
    t = Trainer(model, loss="cross_entropy", optimizer={"name": "adam", "lr": 3e-3}, epochs=12,
                batch_size=64, seed=0, precision=precision, device="cpu", threads=None,
                callbacks=[watch], **kw)
    train, test = digits_split()
    t.fit(train, test)
    return t, watch.seen


def test_bf16_autocast_on_a_cpu_with_bf16_keeps_accuracy_and_fp32_checkpoints(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(device_mod, "cpu_supports_bf16", lambda: True)
    bf16, seen = fit("bf16", checkpoint_dir=tmp_path)
    fp32, seen32 = fit("fp32")
    assert seen == {torch.bfloat16} and seen32 == {torch.float32}
    assert bf16.precision_used == "bf16"
    # the runs differ (bf16 matmuls) but learn the same: test accuracy within 0.5 point
    assert any(not torch.equal(p, q) for p, q in
               zip(bf16.model.parameters(), fp32.model.parameters(), strict=True))
    acc16, acc32 = bf16.history[-1]["val_accuracy"], fp32.history[-1]["val_accuracy"]
    assert acc32 > 0.95 and abs(acc16 - acc32) <= 0.005
    # weights, optimizer moments and the checkpoint stay fp32
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    saved = load_file(str(tmp_path / "last.safetensors"))
    floats = [v.dtype for v in saved.values() if v.is_floating_point()]
    assert len(floats) >= 3 * 4 and set(floats) == {torch.float32}  # weights, best, moments


def test_bf16_on_a_cpu_without_it_falls_back_to_fp32_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(device_mod, "cpu_supports_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="trainwell.train.device"):
        t, seen = fit("bf16")
    warnings = [r.getMessage() for r in caplog.records if r.name == "trainwell.train.device"]
    assert len(warnings) == 1
    assert "no native bf16" in warnings[0] and "training in fp32" in warnings[0]
    assert seen == {torch.float32} and t.precision_used == "fp32"


def test_the_capability_check_reads_torchs_cpu_features(monkeypatch):
    from types import MappingProxyType

    for caps, expected in [({"avx2": True, "avx512_bf16": False}, False),
                           ({"avx512_bf16": True}, True), ({"amx_bf16": True}, True),
                           ({"bf16": True, "architecture": "arm64"}, True)]:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda c=caps: MappingProxyType(c))
        assert device_mod.cpu_supports_bf16() is expected


def test_a_run_says_which_precision_ran(monkeypatch, runs_dir):
    from trainwell.cli import main

    monkeypatch.setattr(device_mod, "cpu_supports_bf16", lambda: False)
    cfg = runs_dir.parent / "p.toml"
    cfg.write_text(
        'seed = 0\n[data]\nsource = "builtin:iris"\n[model]\narch = "mlp"\nhidden = [8]\n'
        '[train]\nepochs = 1\nprecision = "bf16"\ndevice = "cpu"\n[log]\nreport = false\n'
    )
    assert main(["train", str(cfg), "--quiet", "--name", "p"]) == 0
    results = json.loads((runs_dir / "p" / "results.json").read_text())
    assert results["precision"] == {"requested": "bf16", "used": "fp32"}


@pytest.mark.parametrize("precision", ["fp16"])
def test_fp16_on_a_cpu_still_falls_back(precision, caplog):
    with caplog.at_level(logging.WARNING, logger="trainwell.train.device"):
        ctx, _scaler, used = device_mod.autocast_context(torch.device("cpu"), precision)
    assert used == "fp32" and "needs a GPU" in caplog.text


class _Interrupt(Callback):
    """Ctrl-C at the end of ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, trainer):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def test_fp16_loss_scale_is_checkpointed_and_a_resumed_run_continues_it(monkeypatch, tmp_path):
    """fp16's GradScaler is training state: its scale backs off after overflowing steps, and a
    resume that started again at 2**16 would skip those steps again. On a CPU, with CPU fp16
    autocast and a CPU GradScaler standing in for a GPU's (the trainer's own device rule
    turns fp16 off on a CPU), a run interrupted and resumed ends bit for bit where an
    uninterrupted one does, and the checkpoint holds the scale it had reached."""
    scalers = []

    def fp16_on_cpu(device, precision):
        scalers.append(torch.amp.GradScaler("cpu"))
        return torch.autocast("cpu", dtype=torch.float16), scalers[-1], "fp16"

    monkeypatch.setattr(trainer_mod, "autocast_context", fp16_on_cpu)
    train, test = digits_split()

    def run(resume=None, **kw):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))
        t = Trainer(model, loss=lambda out, y: 1000.0 * nn.functional.cross_entropy(out, y),
                    optimizer={"name": "adam", "lr": 3e-3}, epochs=4, batch_size=64, seed=0,
                    precision="fp16", device="cpu", threads=None, **kw)
        return t.fit(train, test, resume=resume)

    full = run()
    # the premise: a x1000 loss overflows fp16 at 2**16, so the scale backed off
    assert scalers[-1].get_scale() < 2.0**16
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[_Interrupt(3)])
    saved = load_checkpoint(tmp_path)["scaler"]
    assert 0 < saved["scale"] < 2.0**16
    resumed = run(resume=tmp_path)
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("scaler", [{"scale": "big"}, {"scale": -1.0}, {"scale": 8.0, "x": []}, 3])
def test_a_damaged_loss_scale_in_a_checkpoint_is_named(scaler):
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = {"epoch": 0, "step": 0, "best_epoch": 0, "elapsed": 0.0, "stopped_early": False,
             "optimizer": opt.state_dict(), "schedule": {}, "early_stopping": {}, "history": [],
             "rng": {}, "model": model.state_dict(), "best": None}
    state["rng"] = rng_state()
    assert training_state_problem(state, model) is None
    state["scaler"] = scaler
    assert training_state_problem(state, model).startswith(
        "scaler should hold fp16's loss scale (a number > 0)"
    )
