"""The pluggable step: the default objective, a user's own step, soft targets, and the task of a
module taken from its data and loss, never from the order of its layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_iris
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell.errors import ConfigError, DataError
from trainwell.train import Trainer
from trainwell.train.objective import Objective, StepResult, Supervised, UserStep, as_step_result


def iris(binary: bool = False):
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = torch.tensor(X[perm], dtype=torch.float32), torch.tensor(y[perm])
    if binary:
        y = (y == 2).long()
    return (X[:100], y[:100]), (X[100:], y[100:])


class HeadFirst(nn.Module):
    """Declares its output layer before its hidden layer: declaration order says nothing."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.head = nn.Linear(32, n_out)
        self.trunk = nn.Linear(4, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.trunk(x)))


def test_task_and_width_come_from_the_output_not_the_layer_order():
    torch.manual_seed(0)
    train, val = iris()
    t = Trainer(
        HeadFirst(3), epochs=30, batch_size=16, optimizer={"name": "adam", "lr": 0.01}, seed=0
    ).fit(train, val)
    assert t.task == "multiclass" and t.objective.n_outputs == 3
    assert t.objective.loss_name == "cross_entropy"
    assert t.history[-1]["val_accuracy"] > 0.9


def test_a_one_logit_head_declared_first_trains_as_binary():
    torch.manual_seed(0)
    train, val = iris(binary=True)
    t = Trainer(
        HeadFirst(1), epochs=30, batch_size=16, optimizer={"name": "adam", "lr": 0.01}, seed=0
    ).fit(train, val)
    assert t.task == "binary" and t.objective.loss_name == "bce"
    assert t.history[-1]["val_accuracy"] > 0.9


def test_float_column_of_binary_labels_is_binary_with_bce_not_regression():
    torch.manual_seed(0)
    (X, y), (Xv, yv) = iris(binary=True)
    y_col, yv_col = y.float().reshape(-1, 1), yv.float().reshape(-1, 1)  # (N, 1) 0.0 / 1.0
    t = Trainer(
        HeadFirst(1), epochs=30, batch_size=16, optimizer={"name": "adam", "lr": 0.01}, seed=0
    ).fit((X, y_col), (Xv, yv_col))
    assert t.task == "binary" and t.objective.loss_name == "bce"
    assert "val_accuracy" in t.history[-1] and t.history[-1]["val_accuracy"] > 0.9
    # and the loss is BCE itself, not MSE
    with torch.no_grad():
        out = t.model(Xv)
    expected = F.binary_cross_entropy_with_logits(out, yv_col)
    assert t.evaluate((Xv, yv_col))["val_loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_an_explicit_loss_decides_the_task():
    torch.manual_seed(0)
    (X, y), _ = iris(binary=True)
    t = Trainer(HeadFirst(1), loss="mse", epochs=1, seed=0).fit((X, y.float().reshape(-1, 1)))
    assert t.task == "regression"


def test_soft_targets_train_with_cross_entropy_on_probabilities():
    train, val = iris()
    (X, y), (Xv, yv) = train, val
    soft = F.one_hot(y, 3).float() * 0.9 + 0.1 / 3  # label smoothing 0.1
    torch.manual_seed(0)
    t = Trainer(
        nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3)),
        epochs=30,
        batch_size=16,
        optimizer={"name": "adam", "lr": 0.01},
        seed=0,
    ).fit((X, soft), (Xv, yv))
    assert t.task == "multiclass" and t.objective.loss_name == "cross_entropy"
    assert t.history[-1]["val_accuracy"] > 0.9
    out = t.model(X).detach()
    assert t.objective.loss_fn(out, soft).item() == pytest.approx(
        float(-(soft * out.log_softmax(1)).sum(1).mean()), rel=1e-5
    )
    # soft val targets: metrics on their argmax
    soft_val = F.one_hot(yv, 3).float()
    assert t.evaluate((Xv, soft_val))["val_accuracy"] == t.evaluate((Xv, yv))["val_accuracy"]


def test_one_hot_soft_targets_train_like_hard_labels():
    train, _ = iris()
    X, y = train
    runs = []
    for target in (y, F.one_hot(y, 3).float()):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        Trainer(model, epochs=3, batch_size=20, seed=0).fit((X, target))
        runs.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)


def test_soft_targets_with_hinge_are_refused():
    (X, y), _ = iris()
    with pytest.raises(ConfigError, match="soft targets"):
        Trainer(nn.Linear(4, 3), loss="hinge", epochs=1, seed=0).fit((X, F.one_hot(y, 3).float()))


