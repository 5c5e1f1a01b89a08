"""Loss checks: does the loss fit the task, and is the loss at step 0 what it should be?"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainwell.diagnose.problem import Problem
from trainwell.diagnose.report import Finding
from trainwell.train import losses


def _fitting_losses(task: str) -> str:
    """``use cross_entropy (or hinge) ...``: the registered losses for ``task``, default first."""
    default = losses.AUTO_LOSS[task]
    others = [
        n for n in losses.list_losses() if task in (losses.loss_tasks(n) or ()) and n != default
    ]
    alt = f" (or {', '.join(others)})" if others else ""
    return f"use {default}{alt} for a {task} task (lecture 004: losses per task)"


def check_loss_fits(p: Problem) -> Finding:
    """Lecture 004: regression -> L2/L1; binary -> sigmoid + BCE; multiclass -> softmax + CE.

    The loss fits when the trainer would accept it for the task and the output width
    (:func:`trainwell.train.losses.check_loss_for_task`); then the outputs must be scores, not
    probabilities, and there must be one output per class.
    """
    ev = {"task": p.task, "loss": p.loss_name, "n_outputs": p.n_outputs}
    if p.loss_error is not None:
        return Finding(
            "loss.task",
            "fail",
            f"the loss '{p.loss_name}' does not fit a {p.task} task with {p.n_outputs} output(s)",
            f"{p.loss_error}.",
            ev,
            [_fitting_losses(p.task)],
        )
    with torch.no_grad():
        model = p.fresh().eval()
        out = model(p.X[: min(len(p.X), 256)])
    if p.loss_name == "cross_entropy" and out.ndim == 2 and out.shape[1] > 1:
        rows = out.sum(1)
        if bool(
            (out >= 0).all()
            and (out <= 1).all()
            and torch.allclose(rows, torch.ones_like(rows), atol=1e-4)
        ):
            return Finding(
                "loss.task",
                "fail",
                "the model outputs probabilities, but cross-entropy expects logits",
                "every output row is in [0, 1] and sums to 1: a softmax is applied before a loss "
                "that applies log-softmax itself.",
                ev,
                ["remove the final softmax layer; cross-entropy takes raw scores (logits)"],
            )
    classes = p.n_classes or 0
    if p.task == "binary" and classes > 2:
        return Finding(
            "loss.task",
            "fail",
            "a binary task, but the labels hold more than two classes",
            f"{p.n_outputs} output(s) for labels 0 .. {classes - 1}.",
            ev,
            [f"give the last layer {classes} outputs (one score per class) and train it "
             "with cross_entropy"],
        )
    if (
        p.task == "multiclass"
        and p.loss_cfg is not None
        and p.n_classes
        and p.n_outputs != p.n_classes
    ):
        return Finding(
            "loss.task",
            "fail",
            "the output layer width does not match the number of classes",
            f"{p.n_outputs} outputs for {p.n_classes} classes.",
            ev,
            [f"give the last layer {p.n_classes} outputs"],
        )
    return Finding("loss.task", "pass", f"'{p.loss_name}' fits a {p.task} task", evidence=ev)


def check_initial_loss(p: Problem, tolerance: float, n: int = 512) -> Finding:
    """Lecture 002, step 1: turn off weight decay, check the loss at init (log C for softmax)."""
    model = p.fresh().eval()
    with torch.no_grad():
        xb, yb = p.X[:n], p.target(p.y[:n])
        loss = float(p.loss(model(xb), yb))
    expected = p.expected_initial_loss
    ev: dict[str, Any] = {
        "loss": loss,
        "expected": expected,
        "tolerance": tolerance,
        "loss_name": p.loss_name,
    }
    if not math.isfinite(loss):
        return Finding(
            "loss.initial",
            "fail",
            "the loss at step 0 is NaN/inf",
            f"loss {loss}.",
            ev,
            ["standardize the inputs", "check the init and the loss for log(0)"],
        )
    if expected is None or expected <= 0:
        return Finding(
            "loss.initial",
            "pass",
            f"loss at step 0 is {loss:.4g}",
            "no expected value for this loss.",
            ev,
        )
    rel = loss / expected
    if p.task == "regression":
        tolerance *= 3  # the outputs' own variance at init adds to the loss of zero outputs
    ev["ratio"] = rel
    classes = f" over {p.n_outputs} classes" if p.task == "multiclass" else ""
    detail = (
        f"loss at step 0 is {loss:.4g}; expected {expected:.4g}, the {p.loss_name} loss of "
        f"all-zero outputs{classes} (ratio {rel:.2f})."
    )
    adv = [
        "scale down the last layer's init so the initial scores are near 0 (lecture 002 step 1)",
        "check that the loss matches the outputs (logits vs probabilities)",
        "standardize the inputs",
    ]
    if rel > 1 + 3 * tolerance or rel < 1 / (1 + 3 * tolerance):
        return Finding(
            "loss.initial",
            "fail",
            "the loss at step 0 is far from its expected value",
            detail,
            ev,
            adv,
        )
    if abs(rel - 1) > tolerance:
        return Finding(
            "loss.initial", "warn", "the loss at step 0 is off its expected value", detail, ev, adv
        )
    return Finding(
        "loss.initial", "pass", "the loss at step 0 matches its expected value", detail, ev
    )
