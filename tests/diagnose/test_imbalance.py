"""Imbalanced classes (99:1): the doctor judges by balanced metrics, says that accuracy
misleads, and advises class weights; a model answering the majority class is not a good fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

import trainwell
from trainwell.data import prepare
from trainwell.data.config import DataConfig
from trainwell.diagnose import doctor
from trainwell.diagnose.balance import imbalance_ratio, is_imbalanced, majority_f1_macro
from trainwell.diagnose.curves import verdict

#: make_classification with 99% of the rows in class 0
SKEWED = {"n_samples": 2000, "weights": [0.99], "random_state": 0}


def _finding(report, check):
    found = report.get(check)
    assert found, f"no finding {check}: {[f.check for f in report.findings]}"
    return found[0]


@pytest.fixture(scope="module")
def skewed():
    return prepare(DataConfig(source="builtin:classification", params=SKEWED), seed=0)


def test_a_99_to_1_split_with_signal_passes_by_balanced_accuracy(skewed):
    counts = skewed.class_counts()["train"]
    assert imbalance_ratio(counts) > 50
    rep = doctor(torch.nn.Linear(20, 1), skewed, checks=["data"])
    signal = _finding(rep, "data.signal")
    assert signal.status == "pass", signal.detail
    assert signal.evidence["metric"] == "balanced_accuracy" and signal.evidence["chance"] == 0.5
    assert signal.evidence["heldout_balanced_accuracy"] > 0.5 + signal.evidence["margin"]
    assert "accuracy is misleading" in signal.detail
    assert signal.evidence["majority_rate"] == pytest.approx(max(counts) / sum(counts))
    balance = _finding(rep, "data.balance")
    assert balance.status == "warn" and "accuracy is misleading" in balance.title
    assert "train.class_weight" in balance.advice[0] and "val_f1_macro" in balance.advice[1]
    assert any("train.label_smoothing" in a for a in balance.advice)


def test_shuffled_labels_on_a_99_to_1_split_still_fail(skewed):
    X, y = skewed.train.X, skewed.train.y
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    signal = _finding(doctor(torch.nn.Linear(20, 1), (X, shuffled), checks=["data"]),
                      "data.signal")
    assert signal.status == "fail" and "labels" in signal.advice[0]
    assert signal.evidence["heldout_balanced_accuracy"] < 0.6
    # accuracy alone would have looked like signal: it sits at the majority rate
    assert signal.evidence["heldout_accuracy"] > 0.95


def test_a_single_row_of_a_class_is_too_few_to_judge(skewed):
    X, y = skewed.train.X, skewed.train.y.clone()
    y[y == 1] = 0
    y[0] = 1
    signal = _finding(doctor(torch.nn.Linear(20, 1), (X, y), checks=["data"]), "data.signal")
    assert signal.status == "warn" and "single training row" in signal.detail


HARD = {"n_samples": 2000, "weights": [0.99], "class_sep": 0.3, "flip_y": 0.0,
        "n_informative": 2, "n_redundant": 0, "n_features": 10, "random_state": 1}


def test_a_run_that_answers_the_majority_class_is_not_called_a_good_fit(runs_dir):
    cfg = {"data": {"source": "builtin:classification", "params": HARD},
           "train": {"epochs": 10}, "log": {"report": False}}
    run = trainwell.fit(cfg, name="skewed", quiet=True)
    last = run.history[-1]
    assert last["val_accuracy"] > 0.98 and last["val_f1_macro"] < 0.55  # the failure to catch
    found = next(f for f in json.loads((run.run_dir / "doctor.json").read_text())["findings"]
                 if f["check"] == "curves.verdict")
    ev = found["evidence"]
    assert ev["verdict"] == "majority_class" and found["status"] == "warn"
    assert ev["loss_verdict"] == "good_fit"  # what the loss curves alone said
    assert ev["majority_f1_macro"] == pytest.approx(
        majority_f1_macro(run.prepared.class_counts()["train"]))
    assert "accuracy is misleading" in found["detail"]
    assert any("train.class_weight = \"balanced\"" in a for a in found["advice"])


def test_a_run_that_learns_the_rare_class_keeps_its_verdict_with_the_balanced_metric(runs_dir):
    cfg = {"data": {"source": "builtin:classification", "params": SKEWED},
           "train": {"epochs": 6}, "log": {"report": False}}
    run = trainwell.fit(cfg, name="learns", quiet=True)
    found = next(f for f in json.loads((run.run_dir / "doctor.json").read_text())["findings"]
                 if f["check"] == "curves.verdict")
    ev = found["evidence"]
    assert ev["verdict"] == ev["loss_verdict"] != "majority_class"
    assert ev["val_f1_macro"] > ev["majority_f1_macro"] + 0.05
    assert f"val f1_macro {ev['val_f1_macro']:.3f}" in found["detail"]
    assert "accuracy is misleading" in found["detail"]


def _history(f1, acc=0.99):
    return [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.7},
            {"epoch": 2, "train_loss": 0.05, "val_loss": 0.06, "val_accuracy": acc,
             "val_f1_macro": f1}]


def test_the_verdict_reads_macro_f1_only_when_classes_are_imbalanced():
    plain = verdict(_history(0.5), initial_loss=0.7)
    balanced = verdict(_history(0.5), initial_loss=0.7, class_counts=[500, 480])
    assert plain.evidence["verdict"] == balanced.evidence["verdict"] == "good_fit"
    assert balanced.detail == plain.detail and "imbalance_ratio" not in balanced.evidence
    skewed = verdict(_history(0.5), initial_loss=0.7, class_counts=[990, 10])
    assert skewed.evidence["verdict"] == "majority_class" and skewed.status == "warn"
    good = verdict(_history(0.8), initial_loss=0.7, class_counts=[990, 10])
    assert good.evidence["verdict"] == "good_fit" and good.status == "pass"
    no_val = verdict([{"epoch": 1, "train_loss": 0.7}, {"epoch": 2, "train_loss": 0.05}],
                     initial_loss=0.7, class_counts=[990, 10])
    assert "log val_f1_macro" in no_val.detail
    diverged = verdict([{"epoch": 1, "train_loss": float("nan")}], class_counts=[990, 10])
    assert diverged.evidence["verdict"] == "diverged"


@pytest.mark.parametrize("counts", [[990, 10], [50, 30, 20], [700, 200, 100, 0]])
def test_majority_f1_macro_is_what_sklearn_gives_the_constant_answer(counts):
    y = np.repeat(np.arange(len(counts)), counts)
    constant = np.full_like(y, int(np.argmax(counts)))
    assert majority_f1_macro(counts) == pytest.approx(f1_score(y, constant, average="macro"))
    assert is_imbalanced(counts) == (imbalance_ratio(counts) >= 3)
