"""Loop features checked one by one: schedules in epochs vs steps, the penalty's parameters,
Huber, top-k, checkpoint cadence, resume mid-patience and of a streamed Dataset, precision on a
CPU, and the choice between a progress bar and plain lines."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.metrics import top_k_accuracy_score
from torch import nn
from torch.utils.data import TensorDataset

from trainwell.train import Callback, Trainer
from trainwell.train.config import EarlyStoppingConfig, LossConfig, PenaltyConfig, ScheduleConfig
from trainwell.train.losses import huber_loss, make_loss
from trainwell.train.metrics import task_metrics
from trainwell.train.penalties import make_penalty
from trainwell.train.schedules import LRSchedule

LR0, SPE, EPOCHS = 0.5, 10, 20


def lrs_of(cfg: dict, steps: int = EPOCHS * SPE) -> list[float]:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    sched = LRSchedule(opt, ScheduleConfig(**cfg), SPE, EPOCHS)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


# the same schedule written in epochs and in steps (times x SPE, rates / SPE)
SAME_IN_BOTH_UNITS = [
    ({"name": "time", "k": 0.3}, {"name": "time", "k": 0.03}),
    ({"name": "exponential", "k": 0.2}, {"name": "exponential", "k": 0.02}),
    (
        {"name": "step", "milestones": [3, 7.5], "gamma": 0.5},
        {"name": "step", "milestones": [30, 75], "gamma": 0.5},
    ),
    ({"name": "cosine", "total": 12}, {"name": "cosine", "total": 120}),
    ({"name": "linear"}, {"name": "linear"}),
    ({"name": "cosine", "warmup": 2}, {"name": "cosine", "warmup": 20}),
    (
        {"name": "exponential", "k": 0.2, "warmup": 1.5},
        {"name": "exponential", "k": 0.02, "warmup": 15},
    ),
    ({"name": "constant", "warmup": 3}, {"name": "constant", "warmup": 30}),
]


@pytest.mark.parametrize(("in_epochs", "in_steps"), SAME_IN_BOTH_UNITS)
def test_each_schedule_reads_the_same_in_epochs_and_in_steps(in_epochs, in_steps):
    a = lrs_of({**in_epochs, "unit": "epoch"})
    b = lrs_of({**in_steps, "unit": "step"})
    assert a == pytest.approx(b, rel=1e-12)
    assert len(set(a)) > 1  # the schedule really moves


def test_schedules_in_steps_follow_the_lectures_formulas():
    lin = lrs_of({"name": "linear", "unit": "step", "total": 100})
    assert [lin[s] for s in (0, 25, 99, 150)] == pytest.approx([LR0, LR0 * 0.75, LR0 * 0.01, 0.0])
    inv = lrs_of({"name": "inverse_sqrt", "unit": "step"})
    assert [inv[s] for s in (0, 1, 4, 100)] == pytest.approx(
        [LR0, LR0, LR0 / 2, LR0 / 10]
    )  # lecture 002
    exp_ = lrs_of({"name": "exponential", "unit": "step", "k": 0.01, "warmup": 4})
    assert exp_[:4] == pytest.approx([LR0 * (i + 1) / 4 for i in range(4)])
    assert exp_[4 + 50] == pytest.approx(LR0 * math.exp(-0.5))  # lecture 000


def test_warmup_in_front_of_plateau_then_torch_takes_over():
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR0)
    s = LRSchedule(
        opt, ScheduleConfig(name="plateau", warmup=1, patience=0, factor=0.5), SPE, EPOCHS
    )
    seen = []
    for step in range(3 * SPE):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
        if (step + 1) % SPE == 0:
            s.epoch_end({"val_loss": 1.0})  # never improves after the first epoch past warmup
    assert seen[:SPE] == pytest.approx([LR0 * (i + 1) / SPE for i in range(SPE)])
    assert seen[SPE : 2 * SPE] == pytest.approx([LR0] * SPE)
    assert seen[2 * SPE :] == pytest.approx(
        [LR0 * 0.5] * SPE
    )  # patience 0: halved after a flat epoch


def test_penalty_is_on_weights_only_by_default_and_on_all_when_configured():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 3)
    )
    weights = [model[0].weight, model[4].weight]
    default = make_penalty(PenaltyConfig(name="l1", lam=0.5), model)
    assert default().item() == pytest.approx(
        0.5 * sum(w.abs().sum().item() for w in weights), rel=1e-6
    )
    every = make_penalty(PenaltyConfig(name="l2", lam=0.5, apply_to="all"), model)
    assert every().item() == pytest.approx(
        0.5 * sum(p.square().sum().item() for p in model.parameters()), rel=1e-6
    )
    # through the loop: zero inputs and targets equal to the bias make the data loss and its
    # gradient zero, so only the penalty moves anything; the bias moves only with apply_to="all"
    for apply_to, bias_after in (("weights", 2.0), ("all", 2.0 - 0.1 * 1.0)):
        lin = nn.Linear(2, 1)
        with torch.no_grad():
            lin.bias.fill_(2.0)
        w0 = lin.weight.detach().clone()
        X, y = torch.zeros(8, 2), torch.full((8, 1), 2.0)
        Trainer(
            lin,
            loss="l2",
            optimizer={"name": "sgd", "lr": 0.1},
            epochs=1,
            batch_size=8,
            seed=0,
            penalty=PenaltyConfig(name="l1", lam=1.0, apply_to=apply_to),
        ).fit((X, y))
        assert lin.bias.item() == pytest.approx(bias_after)
        torch.testing.assert_close(
            lin.weight.detach(), w0 - 0.1 * w0.sign()
        )  # lr * lambda * sign(W)


def test_huber_against_its_closed_form():
    out = torch.tensor([[0.0, 3.0], [1.5, -4.0]])
    y = torch.zeros(2, 2)
    d = 2.0

    def h(e):
        return 0.5 * e * e if abs(e) <= d else d * (abs(e) - 0.5 * d)

    per = [[h(e) for e in row] for row in out.tolist()]  # 0, 4, 1.125, 6
    assert huber_loss(out, y, "mean", d).item() == pytest.approx(np.mean(per))
    assert huber_loss(out, y, "sum", d).item() == pytest.approx(np.mean([sum(r) for r in per]))
    fn = make_loss(LossConfig(name="smooth_l1", delta=2.0), "regression")
    assert fn(out, y).item() == pytest.approx(np.mean(per))


def test_top_k_accuracy_matches_scikit_learn_and_is_left_out_when_k_covers_every_class():
    g = torch.Generator().manual_seed(2)
    out, y = torch.randn(300, 8, generator=g), torch.randint(0, 8, (300,), generator=g)
    for k in (2, 3, 5):
        m = task_metrics(out, y, "multiclass", top_k=k)
        assert m[f"top{k}_accuracy"] == pytest.approx(
            top_k_accuracy_score(y.numpy(), out.numpy(), k=k, labels=list(range(8)))
        )
    assert "top5_accuracy" not in task_metrics(out[:, :5], y % 5, "multiclass", top_k=5)
    assert "top5_accuracy" not in task_metrics(out[:, :1], y % 2, "binary", top_k=5)


def iris(n_train=100):
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = torch.tensor(X[perm], dtype=torch.float32), torch.tensor(y[perm])
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def mlp(seed=0, dropout=0.3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def strip(history):
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in history]


def test_checkpoint_every_n_epochs_and_at_the_end(tmp_path):
    seen = []

    class Peek(Callback):
        def after_epoch(self, trainer):
            last = tmp_path / "last.json"
            seen.append(json.loads(last.read_text())["state"]["epoch"] if last.exists() else None)

    train, val = iris()
    Trainer(
        mlp(), epochs=7, seed=0, checkpoint_dir=tmp_path, checkpoint_every=3, callbacks=[Peek()]
    ).fit(train, val)
    # the checkpoint of epoch e is written after its after_epoch event, so the callback sees the
    # previous one
    assert seen == [None, None, None, 3, 3, 3, 6]
    assert json.loads((tmp_path / "last.json").read_text())["state"]["epoch"] == 7


def test_resume_keeps_early_stopping_state_and_stops_at_the_same_epoch(tmp_path):
    train, val = iris()
    noisy = (
        val[0],
        torch.randint(0, 3, (len(val[1]),), generator=torch.Generator().manual_seed(1)),
    )
    kw = {
        "epochs": 100,
        "batch_size": 16,
        "seed": 0,
        "optimizer": {"name": "adam", "lr": 0.02},
        "early_stopping": EarlyStoppingConfig(patience=4),
    }
    full = Trainer(mlp(), **kw).fit(train, noisy)
    assert full.stopped_early and len(full.history) < 100
    cut = len(full.history) - 2  # a checkpoint taken while bad epochs are being counted

    class Kill(Callback):
        def after_epoch(self, trainer):
            if trainer.epoch == cut + 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(mlp(), checkpoint_dir=tmp_path, checkpoint_every=1, callbacks=[Kill()], **kw).fit(
            train, noisy
        )
    state = json.loads((tmp_path / "last.json").read_text())["state"]
    assert state["epoch"] == cut and state["early_stopping"]["bad_epochs"] >= 1
    resumed = Trainer(mlp(seed=5), **kw).fit(train, noisy, resume=tmp_path)
    assert resumed.stopped_early and resumed.best_epoch == full.best_epoch
    assert strip(resumed.history) == strip(full.history)
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)  # the best snapshot, restored from the checkpoint


def test_a_streamed_dataset_resumes_exactly(tmp_path):
    train, val = iris()
    data = TensorDataset(*train)  # not tensors: batches come from a shuffling DataLoader
    kw = {"epochs": 5, "batch_size": 16, "seed": 4, "optimizer": {"name": "adam", "lr": 0.01}}
    full = Trainer(mlp(), **kw).fit(data, val)

    class Kill(Callback):
        def after_epoch(self, trainer):
            if trainer.epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(mlp(), checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[Kill()], **kw).fit(
            data, val
        )
    resumed = Trainer(mlp(seed=9), **kw).fit(data, val, resume=tmp_path)
    assert strip(resumed.history) == strip(full.history)
    # and the order really is shuffled per epoch, not the same each time
    other = Trainer(mlp(), **{**kw, "seed": 5}).fit(data, val)
    assert strip(other.history) != strip(full.history)


def test_a_users_dataloader_with_its_own_generator_resumes_exactly(tmp_path):
    from torch.utils.data import DataLoader

    train, val = iris()

    def loader():  # built afresh by the resumed process, as a user's script would
        return DataLoader(
            TensorDataset(*train),
            batch_size=16,
            shuffle=True,
            generator=torch.Generator().manual_seed(11),
        )

    kw = {"epochs": 5, "seed": 4, "optimizer": {"name": "adam", "lr": 0.01}}
    full = Trainer(mlp(), **kw).fit(loader(), val)

    class Kill(Callback):
        def after_epoch(self, trainer):
            if trainer.epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(mlp(), checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[Kill()], **kw).fit(
            loader(), val
        )
    resumed = Trainer(mlp(seed=9), **kw).fit(loader(), val, resume=tmp_path)
    assert strip(resumed.history) == strip(full.history)
    # a loader without that generator does not match the checkpoint: a clear error
    from trainwell.errors import ConfigError

    plain = DataLoader(TensorDataset(*train), batch_size=16, shuffle=True)
    with pytest.raises(ConfigError, match="holds the state of 1 DataLoader generator"):
        Trainer(mlp(), **kw).fit(plain, val, resume=tmp_path)


def test_mixed_precision_on_a_cpu_without_bf16_warns_and_trains_in_fp32(caplog, monkeypatch):
    from trainwell.train import device

    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: False)
    train, val = iris()
    with caplog.at_level(logging.WARNING, logger="trainwell.train.device"):
        half = Trainer(mlp(), epochs=2, seed=0, device="cpu", precision="bf16").fit(train, val)
    assert "train.precision 'bf16': this CPU has no native bf16" in caplog.text
    assert "training in fp32" in caplog.text
    fp32 = Trainer(mlp(), epochs=2, seed=0, device="cpu").fit(train, val)
    assert strip(half.history) == strip(fp32.history)
    assert all(p.dtype == torch.float32 for p in half.model.parameters())


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(monkeypatch, capsys):
    import sys

    from trainwell.train.progress import EpochLines, ProgressBar, default_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert isinstance(default_progress(), ProgressBar)
    assert isinstance(default_progress(quiet=True), EpochLines)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(default_progress(), EpochLines)
    train, val = iris()
    Trainer(mlp(), epochs=2, seed=0, callbacks=[default_progress()]).fit(train, val)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["epoch 1", "epoch 2"]
