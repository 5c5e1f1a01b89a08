"""Several heads: the weighted sum against a hand computation, per-row masks, per-head logs,
exact resume, and the errors a heads spec can make."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell.data.builtin import multitask_table
from trainwell.errors import ConfigError, DataError
from trainwell.nn.heads import MultiHead
from trainwell.train import Trainer
from trainwell.train.config import EarlyStoppingConfig
from trainwell.train.multitask import Head, Multitask, missing_rows

HEADS = {"label": {"task": "multiclass"}, "value": {"task": "regression"}}


def table(n=600, labelled_label=1.0, seed=0):
    """The multitask built-in: 10 features, Y = [label (3 classes, -1 missing), value]."""
    X, Y = multitask_table(n, labelled_label=labelled_label, random_state=seed)
    X, Y = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    return (X[: n * 2 // 3], Y[: n * 2 // 3]), (X[n * 2 // 3 :], Y[n * 2 // 3 :])


def net(seed=0, width=32):
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(10, width), nn.ReLU())
    return MultiHead(trunk, {"label": nn.Linear(width, 3), "value": nn.Linear(width, 1)})


def set_up(obj, model, batch):
    obj.setup(model, batch)
    return obj


def test_the_loss_is_the_weighted_sum_of_the_heads_losses_by_hand():
    (X, Y), _ = table()
    x, y = X[:16], Y[:16]
    model = net()
    obj = set_up(Multitask(HEADS, loss_weights={"label": 0.7, "value": 0.2}), model, (x, y))
    res = obj.loss(model, (x, y))
    out = model(x)
    by_hand = 0.7 * F.cross_entropy(out["label"], y[:, 0].long()) + 0.2 * F.mse_loss(
        out["value"].reshape(-1), y[:, 1]
    )
    assert res.loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert [h.weight for h in obj.heads] == [0.7, 0.2]
    assert obj.heads[0].loss_name == "cross_entropy" and obj.heads[1].loss_name == "l2"


def test_a_missing_label_is_masked_per_row():
    (X, Y), _ = table()
    x, y = X[:8], Y[:8].clone()
    y[[1, 4], 0] = -1  # no label in rows 1 and 4
    y[[0, 4, 6], 1] = math.nan  # no value in rows 0, 4 and 6
    model = net()
    obj = set_up(Multitask(HEADS), model, (x, y))
    res = obj.loss(model, (x, y))
    out = model(x)
    keep_l = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    keep_v = torch.tensor([0, 1, 1, 1, 0, 1, 0, 1], dtype=torch.bool)
    by_hand = F.cross_entropy(out["label"][keep_l], y[keep_l, 0].long()) + F.mse_loss(
        out["value"][keep_v].reshape(-1), y[keep_v, 1]
    )
    assert res.loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert missing_rows(y[:, 0], "multiclass").tolist() == (~keep_l).tolist()
    assert missing_rows(y[:, 1], "regression").tolist() == (~keep_v).tolist()


def test_a_head_with_no_labels_in_a_batch_contributes_zero_no_nan_and_no_gradient():
    (X, Y), _ = table()
    x, y = X[:8], Y[:8].clone()
    y[:, 1] = math.nan  # no value at all in this batch
    model = net()
    obj = set_up(Multitask(HEADS, loss_weights={"label": 1.0, "value": 5.0}), model, (X[:8], Y[:8]))
    res = obj.loss(model, (x, y))
    assert torch.isfinite(res.loss)
    assert res.loss.item() == pytest.approx(
        F.cross_entropy(model(x)["label"], y[:, 0].long()).item(), rel=1e-6
    )
    res.loss.backward()
    for p in model.heads["value"].parameters():
        assert p.grad is None or not p.grad.any()
    assert all(p.grad is not None and p.grad.any() for p in model.heads["label"].parameters())

    y[:, 0] = -1  # no label for any head: the loss is an exact zero with no gradient
    model.zero_grad(set_to_none=True)
    res = obj.loss(model, (x, y))
    assert res.loss.item() == 0.0
    res.loss.backward()
    assert all(p.grad is None for p in model.parameters())


def test_trains_on_the_builtin_table_and_logs_each_head():
    train, val = table(900)
    t = Trainer(
        net(),
        step=Multitask(HEADS, loss_weights={"label": 1.0, "value": 0.5}),
        epochs=15,
        batch_size=32,
        optimizer={"name": "adam", "lr": 3e-3},
        seed=0,
    ).fit(train, val)
    first, last = t.history[0], t.history[-1]
    for name in ("train_label_loss", "train_value_loss", "val_label_loss", "val_value_loss"):
        assert math.isfinite(last[name]) and last[name] < first[name]
    assert last["val_loss"] == pytest.approx(
        last["val_label_loss"] + 0.5 * last["val_value_loss"], rel=1e-9
    )
    assert {"val_label_accuracy", "val_label_f1_macro", "val_value_r2", "val_value_rmse"} <= set(
        last
    )
    assert last["val_label_accuracy"] > 0.6 and last["val_value_r2"] > 0.5
    # the epoch's head loss is the mean over the epoch's steps (all rows labelled: equal weights)
    assert last["train_loss"] == pytest.approx(
        last["train_label_loss"] + 0.5 * last["train_value_loss"], rel=1e-5
    )


def test_per_head_metrics_as_keras_names_them_and_early_stopping_on_one():
    train, val = table()
    obj = Multitask(HEADS, metrics={"label": ["accuracy"], "value": ["r2"]})
    es = EarlyStoppingConfig(metric="val_label_accuracy", patience=50)
    t = Trainer(net(), step=obj, epochs=2, batch_size=64, seed=0, early_stopping=es)
    t.fit(train, val)
    assert obj.metric_names() == [
        "val_loss",
        "val_label_loss",
        "val_label_accuracy",
        "val_value_loss",
        "val_value_r2",
    ]
    assert set(obj.metric_names()) <= set(t.history[-1])
    assert "val_label_f1_macro" not in t.history[-1]
    bad = EarlyStoppingConfig(metric="val_value_accuracy", patience=5)
    with pytest.raises(ConfigError, match="'val_value_accuracy' is not logged"):
        Trainer(net(), step=Multitask(HEADS), epochs=1, seed=0, early_stopping=bad).fit(train, val)


def test_scarce_labels_train_and_an_empty_validation_head_is_nan():
    train, val = table(labelled_label=0.1)
    val_y = val[1].clone()
    val_y[:, 0] = -1
    t = Trainer(net(), step=Multitask(HEADS), epochs=3, batch_size=32, seed=0)
    t.fit(train, (val[0], val_y))
    last = t.history[-1]
    assert all(math.isfinite(r["train_label_loss"]) for r in t.history)  # some label per epoch
    assert math.isnan(last["val_label_loss"]) and math.isnan(last["val_label_accuracy"])
    assert last["val_loss"] == pytest.approx(last["val_value_loss"])


def test_multitask_resumes_exactly(tmp_path):
    train, val = table(labelled_label=0.5)

    def run(epochs, resume=None, ckpt=None):
        torch.manual_seed(0)
        model = MultiHead(
            nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.2)),
            {"label": nn.Linear(16, 3), "value": nn.Linear(16, 1)},
        )
        t = Trainer(
            model,
            step=Multitask(HEADS, loss_weights={"label": 1.0, "value": 0.3}),
            epochs=epochs,
            batch_size=32,
            seed=0,
            checkpoint_dir=ckpt,
            checkpoint_every=1,
        )
        return t.fit(train, val, resume=resume)

    full = run(4)
    run(2, ckpt=tmp_path)
    resumed = run(4, resume=tmp_path, ckpt=tmp_path)
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


class DictRows(Dataset):
    def __init__(self, X, Y):
        self.X, self.Y = X, Y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], {"kind": self.Y[i, 0].long(), "amount": self.Y[i, 1]}


def test_dict_targets_name_their_key_and_a_tuple_output_maps_in_head_order():
    (X, Y), _ = table()

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.a, self.b = nn.Linear(10, 8), nn.Linear(8, 3), nn.Linear(8, 1)

        def forward(self, x):
            f = torch.relu(self.trunk(x))
            return self.a(f), self.b(f)

    torch.manual_seed(0)
    heads = [Head("label", target="kind"), Head("value", target="amount")]
    obj = Multitask(heads)
    loader = DataLoader(
        DictRows(X, Y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    t = Trainer(Pair(), step=obj, epochs=2, seed=0).fit(loader, DataLoader(DictRows(X, Y), 64))
    assert obj.heads[0].task == "multiclass"  # int64 targets, 3 outputs
    assert obj.heads[1].task == "regression"
    assert "val_label_accuracy" in t.history[-1] and "val_value_r2" in t.history[-1]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_weights": {"label": -0.5}}, r"heads.label.weight must be a finite number >= 0"),
        ({"loss_weights": {"label": 0.0, "value": 0}}, r"every weight is 0 \(label=0, value=0\)"),
        ({"loss_weights": {"lable": 1.0}}, r"loss_weights names unknown head\(s\) 'lable'"),
        ({"metrics": {"valu": ["r2"]}}, r"metrics names unknown head\(s\) 'valu'; heads: label"),
    ],
)
def test_bad_weights_and_unknown_heads_are_refused_naming_the_head(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Multitask(HEADS, **kwargs)


def test_a_zero_weight_is_allowed_when_another_is_positive():
    obj = Multitask(HEADS, loss_weights={"value": 0.0})
    assert [h.weight for h in obj.heads] == [1.0, 0.0]


@pytest.mark.parametrize(
    ("heads", "error", "message"),
    [
        ({"label": {"task": "classification"}}, ConfigError, r"heads.label.task must be one of"),
        ({"label": {"weigth": 1.0}}, ConfigError, r"heads.label: unknown field\(s\) weigth"),
        (
            {"label": {"task": "multiclass", "target": 5}},
            DataError,
            r"heads.label.target names column 5 but the targets have 2 column\(s\)",
        ),
        (
            {"label": {"task": "multiclass"}, "value": {"task": "regression"}, "third": {}},
            ConfigError,
            r"the model's output has no head 'third'",
        ),
        (
            {"label": {"task": "multiclass", "metrics": ["r2"]}, "value": {}},
            ConfigError,
            r"heads.label.metrics: 'r2' is not a metric of a multiclass head; allowed: accuracy",
        ),
        (
            {"label": {"task": "multiclass", "loss": "bce"}, "value": {}},
            ConfigError,
            r"heads.label.loss 'bce' does not fit a multiclass task",
        ),
    ],
)
def test_a_bad_heads_spec_is_refused_at_setup(heads, error, message):
    (X, Y), _ = table()
    with pytest.raises(error, match=message):
        Multitask(heads).setup(net(), (X[:8], Y[:8]))


def test_two_heads_on_one_column_with_conflicting_tasks_are_refused():
    (X, Y), _ = table()
    heads = {
        "label": {"task": "multiclass", "target": 0},
        "value": {"task": "regression", "target": 0},
    }
    with pytest.raises(
        ConfigError,
        match=r"heads.label and heads.value both read target 0 with "
        r"conflicting tasks \(multiclass and regression\)",
    ):
        Multitask(heads).setup(net(), (X[:8], Y[:8]))
    same = {
        "label": {"task": "multiclass", "target": 0},
        "value": {"task": "multiclass", "target": 0, "loss": "hinge"},
    }
    model = MultiHead(nn.Linear(10, 4), {"label": nn.Linear(4, 3), "value": nn.Linear(4, 3)})
    Multitask(same).setup(model, (X[:8], Y[:8]))  # one column, one task, two losses: fine


def test_a_missing_dict_key_names_the_head_and_the_keys():
    (X, Y), _ = table()
    batch = (X[:4], {"label": Y[:4, 0].long(), "amount": Y[:4, 1]})
    with pytest.raises(
        DataError,
        match=r"heads.value.target 'value' is not in the batch's "
        r"targets; they hold 'label', 'amount'",
    ):
        Multitask(HEADS).setup(net(), batch)
