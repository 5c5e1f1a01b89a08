"""The verdict on the curves (lecture 004: big gap = overfitting, no gap = underfitting)."""

from __future__ import annotations

from trainwell.diagnose import verdict


def _hist(train, val=None):
    return [
        {"epoch": i + 1, "train_loss": t, **({"val_loss": val[i]} if val else {})}
        for i, t in enumerate(train)
    ]


def test_good_fit():
    f = verdict(_hist([1.0, 0.5, 0.3, 0.2], [1.0, 0.55, 0.35, 0.26]), initial_loss=2.3)
    assert f.status == "pass" and f.evidence["verdict"] == "good_fit"


def test_underfitting_when_training_loss_stays_high():
    f = verdict(_hist([2.2, 2.1, 2.05, 2.0], [2.2, 2.1, 2.05, 2.0]), initial_loss=2.3)
    assert f.evidence["verdict"] == "underfitting" and any("capacity" in a for a in f.advice)


def test_overfitting_when_val_turns_up():
    f = verdict(_hist([1.0, 0.5, 0.2, 0.1, 0.05], [1.0, 0.6, 0.5, 0.6, 0.8]), initial_loss=2.3)
    assert f.evidence["verdict"] == "overfitting" and f.evidence["best_epoch"] == 3
    assert any("regularization" in a for a in f.advice)


def test_overfitting_on_a_large_gap():
    f = verdict(_hist([1.0, 0.3, 0.1, 0.05], [1.2, 1.0, 0.95, 0.9]), initial_loss=2.3)
    assert f.evidence["verdict"] == "overfitting" and f.evidence["gap"] > 0.5


def test_divergence_on_nan_names_the_epoch():
    f = verdict(_hist([1.0, float("nan")]))
    assert f.status == "fail" and f.evidence["verdict"] == "diverged" and f.evidence["epoch"] == 2
    assert any("learning rate" in a for a in f.advice)


def test_a_small_absolute_gap_is_a_good_fit():
    # the demo's curves: val 0.06 vs train 0.005 after starting at 2.9 is lecture 004's small gap
    f = verdict(_hist([1.27, 0.13, 0.02, 0.005], [0.37, 0.11, 0.068, 0.061]), initial_loss=2.94)
    assert f.evidence["verdict"] == "good_fit" and f.evidence["gap"] > 0.9
    assert f.evidence["gap_over_initial"] < 0.02
