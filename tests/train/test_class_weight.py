"""``train.class_weight`` and ``train.label_smoothing``: the losses against hand computations,
"balanced" on an imbalanced real subset, and labels through the label mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

import trainwell as tw
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.train.losses import class_weights, make_loss
from trainwell.train.trainer import Trainer

OUT = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [1.0, 1.0, -2.0]])
Y = torch.tensor([0, 2, 1, 2])
W = [0.5, 2.0, 3.0]


def test_weighted_cross_entropy_is_the_weighted_mean_of_minus_log_softmax():
    loss = make_loss("cross_entropy", "multiclass", 3, class_weight=W)(OUT, Y)
    nll = -OUT.log_softmax(1).gather(1, Y[:, None]).reshape(-1)
    w = torch.tensor(W)[Y]
    by_hand = (w * nll).sum() / w.sum()
    torch.testing.assert_close(loss, by_hand)
    torch.testing.assert_close(loss, F.cross_entropy(OUT, Y, weight=torch.tensor(W)))


def test_label_smoothing_is_torchs_formula_and_reaches_soft_targets():
    e = 0.2
    loss = make_loss("cross_entropy", "multiclass", 3, label_smoothing=e)(OUT, Y)
    logp = OUT.log_softmax(1)
    by_hand = ((1 - e) * -logp.gather(1, Y[:, None]).reshape(-1) - e * logp.mean(1)).mean()
    torch.testing.assert_close(loss, by_hand)
    soft = F.one_hot(Y, 3).float() * 0.7 + 0.1  # mixup-like rows of probabilities
    smoothed = make_loss("cross_entropy", "multiclass", 3, label_smoothing=e)(OUT, soft)
    torch.testing.assert_close(smoothed, -((soft * (1 - e) + e / 3) * logp).sum(1).mean())


def test_binary_weights_and_smoothing_by_hand():
    out = torch.tensor([1.5, -0.3, 0.2, -2.0])
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    w0, w1, e = 0.8, 4.0, 0.1
    loss = make_loss("bce", "binary", 1, class_weight=[w0, w1], label_smoothing=e)(out, y)
    t = y * (1 - e) + e / 2
    s = torch.sigmoid(out)
    by_hand = (-(w1 * t * s.log() + w0 * (1 - t) * (1 - s).log())).mean()
    torch.testing.assert_close(loss, by_hand)


def test_balanced_is_sklearns_compute_class_weight_and_labels_map_through_the_classes():
    y = np.array([0, 0, 0, 0, 1, 2, 2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(class_weights("balanced", y, 3), expected)
    assert class_weights({"dog": 2.5}, None, 3, ["cat", "dog", "eel"]) == [1.0, 2.5, 1.0]
    assert class_weights({1: 2.5}, None, 2, [0, 1]) == [1.0, 2.5]  # int labels from TOML keys
    with pytest.raises(ConfigError, match="label 'cow', which is not a class of the data; "
                       "classes: cat, dog, eel"):
        class_weights({"cow": 2.0}, None, 3, ["cat", "dog", "eel"])
    with pytest.raises(ConfigError, match="class 'eel' has no rows in the training split"):
        class_weights("balanced", np.array([0, 1, 1]), 3, ["cat", "dog", "eel"])


def _imbalanced_digits():
    X, y = load_digits(return_X_y=True)
    keep = np.concatenate([np.where(y == 1)[0], np.where(y == 7)[0], np.where(y == 8)[0][:20]])
    X = torch.tensor(X[keep] / 16, dtype=torch.float32)
    y = torch.tensor(np.searchsorted([1, 7, 8], y[keep]))  # 8 is the rare class 2
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return X[perm], y[perm]


def test_balanced_raises_the_recall_of_the_rare_class_on_real_digits():
    X, y = _imbalanced_digits()  # 11 of 250 training rows are the rare class
    recall = {}
    for cw in (None, "balanced"):
        torch.manual_seed(0)
        t = Trainer(nn.Linear(64, 3), epochs=6, seed=0, class_weight=cw, metrics=["recall"],
                    optimizer={"name": "sgd", "lr": 0.2}, batch_size=32)
        t.fit((X[:250], y[:250]), (X[250:], y[250:]))
        recall[cw] = t.history[-1]["val_recall_2"]
    assert recall[None] < 0.3 and recall["balanced"] > 0.7, recall
    assert t.objective.class_weights == pytest.approx(
        compute_class_weight("balanced", classes=np.arange(3), y=y[:250].numpy()).tolist())


def test_config_fields_from_toml_and_set_and_refusals(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nsource = "builtin:iris"\n[train]\nlabel_smoothing = 0.1\n'
                    '[train.class_weight]\n0 = 2.0\n')
    cfg = load_config(path, ['train.class_weight="balanced"', "train.label_smoothing=0.05"])
    assert cfg.train.class_weight == "balanced" and cfg.train.label_smoothing == 0.05
    assert load_config(path).train.class_weight == {"0": 2.0}
    assert "[train.class_weight]" in load_config(path).to_toml()
    for override, words in (
        ('train.class_weight="even"', 'train.class_weight: must be "balanced"'),
        ("train.label_smoothing=1.0", "train.label_smoothing"),
        ('train.loss="hinge"',
         "applies to the cross-entropy losses .cross_entropy, bce.; train.loss"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_config(path, [override])


def test_a_python_dict_may_key_the_weights_by_the_labels_as_they_are(runs_dir):
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 8)
    labels = np.where(y[keep] == 3, -1, 1)  # a binary task with labels {-1, 1}
    cfg = {"runs_dir": str(runs_dir), "doctor": {"enabled": False}, "log": {"report": False},
           "train": {"epochs": 1, "class_weight": {-1: 2.5}}}
    assert load_config(cfg).train.class_weight == {"-1": 2.5}
    run = tw.fit(cfg, data=(X[keep], labels), quiet=True)
    assert run.trainer.objective.class_weights == [2.5, 1.0]


def test_a_label_not_in_the_data_is_refused_before_any_run_directory(runs_dir):
    with pytest.raises(ConfigError, match="label 'setosa', which is not a class of the data"):
        tw.fit({"data": {"source": "builtin:iris"}, "train": {"class_weight": {"setosa": 2}},
                "runs_dir": str(runs_dir)}, quiet=True)
    assert not any(runs_dir.iterdir()) if runs_dir.exists() else True


@pytest.mark.slow
def test_a_run_keeps_the_weights_by_label_and_reports_them(runs_dir):
    run = tw.fit({"data": {"source": "builtin:iris"}, "runs_dir": str(runs_dir),
                  "train": {"epochs": 1, "class_weight": {"2": 3.0}, "label_smoothing": 0.1}},
                 quiet=True)
    assert run.trainer.objective.class_weights == [1.0, 1.0, 3.0]
    assert "label_smoothing = 0.1" in (run.run_dir / "config.toml").read_text()
    html = (run.run_dir / "report.html").read_text()
    assert "<th>class weight</th><td>2=3</td>" in html
    assert "<th>label smoothing</th><td>0.1</td>" in html


def test_a_dict_config_with_a_relative_csv_resumes_exactly_from_another_folder(runs_dir,
                                                                                monkeypatch):
    """Class weights, smoothing, a per-class metric and the plateau schedule on it, killed
    after epoch 2 of 4 and resumed from elsewhere: the CSV named relative to the working
    folder is found again, and the run ends as the uninterrupted one."""
    X, y = load_digits(return_X_y=True)
    rows = np.concatenate([np.flatnonzero(y == 3), np.flatnonzero(y == 8)[:40]])
    table = np.column_stack([X[rows][:, ::4], np.where(y[rows] == 3, "three", "eight")])
    np.savetxt(runs_dir.parent / "d.csv", table, fmt="%s", delimiter=",",
               header=",".join([f"p{i}" for i in range(16)] + ["digit"]), comments="")
    cfg = {"seed": 3, "runs_dir": str(runs_dir), "doctor": {"enabled": False},
           "log": {"report": False},
           "data": {"source": "csv:d.csv", "target": "digit", "preprocess": ["standardize"]},
           "model": {"hidden": [8], "dropout": 0.2},
           "train": {"epochs": 4, "batch_size": 16, "checkpoint_every": 1,
                     "class_weight": "balanced", "label_smoothing": 0.1, "metrics": ["recall"],
                     "schedule": {"name": "plateau", "metric": "val_recall_1", "patience": 0}}}

    class Kill:
        def after_epoch(self, trainer):
            if trainer.epoch == 2:
                raise KeyboardInterrupt

    whole = tw.fit(cfg, name="whole", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        tw.fit(cfg, name="cut", quiet=True, callbacks=[Kill()])
    elsewhere = runs_dir.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = tw.fit(resume=runs_dir / "cut", quiet=True)
    assert resumed.results["test"] == whole.results["test"]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
