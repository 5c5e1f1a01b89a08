"""``[train] channels_last`` and ``[train] compile``: the same results, faster (opt-in)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

import trainwell
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.train import Trainer


def images(n=150, seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, 10, 10, generator=g)
    y = (X[:, 0, 3:7, 3:7].mean((1, 2)) > X[:, 2].mean((1, 2))).long()  # learnable
    return X, y


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 5 * 5, 2),
    )


def losses(trainer):
    return [(r["train_loss"], r["val_loss"]) for r in trainer.history]


def test_channels_last_gives_the_same_losses_and_keeps_the_plain_state_dict():
    X, y = images()
    train, val = (X[:110], y[:110]), (X[110:], y[110:])
    plain = Trainer(cnn(), epochs=3, batch_size=32, seed=0, threads=1).fit(train, val)
    fast = Trainer(cnn(), epochs=3, batch_size=32, seed=0, threads=1,
                   channels_last=True).fit(train, val)
    # sums ordered differently (NHWC kernels); Adam turns tiny gradient differences into steps
    np.testing.assert_allclose(losses(fast), losses(plain), rtol=2e-4)
    conv = fast.model[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert not plain.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert list(fast.model.state_dict()) == list(plain.model.state_dict())
    seen = []
    fast.model[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    same = cnn()
    same.load_state_dict(fast.model.state_dict())  # its weights in a plain NCHW model
    fast.model.eval()
    same.eval()
    out = fast.model(X[:4].contiguous())  # a plain NCHW batch is converted on the way in
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, same(X[:4]), rtol=1e-5, atol=1e-6)


def test_a_resumed_channels_last_run_ends_bit_identical(tmp_path):
    X, y = images(96)
    whole = Trainer(cnn(), epochs=4, batch_size=32, seed=2, threads=1, channels_last=True,
                    optimizer={"name": "adam", "lr": 0.01}).fit((X, y))
    first = Trainer(cnn(), epochs=2, batch_size=32, seed=2, threads=1, channels_last=True,
                    optimizer={"name": "adam", "lr": 0.01}, checkpoint_dir=tmp_path).fit((X, y))
    assert first.epoch == 2
    rest = Trainer(cnn(seed=9), epochs=4, batch_size=32, seed=2, threads=1, channels_last=True,
                   optimizer={"name": "adam", "lr": 0.01}).fit((X, y), resume=tmp_path)
    assert [r["train_loss"] for r in rest.history] == [r["train_loss"] for r in whole.history]
    for a, b in zip(rest.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_channels_last_on_a_table_is_refused_before_any_run_directory(runs_dir):
    cfg = {"data": {"source": "builtin:iris"}, "train": {"epochs": 1, "channels_last": True}}
    with pytest.raises(ConfigError, match=r"train.channels_last .* builtin:iris gives samples of "
                       r"shape \(4,\); it applies to images only"):
        trainwell.fit(cfg, quiet=True)
    assert not list(runs_dir.iterdir())
    with pytest.raises(ConfigError, match="the training data gives samples of shape"):
        Trainer(nn.Linear(4, 3), epochs=1, channels_last=True).fit(
            (torch.randn(8, 4), torch.randint(0, 3, (8,))))


def test_the_switches_are_checked_at_load():
    cfg = load_config({"train": {"channels_last": True, "compile": True,
                                 "compile_backend": "aot_eager"}})
    assert cfg.train.channels_last and cfg.train.compile
    assert load_config({}).train.compile is False  # opt-in: compiling takes 20 s and more
    with pytest.raises(ConfigError, match="train.compile_backend") as info:
        load_config({"train": {"compile_backend": "tensorrt"}})
    assert "inductor" in str(info.value) and "'tensorrt'" in str(info.value)


@pytest.mark.slow
def test_compile_gives_eagers_results_with_plain_names_and_its_time_apart(runs_dir):
    # aot_eager: torch.compile's tracing and autograd graphs without inductor's code generation,
    # which takes minutes on a small CPU (train.compile_backend, documented in docs/training.md)
    base = {"seed": 4, "data": {"source": "builtin:mnist_sample",
                                "params": {"train_per_class": 10}, "split": {"val": 0.04}},
            "model": {"arch": "cnn", "channels": [4, 8]},
            "train": {"epochs": 2, "batch_size": 40, "checkpoint_every": 1, "threads": 1},
            "log": {"report": False}, "doctor": {"enabled": False}}
    eager = trainwell.fit(base, name="eager", quiet=True)
    base["train"].update(compile=True, compile_backend="aot_eager", channels_last=True)
    comp = trainwell.fit(base, name="compiled", quiet=True)
    np.testing.assert_allclose([r["train_loss"] for r in comp.trainer.history],
                               [r["train_loss"] for r in eager.trainer.history], rtol=1e-5)
    assert comp.metrics["test_accuracy"] == pytest.approx(eager.metrics["test_accuracy"],
                                                          abs=1e-3)
    results = json.loads((comp.run_dir / "results.json").read_text())
    assert results["compile_time"] > 0 and "compile_time" not in json.loads(
        (eager.run_dir / "results.json").read_text())
    assert comp.trainer.history[0]["epoch_time"] < results["compile_time"]  # counted apart
    with safe_open(str(comp.run_dir / "model.safetensors"), "pt") as f:
        names = sorted(f.keys())
    with safe_open(str(eager.run_dir / "model.safetensors"), "pt") as f:
        assert names == sorted(f.keys()) and not any("_orig_mod" in n for n in names)
    assert type(comp.model) is type(eager.model)  # the plain module, as a run returns it
    X = np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32)
    np.savez(runs_dir.parent / "x.npz", X=X)
    p_comp = trainwell.load(comp.run_dir).predict_proba(runs_dir.parent / "x.npz")
    p_eager = trainwell.load(eager.run_dir).predict_proba(runs_dir.parent / "x.npz")
    np.testing.assert_allclose(np.asarray(p_comp), np.asarray(p_eager), rtol=1e-4, atol=1e-5)
    plain = Trainer(comp.model, epochs=2, seed=0, threads=1)  # its checkpoint, uncompiled
    plain.fit(comp.prepared.train, resume=comp.run_dir / "checkpoints")
    assert plain.epoch == 2
