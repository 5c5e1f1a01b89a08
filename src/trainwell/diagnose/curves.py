"""A verdict on the learning curves (lecture 004: big gap = overfitting, no gap = underfitting)."""

from __future__ import annotations

import math
from typing import Any

from trainwell.diagnose.balance import (
    BALANCED_METRIC,
    CLASS_WEIGHTS,
    MAJORITY_MARGIN,
    imbalance_ratio,
    is_imbalanced,
    majority_f1_macro,
    majority_rate,
)
from trainwell.diagnose.report import Finding

UNDERFIT = [
    "more capacity (wider or deeper layers)",
    "train longer",
    "less regularization (lower dropout / weight decay)",
    "a higher learning rate if the loss falls slowly",
]
OVERFIT = [
    "more regularization (dropout, weight decay; lecture 001's regularization zoo)",
    "more data or data augmentation",
    "early stopping on the validation loss",
]
DIVERGE = [
    "a smaller learning rate (or a warmup, lecture 002)",
    "gradient clipping",
    "standardize the inputs",
    "check the init: Kaiming for ReLU, Xavier for tanh",
]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def verdict(
    history: list[dict[str, Any]],
    *,
    initial_loss: float | None = None,
    divergence: dict[str, Any] | None = None,
    class_counts: list[int] | None = None,
    underfit_ratio: float = 0.5,
    turn_up: float = 0.1,
    gap: float = 0.5,
    gap_abs: float = 0.1,
) -> Finding:
    """Classify the curves of one run: diverged, underfitting, overfitting or a good fit.

    Args:
        history: one record per epoch with ``train_loss`` and, when there is a validation
            split, ``val_loss`` (the lines of ``metrics.jsonl``).
        initial_loss: the training loss at step 0 (default: the first epoch's).
        divergence: what the monitor saw when the loss became NaN/inf (step, first layer).
        class_counts: the training split's count per class (classification). When the classes
            are imbalanced (:data:`~trainwell.diagnose.balance.IMBALANCED`), a falling loss can
            mean no more than "learned the class frequencies": the verdict then reads
            ``val_f1_macro``, and a model at the macro F1 of always answering the majority
            class gets the ``majority_class`` verdict whatever its loss and accuracy.
        underfit_ratio: underfitting when the final training loss is above this fraction of
            the initial loss.
        turn_up: overfitting when the validation loss ends this fraction above its minimum
            while the training loss kept falling.
        gap: overfitting when (val - train) / val at the end exceeds this ...
        gap_abs: ... and val - train exceeds this fraction of the initial loss (a "big gap" in
            lecture 004's sense: train 0.005 vs val 0.06 after starting at 2.3 is a small one).

    Example:
        >>> hist = [{"train_loss": 1.0, "val_loss": 1.0}, {"train_loss": 0.1, "val_loss": 0.12}]
        >>> verdict(hist, initial_loss=2.3).evidence["verdict"]
        'good_fit'
    """
    found = _loss_verdict(history, initial_loss, divergence, underfit_ratio, turn_up, gap,
                          gap_abs)
    if class_counts is None or found.evidence.get("verdict") in ("diverged", "none"):
        return found
    return _balanced(found, history, class_counts)


def _balanced(found: Finding, history: list[dict[str, Any]], counts: list[int]) -> Finding:
    """The loss verdict read beside macro F1 when the classes are imbalanced."""
    if not is_imbalanced(counts):
        return found
    ratio, rate, base = imbalance_ratio(counts), majority_rate(counts), majority_f1_macro(counts)
    last = next((r for r in reversed(history) if _finite(r.get("val_f1_macro"))), None)
    ev = {**found.evidence, "imbalance_ratio": ratio, "majority_rate": rate,
          "majority_f1_macro": base}
    misleading = f"Classes are imbalanced ({ratio:.0f}:1), so accuracy is misleading"
    if last is None:  # no validation metrics: the loss verdict, with the warning
        return Finding(found.check, found.status, found.title,
                       f"{found.detail} {misleading}; log val_f1_macro (a validation split) "
                       "to judge the fit.", ev, found.advice)
    f1 = float(last["val_f1_macro"])
    acc = last.get("val_accuracy")
    ev.update(val_f1_macro=f1, val_accuracy=acc, loss_verdict=found.evidence["verdict"])
    said_acc = f"val accuracy {acc:.3f} only repeats" if _finite(acc) else "accuracy would repeat"
    if f1 <= base + MAJORITY_MARGIN:
        ev["verdict"] = "majority_class"
        return Finding(
            "curves.verdict",
            "warn",
            "the model answers the majority class: the minority classes are not learned",
            f"{misleading}: val f1_macro ended at {f1:.3f}, what always answering the majority "
            f"class gives ({base:.3f}), and {said_acc} its share {rate:.3f}. The loss curves "
            f"alone say \"{found.title}\": {found.detail}",
            ev,
            [CLASS_WEIGHTS, BALANCED_METRIC],
        )
    return Finding(found.check, found.status, found.title,
                   f"{found.detail} {misleading}: val f1_macro {f1:.3f} (always answering the "
                   f"majority class: {base:.3f}).", ev,
                   found.advice)


