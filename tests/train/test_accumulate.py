"""Gradient accumulation (``train.accumulate``): k micro-batches per optimizer step equal one
batch of k times the size; schedules, steps, checkpoints and resume count optimizer steps."""

from __future__ import annotations

import contextlib
import json
import logging
import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.errors import ConfigError
from trainwell.train import Callback, Trainer
from trainwell.train.accumulation import Accumulation
from trainwell.train.data import TensorBatches


def digits(n=500):
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X[:n] / 16.0, dtype=torch.float32), torch.tensor(y[:n])


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.0), nn.Linear(32, 10))


def train(data, k, bs, *, optimizer=None, epochs=2, schedule=None, **kw):
    t = Trainer(
        net(),
        loss="cross_entropy",
        optimizer=optimizer or {"name": "adam", "lr": 3e-3},
        schedule=schedule,
        epochs=epochs,
        batch_size=bs,
        seed=7,
        accumulate=k,
        threads=None,
        **kw,
    )
    return t.fit(data)


def max_diff(a, b):
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((p - q).detach().abs().max()) for p, q in pairs)


def test_the_trainer_draws_one_permutation_and_slices_it_so_micro_batches_tile_big_batches():
    # the oracle below is only fair if 4 micro-batches of b are the rows of one batch of 4b
    X, y = digits(100)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    small = list(TensorBatches(X, y, 8, True, gen(), torch.device("cpu")))
    big = list(TensorBatches(X, y, 32, True, gen(), torch.device("cpu")))
    for j, (xb, _) in enumerate(big):
        assert torch.equal(torch.cat([s[0] for s in small[4 * j : 4 * j + 4]]), xb)


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    [({"name": "adam", "lr": 3e-3}, "cosine"), ({"name": "momentum", "lr": 0.05}, None)],
)
def test_k_micro_batches_equal_one_batch_of_k_times_the_size(optimizer, schedule):
    data = digits()  # 500 rows: a last big batch of 52 = micro-batches 16, 16, 16, 4
    acc = train(data, 4, 16, optimizer=optimizer, schedule=schedule)
    big = train(data, 1, 64, optimizer=optimizer, schedule=schedule)
    assert acc.step == big.step == 2 * math.ceil(500 / 64)
    assert acc.steps_per_epoch == 8 and acc.batches_per_epoch == 32
    assert acc.schedule.step_count == big.schedule.step_count
    assert acc.lr == pytest.approx(big.lr)
    assert max_diff(acc.model, big.model) < 1e-6
    # the record's train loss is the mean over the epoch's samples either way
    assert acc.history[-1]["train_loss"] == pytest.approx(big.history[-1]["train_loss"], rel=1e-6)
    # and the weights moved: the comparison is not between two untrained models
    assert max_diff(acc.model, net()) > 1e-2


def test_an_uneven_last_group_steps_with_what_it_accumulated():
    data = digits()  # 32 micro-batches of 16 (the last of 4 rows) in groups of 3: 10 of 3, 1 of 2
    acc = train(data, 3, 16)
    big = train(data, 1, 48)  # 10 batches of 48, then one of 20 = 16 + 4
    assert acc.steps_per_epoch == big.steps_per_epoch == 11
    assert max_diff(acc.model, big.model) < 1e-6


def test_a_data_loaders_smaller_last_batch_is_weighted_by_its_samples():
    X, y = digits()
    # unshuffled loader of 16-row batches (the last of 4 rows): the group's size is assumed
    # from its first batch, then corrected; the oracle is 48-row in-memory batches, in order
    loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=False)
    acc = train(loader, 3, 16)
    big = train((X, y), 1, 48, shuffle=False)
    assert max_diff(acc.model, big.model) < 1e-6


def test_accumulation_unit_weights_sum_to_one_per_group():
    X, y = digits(100)
    acc = Accumulation(3, TensorBatches(X, y, 16, False, None, torch.device("cpu")))
    sizes = [16] * 6 + [4]  # 7 micro-batches: groups (0-2), (3-5), (6)
    weights = [acc.weight(i, n) for i, n in enumerate(sizes)]
    assert [acc.ends_group(i) for i in range(7)] == [False, False, True] * 2 + [True]
    assert sum(weights[:3]) == pytest.approx(1) and sum(weights[3:6]) == pytest.approx(1)
    assert weights[6] == 1.0 and acc.steps_per_epoch == 3