class TwoInTwoOut(nn.Module):
    """Two inputs (petal, sepal measurements) and two outputs (species, petal width)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(2, 16), nn.Linear(2, 16)
        self.cls, self.reg = nn.Linear(32, 3), nn.Linear(32, 1)

    def forward(
        self, sepal: torch.Tensor, petal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(torch.cat([self.a(sepal), self.b(petal)], 1))
        return self.cls(h), self.reg(h)


class DictIris(Dataset):
    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "sepal": self.X[i, :2],
            "petal": self.X[i, 2:3].repeat(2),
            "label": self.y[i],
            "width": self.X[i, 3:4],
        }


def two_head_step(model: nn.Module, batch: dict[str, torch.Tensor]):
    logits, width = model(batch["sepal"], batch["petal"])
    loss = F.cross_entropy(logits, batch["label"]) + F.mse_loss(width, batch["width"])
    return {"loss": loss, "outputs": logits, "targets": batch["label"]}


def test_a_users_step_on_dict_batches_with_two_inputs_and_two_outputs():
    train, val = iris()
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(DictIris(*train), batch_size=16, shuffle=True, generator=g)
    val_loader = DataLoader(DictIris(*val), batch_size=64)
    torch.manual_seed(0)
    t = Trainer(
        TwoInTwoOut(),
        step=two_head_step,
        task="multiclass",
        epochs=40,
        optimizer={"name": "adam", "lr": 0.01},
        seed=0,
    ).fit(loader, val_loader)
    first, last = t.history[0], t.history[-1]
    assert last["train_loss"] < first["train_loss"] / 2
    assert set(last) >= {"val_loss", "val_accuracy", "val_f1_macro"}
    assert last["val_accuracy"] > 0.85
    # val_loss is the step's own loss averaged over samples
    model = t.model.eval()
    with torch.no_grad():
        total = sum(float(two_head_step(model, b)["loss"]) * len(b["label"]) for b in val_loader)
    assert last["val_loss"] == pytest.approx(total / len(val[0]), rel=1e-5)


def test_a_users_step_resumes_exactly(tmp_path):
    train, _ = iris()

    def run(epochs, resume=None, ckpt=None):
        torch.manual_seed(0)
        loader = DataLoader(
            DictIris(*train),
            batch_size=16,
            shuffle=True,
            generator=torch.Generator().manual_seed(1),
        )
        t = Trainer(
            TwoInTwoOut(),
            step=two_head_step,
            epochs=epochs,
            seed=0,
            checkpoint_dir=ckpt,
            checkpoint_every=1,
        )
        return t.fit(loader, resume=resume)

    full = run(4)
    run(2, ckpt=tmp_path)
    resumed = run(4, resume=tmp_path, ckpt=tmp_path)
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


class LightningStyle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.seen: list[tuple[str, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        self.seen.append(("train" if self.training else "eval", batch_idx))
        x, y = batch
        return F.cross_entropy(self(x), y)


def test_a_models_own_training_step_is_used():
    train, val = iris()
    torch.manual_seed(0)
    model = LightningStyle()
    t = Trainer(model, epochs=2, batch_size=50, seed=0).fit(train, val)
    assert isinstance(t.objective, UserStep)
    # batch indices, as Lightning passes them; evaluation counts its own batches
    assert model.seen[:4] == [("train", 0), ("train", 1), ("eval", 0), ("train", 0)]
    assert "val_loss" in t.history[-1]


def test_a_custom_objective_subclass():
    class Weighted(Objective):
        task = "multiclass"

        def loss(self, model, batch):
            x, y = batch
            out = model(x)
            return StepResult(2.0 * F.cross_entropy(out, y), out, y)

    train, val = iris()
    torch.manual_seed(0)
    t = Trainer(nn.Linear(4, 3), step=Weighted(), epochs=2, seed=0).fit(train, val)
    out = t.model(val[0]).detach()
    assert t.history[-1]["val_loss"] == pytest.approx(
        2 * float(F.cross_entropy(out, val[1])), rel=1e-5
    )
    assert "val_accuracy" in t.history[-1]


def test_the_default_step_refuses_dict_batches_with_a_clear_message():
    train, _ = iris()
    loader = DataLoader(DictIris(*train), batch_size=16)
    with pytest.raises(DataError, match=r"\(x, y\) batches; got a dict with keys .*step="):
        Trainer(TwoInTwoOut(), epochs=1, seed=0).fit(loader)


@pytest.mark.parametrize(
    ("value", "message"),
    [(torch.ones(3), "scalar"), ({"outputs": 1}, "without 'loss'"), ("x", "must return")],
)
def test_a_step_returning_the_wrong_thing_is_named(value, message):
    with pytest.raises(ConfigError, match=message):
        as_step_result(value)


def test_supervised_setup_does_not_draw_from_the_global_rng():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    batch = (torch.randn(4, 4), torch.tensor([0, 1, 2, 0]))
    before = torch.get_rng_state()
    Supervised().setup(model, batch)
    assert torch.equal(before, torch.get_rng_state())
    assert model.training


class CountingObjective(Supervised):
    """Keeps a generator and a running count: its state must survive a checkpoint."""

    def __init__(self) -> None:
        super().__init__("cross_entropy")
        self.gen = torch.Generator().manual_seed(5)
        self.noise: list[float] = []
        self.steps_seen = 0

    def loss(self, model, batch):
        assert self.trainer.step == self.steps_seen  # bound to the trainer running it
        self.steps_seen += 1
        x, y = batch
        x = x + 0.1 * torch.randn(x.shape, generator=self.gen)  # its own randomness
        out = model(x)
        return StepResult(self.loss_fn(out, y), out, y)

    def epoch_end(self):
        return {"train_steps_seen": float(self.steps_seen)}

    def train_metric_names(self):
        return ["train_steps_seen"]

    def state_dict(self):
        return {"gen": self.gen.get_state(), "steps_seen": self.steps_seen}

    def load_state_dict(self, state):
        self.gen.set_state(state["gen"])
        self.steps_seen = int(state["steps_seen"])


def test_an_objectives_state_and_epoch_terms_are_checkpointed(tmp_path):
    train, val = iris()

    def run(epochs, resume=None, ckpt=None):
        torch.manual_seed(0)
        t = Trainer(
            nn.Linear(4, 3),
            step=CountingObjective(),
            epochs=epochs,
            batch_size=16,
            seed=0,
            checkpoint_dir=ckpt,
            checkpoint_every=1,
        )
        return t.fit(train, val, resume=resume)

    full = run(4)
    assert [r["train_steps_seen"] for r in full.history] == [7.0, 14.0, 21.0, 28.0]
    run(2, ckpt=tmp_path)
    resumed = run(4, resume=tmp_path, ckpt=tmp_path)
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)


def test_early_stopping_may_watch_an_objectives_own_term():
    from trainwell.train.config import EarlyStoppingConfig

    train, _ = iris()
    es = EarlyStoppingConfig(metric="train_steps_seen", mode="min", patience=1)
    t = Trainer(
        nn.Linear(4, 3),
        step=CountingObjective(),
        epochs=5,
        batch_size=16,
        seed=0,
        early_stopping=es,
    ).fit(train)
    assert t.stopped_early and t.epoch == 2  # the count only grows: no improvement after epoch 1


def test_integer_labels_beyond_0_1_with_one_output_are_refused_not_trained_as_binary():
    X = torch.randn(40, 4)
    y = torch.arange(40) % 10  # ten classes
    with pytest.raises(DataError, match="integer labels with 10 distinct values.*1 output"):
        Trainer(nn.Linear(4, 1), epochs=1, seed=0).fit((X, y))


def test_binary_soft_targets_are_scored_against_their_rounding():
    from trainwell.train.objective import hard_targets

    soft = torch.tensor([0.95, 0.05, 0.6, 0.4])
    assert hard_targets(soft, "binary").tolist() == [1, 0, 1, 0]
    assert hard_targets(soft.reshape(-1, 1), "binary").tolist() == [1, 0, 1, 0]


def test_an_objective_subclass_may_return_a_bare_loss():
    class BareLoss(Objective):
        def loss(self, model, batch):
            x, y = batch
            return F.cross_entropy(model(x), y)

    train, val = iris()
    t = Trainer(nn.Linear(4, 3), step=BareLoss(), epochs=3, seed=0).fit(train, val)
    assert t.history[-1]["train_loss"] < t.history[0]["train_loss"] and "val_loss" in t.history[-1]


class DictIrisWithXY(DictIris):
    """A Dataset that also has X and y attributes: it is still read item by item."""


def test_a_dataset_with_x_and_y_attributes_is_read_item_by_item():
    train, _ = iris()
    torch.manual_seed(0)
    t = Trainer(TwoInTwoOut(), step=two_head_step, epochs=2, batch_size=16, seed=0)
    t.fit(DictIrisWithXY(*train))
    assert t.steps_per_epoch == 7 and isinstance(t.batch, dict)