def _loss_verdict(
    history: list[dict[str, Any]],
    initial_loss: float | None,
    divergence: dict[str, Any] | None,
    underfit_ratio: float,
    turn_up: float,
    gap: float,
    gap_abs: float,
) -> Finding:
    """The verdict from the loss curves alone."""
    raw_train: list[Any] = [r.get("train_loss") for r in history]
    raw_val: list[Any] = [r.get("val_loss") for r in history if "val_loss" in r]
    if divergence or any(not _finite(v) for v in raw_train + raw_val):
        step = (divergence or {}).get("step")
        first = (divergence or {}).get("first_layer")
        bad_epoch = next(
            (
                r.get("epoch", i + 1)
                for i, r in enumerate(history)
                if not _finite(r.get("train_loss"))
                or ("val_loss" in r and not _finite(r["val_loss"]))
            ),
            None,
        )
        where = (
            f"at step {step}"
            if step is not None
            else (f"in epoch {bad_epoch}" if bad_epoch else "")
        )
        if first == "the loss":
            layer = (
                "; every layer's output was finite: the loss itself overflowed (scores too large)"
            )
        else:
            layer = f"; the first layer with non-finite output was {first}" if first else ""
        return Finding(
            "curves.verdict",
            "fail",
            "training diverged: the loss became NaN/inf",
            f"the loss became non-finite {where}{layer}.",
            {"verdict": "diverged", "epoch": bad_epoch, **(divergence or {})},
            DIVERGE,
        )
    train = [float(v) for v in raw_train]  # finite numbers from here on
    val = [float(v) for v in raw_val]
    if not train:
        return Finding(
            "curves.verdict", "warn", "no finished epoch to judge", "", {"verdict": "none"}
        )
    start = train[0] if initial_loss is None or not _finite(initial_loss) else float(initial_loss)
    end = train[-1]
    ev: dict[str, Any] = {"initial_loss": start, "final_train_loss": end, "epochs": len(train)}
    if val:
        v_min = min(val)
        best = val.index(v_min) + 1
        v_end = val[-1]
        rel_gap = (v_end - end) / v_end if v_end > 0 else 0.0
        ev.update(final_val_loss=v_end, best_val_loss=v_min, best_epoch=best, gap=rel_gap)
        train_fell = end < train[best - 1]
        if v_end > (1 + turn_up) * v_min and best < len(val) and train_fell:
            ev["verdict"] = "overfitting"
            return Finding(
                "curves.verdict",
                "warn",
                "overfitting: validation loss turned up while training loss fell",
                f"val loss bottomed at {v_min:.4g} in epoch {best} and ended at "
                f"{v_end:.4g}; train loss ended at {end:.4g}.",
                ev,
                OVERFIT,
            )
        abs_gap = v_end - end
        ev["gap_over_initial"] = abs_gap / start if start > 0 else 0.0
        if rel_gap > gap and abs_gap > gap_abs * start and end < underfit_ratio * start:
            ev["verdict"] = "overfitting"
            return Finding(
                "curves.verdict",
                "warn",
                "overfitting: a large train/validation gap",
                f"train loss {end:.4g} vs val loss {v_end:.4g}: the gap is {rel_gap:.0%} of the "
                f"val loss and {abs_gap / start:.0%} of the initial loss {start:.4g}.",
                ev,
                OVERFIT,
            )
    if end > underfit_ratio * start:
        ev["verdict"] = "underfitting"
        return Finding(
            "curves.verdict",
            "warn",
            "underfitting: the training loss stays high",
            f"train loss went from {start:.4g} to only {end:.4g} in {len(train)} epochs.",
            ev,
            UNDERFIT,
        )
    ev["verdict"] = "good_fit"
    return Finding(
        "curves.verdict",
        "pass",
        "a good fit: training loss fell and validation follows it",
        f"train loss {start:.4g} -> {end:.4g}"
        + (f", val loss {ev['final_val_loss']:.4g}" if val else "")
        + ".",
        ev,
    )