def test_events_count_optimizer_steps_and_grad_sync_marks_the_last_micro_batch():
    seen: list[tuple[str, int]] = []

    class Watch(Callback):
        def after_backward(self, trainer):
            seen.append(("backward", trainer.step))

        def after_step(self, trainer):
            seen.append(("step", trainer.step))

    class Recording(Trainer):
        marks: list[bool] = []

        def _grad_sync(self, last):
            self.marks.append(last)
            return super()._grad_sync(last)

    X, y = digits(40)  # 5 micro-batches of 8 in groups of 2: steps after micro 2, 4 and 5
    t = Recording(net(), epochs=1, batch_size=8, seed=0, accumulate=2, callbacks=[Watch()])
    t.fit((X, y))
    assert Recording.marks == [False, True, False, True, True]
    assert [s for s in seen if s[0] == "step"] == [("step", 1), ("step", 2), ("step", 3)]
    assert len([s for s in seen if s[0] == "backward"]) == 5
    assert t.history[0]["step"] == 3


def test_the_forward_pass_runs_inside_the_gradient_sync_context():
    """DistributedDataParallel decides in its forward pass whether the backward all-reduces, so
    its no_sync must cover the forward (torch's docs), not the backward alone."""
    now: list[bool | None] = [None]
    forwards: list[bool | None] = []

    class Recording(Trainer):
        @contextlib.contextmanager
        def _grad_sync(self, last):
            now[0] = last
            try:
                yield
            finally:
                now[0] = None

    model = net()
    model.register_forward_pre_hook(
        lambda m, args: forwards.append(now[0]) if m.training else None)
    Recording(model, epochs=1, batch_size=8, seed=0, accumulate=2).fit(digits(40))
    assert forwards == [False, True, False, True, True]


class KillAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, trainer):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_with_accumulation_is_exact(tmp_path):
    data = digits(300)
    kw = {"optimizer": {"name": "adam", "lr": 3e-3}, "schedule": "cosine", "epochs": 4}
    full = train(data, 3, 16, **kw)
    with pytest.raises(KeyboardInterrupt):
        train(data, 3, 16, checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[KillAt(3)],
              **kw)
    resumed = Trainer(
        net(seed=5), loss="cross_entropy", optimizer=kw["optimizer"], schedule="cosine",
        epochs=4, batch_size=16, seed=7, accumulate=3, threads=None,
    ).fit(data, resume=tmp_path)
    assert resumed.step == full.step == 4 * math.ceil(math.ceil(300 / 16) / 3)
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_a_bad_accumulate_is_refused_in_python(bad):
    with pytest.raises(ConfigError, match=r"train\.accumulate must be an integer >= 1"):
        Trainer(net(), accumulate=bad)


def test_accumulate_from_the_command_line_and_zero_refused_before_any_directory(runs_dir):
    from trainwell.cli import main

    cfg = runs_dir.parent / "acc.toml"
    cfg.write_text(
        'seed = 0\n[data]\nsource = "builtin:digits"\n'
        'split = { val = 0.2, test = 0.0, stratify = true }\npreprocess = ["standardize"]\n'
        '[model]\narch = "mlp"\nhidden = [16]\n'
        '[train]\nepochs = 2\nbatch_size = 16\ncheckpoint_every = 0\n'
        '[log]\nreport = false\n'
    )
    assert main(["train", str(cfg), "--quiet", "--name", "bad", "--set",
                 "train.accumulate=0"]) == 2
    assert not (runs_dir / "bad").exists()
    assert main(["train", str(cfg), "--quiet", "--name", "acc", "--set",
                 "train.accumulate=4"]) == 0
    lines = (runs_dir / "acc" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    per_epoch = math.ceil(math.ceil(1437 / 16) / 4)  # the 80% train split of 1797 rows
    assert steps == [per_epoch, 2 * per_epoch]


def test_accumulating_more_batches_than_an_epoch_has_says_so_once(caplog):
    """500 rows in batches of 128 are 4 batches: accumulate = 8 steps once per epoch on all
    500 rows, not on 8 x 128; the warning names both numbers. accumulate = 4 fits: silent."""
    data = digits()
    with caplog.at_level(logging.WARNING, logger="trainwell.train.trainer"):
        t = train(data, 8, 128, epochs=2)
    warnings = [r.getMessage() for r in caplog.records if "train.accumulate" in r.getMessage()]
    assert warnings == [
        "train.accumulate is 8 but an epoch has 4 batch(es) of at most 128: each optimizer step "
        "sums the whole epoch, fewer samples than 8 x 128; lower train.accumulate or "
        "train.batch_size to get the step size you asked for"
    ]
    assert t.step == 2  # one optimizer step per epoch
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainwell.train.trainer"):
        train(data, 4, 128, epochs=1)
    assert not [r for r in caplog.records if "train.accumulate" in r.getMessage()]
