"""The Trainer on real data (iris, digits): events, metrics, early stopping, divergence, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_iris
from sklearn.metrics import f1_score, mean_absolute_error, r2_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.errors import DivergenceError
from trainwell.train import Callback, Trainer
from trainwell.train.callbacks import EVENTS
from trainwell.train.config import EarlyStoppingConfig, PenaltyConfig
from trainwell.train.metrics import task_metrics


def iris():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = torch.tensor(X[perm], dtype=torch.float32), torch.tensor(y[perm])
    return (X[:100], y[:100]), (X[100:], y[100:])


def mlp(n_in=4, n_out=3, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, n_out))


def strip_times(history):
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in history]


class Recorder:  # a plain object with one method per event (no Callback base needed)
    def __init__(self):
        self.events = []


for _event in EVENTS:
    setattr(Recorder, _event, lambda self, trainer, _e=_event: self.events.append(_e))


def test_trainer_learns_iris_and_logs_the_record():
    train, val = iris()
    t = Trainer(
        mlp(), epochs=30, batch_size=16, optimizer={"name": "adam", "lr": 0.01}, seed=0
    ).fit(train, val)
    last = t.history[-1]
    assert set(last) == {
        "epoch",
        "step",
        "lr",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_f1_macro",
        "epoch_time",
        "time",
    }
    assert last["step"] == 30 * 7 and t.step == 210 and t.epoch == 30
    assert last["val_accuracy"] > 0.9
    assert t.history[-1]["train_loss"] < t.history[0]["train_loss"] / 3


def test_events_fire_in_order():
    train, _ = iris()
    rec = Recorder()
    Trainer(mlp(), epochs=1, batch_size=50, callbacks=[rec], seed=0).fit(train)
    batch = ["before_batch", "after_loss", "after_backward", "after_step", "after_batch"]
    assert rec.events == [
        "before_fit",
        "before_epoch",
        *batch,
        *batch,
        "after_epoch",
        "after_fit",
        "end",
    ]


def test_callback_exception_propagates_with_consistent_state():
    class Prune(Exception):
        pass

    class Pruner(Callback):
        def after_epoch(self, trainer):
            if trainer.epoch == 2:
                raise Prune

    train, val = iris()
    t = Trainer(mlp(), epochs=5, batch_size=25, callbacks=[Pruner()], seed=0)
    with pytest.raises(Prune) as info:
        t.fit(train, val)
    assert "raised by callback Pruner in event 'after_epoch'" in "".join(info.value.__notes__)
    assert t.epoch == 2 and len(t.history) == 2 and t.step == 8
    assert t.history[-1]["step"] == t.step


def test_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(200, 4, generator=g)
    y = torch.randint(0, 4, (200,), generator=g)
    m = task_metrics(out, y, "multiclass", top_k=2)
    pred = out.argmax(1).numpy()
    assert m["accuracy"] == pytest.approx((pred == y.numpy()).mean())
    assert m["f1_macro"] == pytest.approx(f1_score(y.numpy(), pred, average="macro"))
    top2 = out.topk(2, 1).indices.numpy()
    assert m["top2_accuracy"] == pytest.approx((top2 == y.numpy()[:, None]).any(1).mean())
    yr, outr = torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g)
    r = task_metrics(outr, yr, "regression")
    assert r["r2"] == pytest.approx(r2_score(yr.numpy(), outr.numpy()))
    assert r["mae"] == pytest.approx(mean_absolute_error(yr.numpy(), outr.numpy()))
    assert r["rmse"] == pytest.approx(np.sqrt(((yr - outr) ** 2).mean(0).numpy()).mean())


def test_early_stopping_restores_the_best_epoch():
    train, val = iris()
    noisy_val = (
        val[0],
        torch.randint(0, 3, (len(val[1]),), generator=torch.Generator().manual_seed(1)),
    )
    snaps = {}

    class Snap(Callback):
        def after_epoch(self, trainer):
            snaps[trainer.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    t = Trainer(
        mlp(),
        epochs=200,
        batch_size=16,
        optimizer={"name": "adam", "lr": 0.02},
        seed=0,
        early_stopping=EarlyStoppingConfig(patience=5),
        callbacks=[Snap()],
    ).fit(train, noisy_val)
    losses = [r["val_loss"] for r in t.history]
    assert t.stopped_early and len(t.history) < 200
    assert t.best_epoch == int(np.argmin(losses)) + 1
    assert len(t.history) == t.best_epoch + 5
    for k, v in t.model.state_dict().items():
        torch.testing.assert_close(v, snaps[t.best_epoch][k])


def test_divergence_stops_at_once_and_keeps_best_snapshot():
    class Explode(Callback):
        def after_epoch(self, trainer):
            for g in trainer.optimizer.param_groups:
                g["lr"] = 1e30
            trainer.schedule.base_lrs = [1e30]

    train, val = iris()
    t = Trainer(
        mlp(),
        epochs=10,
        batch_size=10,
        optimizer={"name": "sgd", "lr": 0.1},
        seed=0,
        callbacks=[Explode()],
    )
    with pytest.raises(
        DivergenceError, match=r"at step 1[1-9] \(epoch 2, lr 1e\+30\).*learning rate is too high"
    ):
        t.fit(train, val)
    assert t.diverged and t.best_epoch == 1 and len(t.history) == 1
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    assert t.evaluate(val)["val_accuracy"] == pytest.approx(t.history[0]["val_accuracy"])


def test_same_seed_same_history_and_dataloader_path():
    train, val = iris()
    a = Trainer(mlp(dropout=0.2), epochs=4, batch_size=16, seed=3).fit(train, val)
    b = Trainer(mlp(dropout=0.2), epochs=4, batch_size=16, seed=3).fit(train, val)
    assert strip_times(a.history) == strip_times(b.history)
    loader = DataLoader(
        TensorDataset(*train),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    c = Trainer(mlp(), epochs=20, optimizer={"name": "adam", "lr": 0.01}, seed=0).fit(loader, val)
    assert c.history[-1]["val_accuracy"] > 0.85 and c.step == 20 * 7
    d = Trainer(mlp(), epochs=2, batch_size=16, seed=0).fit(TensorDataset(*train), val)
    assert d.step == 2 * 7


def test_penalty_shrinks_weights_and_clip_bounds_steps():
    train, _ = iris()
    # one full-batch SGD step equals the step on autograd's gradient of CE + lambda * R(W)
    ref = mlp()
    pen = Trainer(
        mlp(),
        epochs=1,
        batch_size=100,
        shuffle=False,
        seed=0,
        optimizer={"name": "sgd", "lr": 0.1},
        penalty=PenaltyConfig(name="elastic", lam=0.1, beta=0.5),
    ).fit(train)
    W = [ref[0].weight, ref[3].weight]
    full = nn.functional.cross_entropy(ref(train[0]), train[1]) + 0.1 * sum(
        (0.5 * w**2 + w.abs()).sum() for w in W
    )
    grads = torch.autograd.grad(full, list(ref.parameters()))
    for p, q, g in zip(pen.model.parameters(), ref.parameters(), grads, strict=True):
        torch.testing.assert_close(p.detach(), q.detach() - 0.1 * g)
    moves = []

    class Move(Callback):
        def before_batch(self, trainer):
            self.w = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])

        def after_step(self, trainer):
            w = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
            moves.append(float((w - self.w).norm()))

    Trainer(
        mlp(),
        epochs=1,
        seed=0,
        optimizer={"name": "sgd", "lr": 1.0},
        grad_clip=0.01,
        callbacks=[Move()],
    ).fit(train)
    assert max(moves) <= 0.01 + 1e-6


def test_checkpoint_resume_in_process_is_exact(tmp_path):
    train, val = iris()
    kw = {
        "epochs": 6,
        "batch_size": 16,
        "seed": 0,
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": "cosine",
        "early_stopping": EarlyStoppingConfig(patience=20),
    }
    full = Trainer(mlp(dropout=0.3), **kw).fit(train, val)

    class Kill(Callback):
        def after_epoch(self, trainer):
            if trainer.epoch == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(
            mlp(dropout=0.3), checkpoint_dir=tmp_path, checkpoint_every=3, callbacks=[Kill()], **kw
        ).fit(train, val)
    resumed = Trainer(mlp(dropout=0.3, seed=99), **kw).fit(train, val, resume=tmp_path)
    assert strip_times(resumed.history) == strip_times(full.history)
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_regression_and_binary_tasks_are_inferred():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X[:300] / 16, dtype=torch.float32)
    yb = torch.tensor((y[:300] % 2 == 0).astype(np.int64))
    t = Trainer(mlp(64, 1), epochs=5, seed=0).fit((X, yb), (X, yb))
    assert t.task == "binary" and t.history[-1]["val_accuracy"] > 0.8
    yr = torch.tensor(y[:300], dtype=torch.float32).reshape(-1, 1)
    r = Trainer(mlp(64, 1), epochs=5, seed=0, optimizer={"name": "adam", "lr": 0.01}).fit(
        (X, yr), (X, yr)
    )
    assert r.task == "regression" and {"val_rmse", "val_mae", "val_r2"} <= set(r.history[-1])


def test_checkpoint_survives_a_kill_between_its_two_files(tmp_path):
    from trainwell.train.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path, {"epoch": 1, "w": torch.ones(2)})
    save_checkpoint(tmp_path, {"epoch": 2, "w": torch.full((2,), 2.0)})
    good = (tmp_path / "last.json").read_text()
    save_checkpoint(tmp_path, {"epoch": 3, "w": torch.full((2,), 3.0)})
    (tmp_path / "last.json").write_text(good)  # as if killed before last.json was replaced
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.full((2,), 2.0))
    (tmp_path / "prev.safetensors").unlink()
    with pytest.raises(Exception, match="no tensor file matches last.json"):
        load_checkpoint(tmp_path)


def test_background_checkpoint_writes_the_state_as_it_was_when_submitted(tmp_path):
    from trainwell.train.checkpoint import CheckpointWriter, load_checkpoint

    w = torch.ones(3)
    writer = CheckpointWriter()
    writer.submit(tmp_path, {"epoch": 1, "w": w, "history": [{"epoch": 1}]})
    w.add_(10.0)  # training goes on changing the tensors while the thread writes
    writer.wait()
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    # a failed write is raised by the next wait, in the training thread
    blocker = tmp_path / "blocked"
    blocker.write_text("a file, not a directory")
    writer.submit(blocker / "ckpt", {"epoch": 2, "w": w})
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # raised once


def test_periodic_checkpoints_match_the_synchronous_ones(tmp_path):
    """The background writer leaves, epoch for epoch, the files a synchronous save leaves."""
    from trainwell.train.checkpoint import load_checkpoint

    train, val = iris()
    seen = {}

    class Grab(Callback):
        def after_epoch(self, trainer):
            if trainer.epoch == 4:  # the checkpoint of epoch 3 is on disk by now
                seen["async"] = load_checkpoint(tmp_path / "a")
                trainer.save_checkpoint(tmp_path / "b")  # synchronous, of epoch 4

    torch.manual_seed(0)
    Trainer(
        mlp(),
        epochs=6,
        seed=0,
        checkpoint_dir=tmp_path / "a",
        checkpoint_every=3,
        callbacks=[Grab()],
    ).fit(train, val)
    torch.manual_seed(0)
    ref = Trainer(mlp(), epochs=3, seed=0)
    ref.fit(train, val)
    ref.save_checkpoint(tmp_path / "c")
    got, want = seen["async"], load_checkpoint(tmp_path / "c")
    assert got["epoch"] == want["epoch"] == 3
    for key in ("model", "best"):
        assert all(torch.equal(got[key][k], want[key][k]) for k in want[key])
    for i, slots in want["optimizer"]["state"].items():
        assert all(torch.equal(got["optimizer"]["state"][i][k], v) for k, v in slots.items())
    assert [r["train_loss"] for r in got["history"]] == [r["train_loss"] for r in want["history"]]


def test_unlogged_metric_is_refused_before_training_and_no_val_falls_back():
    from trainwell.errors import ConfigError

    train, val = iris()
    t = Trainer(mlp(), epochs=3, seed=0, early_stopping=EarlyStoppingConfig(metric="val_r2"))
    with pytest.raises(
        ConfigError,
        match=r"train.early_stopping.metric 'val_r2' is not logged for this task; "
        r"logged: train_loss, lr, val_loss, val_accuracy, val_f1_macro",
    ):
        t.fit(train, val)
    assert t.epoch == 0
    t = Trainer(
        mlp(),
        epochs=3,
        seed=0,
        schedule="plateau",
        early_stopping=EarlyStoppingConfig(metric="val_accuracy", patience=1),
    ).fit(train)
    assert (
        t.early_stopping.metric == "train_loss"
        and t.early_stopping.mode == "min"
        and t.best_epoch == 3
    )


def test_progress_bar_and_epoch_lines():
    import io

    from trainwell.train.progress import EpochLines, ProgressBar

    train, val = iris()
    bar_out, lines_out = io.StringIO(), io.StringIO()
    Trainer(
        mlp(),
        epochs=2,
        batch_size=10,
        seed=0,
        callbacks=[ProgressBar(bar_out), EpochLines(lines_out)],
    ).fit(train, val)
    lines = lines_out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2: train loss ")
    assert ", val loss " in lines[1] and ", val acc " in lines[1]
    assert "epoch 1/2" in bar_out.getvalue() and "epoch 2: train loss" in bar_out.getvalue()
