"""Loss checks: does the loss fit the task, and is the loss at step 0 what it should be?"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainwell.diagnose.problem import Problem
from trainwell.diagnose.report import Finding

_FITS = {
    "multiclass": {"cross_entropy", "hinge", "nll", "custom"},
    "binary": {"bce", "bce_probs", "cross_entropy", "hinge", "custom"},
    "regression": {"mse", "l1", "huber", "custom"},
}
_SUGGEST = {
    "multiclass": "cross_entropy (softmax)",
    "binary": "bce (sigmoid + binary cross-entropy)",
    "regression": "mse (or l1 / huber with outliers)",
}


def check_loss_fits(p: Problem) -> Finding:
    """Lecture 004: regression -> L2/L1; binary -> sigmoid + BCE; multiclass -> softmax + CE."""
    ev = {"task": p.task, "loss": p.loss_name, "n_outputs": p.n_outputs}
    if p.loss_name not in _FITS[p.task]:
        return Finding(
            "loss.task",
            "fail",
            f"the loss '{p.loss_name}' does not fit a {p.task} task",
            f"a {p.task} task with {p.n_outputs} output(s) is trained with '{p.loss_name}'.",
            ev,
            [f"use {_SUGGEST[p.task]} (lecture 004: losses per task)"],
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
                ["remove the final softmax layer; CrossEntropyLoss takes raw scores (logits)"],
            )
    if (
        p.task == "multiclass"
        and p.n_classes
        and p.n_outputs != p.n_classes
        and p.loss_name == "cross_entropy"
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
    """Lecture 002, step 1: turn off weight decay, check the loss at init, e.g. log(C) for softmax."""
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
    if p.loss_name == "mse":
        tolerance *= 3  # the outputs' own variance at init adds to E[y^2]
    ev["ratio"] = rel
    what = {
        "cross_entropy": f"log(C) = log({p.n_classes})",
        "bce": "log 2",
        "mse": "E[y^2] (outputs ~ 0 at init)",
    }.get(p.loss_name, "its expected value")
    detail = f"loss at step 0 is {loss:.4g}; expected {expected:.4g} = {what} (ratio {rel:.2f})."
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
