"""Overfit checks (lecture 004: one example, then one minibatch; lecture 002: a small sample)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainwell.diagnose.problem import Problem, optimizer_factory
from trainwell.diagnose.report import Finding
from trainwell.diagnose.stats import BATCHNORM_LAYERS, DROPOUT_LAYERS


def fit_subset(
    p: Problem,
    idx: torch.Tensor,
    iters: int,
    lr: float,
    batch_size: int | None = None,
    loss_tol: float = 0.05,
    rel_tol: float = 0.01,
) -> dict[str, Any]:
    """Train a fresh copy on ``X[idx]`` with Adam (train mode, dropout on); stop once it is fitted.

    Adam is built by the trainer's :func:`~trainwell.train.optim.make_optimizer`.

    Fitted means 100% training accuracy with a loss under ``loss_tol`` for classification, and a
    loss under ``rel_tol * initial loss`` for regression.
    """
    with p.seeded():  # dropout draws from the forked, seeded RNG
        model = p.fresh().train()
        if len(idx) == 1:  # BatchNorm cannot normalise one example: use its (initial) running stats
            for m in model.modules():
                if isinstance(m, BATCHNORM_LAYERS):
                    m.eval()
        opt = optimizer_factory("adam")(model.parameters(), lr)
        X, y = p.X[idx], p.target(p.y[idx])
        gen = torch.Generator().manual_seed(p.seed)
        losses: list[float] = []
        start = None
        it = 0
        fitted = False
        for it in range(1, iters + 1):
            if batch_size and batch_size < len(idx):
                sel = torch.randperm(len(idx), generator=gen)[:batch_size]
                xb, yb = X[sel], y[sel]
            else:
                xb, yb = X, y
            loss = p.loss(model(xb), yb)
            if not torch.isfinite(loss):
                losses.append(float("nan"))
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if start is None:
                start = losses[0]
            if it % 10 == 0 or it == iters:
                fitted = _fitted(p, model, X, y, start, loss_tol, rel_tol)
                if fitted:
                    break
        final = _evaluate(p, model, X, y)
    tail = [v for v in losses[-10:] if math.isfinite(v)]
    return {
        "iters": it,
        "fitted": fitted,
        "start_loss": start if start is not None else float("nan"),
        "train_mode_loss": sum(tail) / len(tail) if tail else float("nan"),
        **final,
        "model": model,
    }


def _evaluate(p: Problem, model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Loss and accuracy in train mode (as training sees them), without updating anything."""
    with torch.no_grad():
        out = model(X)
        loss = float(p.loss(out, y))
        acc = p.accuracy(out, _labels(p, y))
    return {"loss": loss, "accuracy": acc}


def _labels(p: Problem, y: torch.Tensor) -> torch.Tensor:
    return y.reshape(-1).long() if p.task == "binary" else y


def _fitted(
    p: Problem,
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    start: float,
    loss_tol: float,
    rel_tol: float,
) -> bool:
    ev = _evaluate(p, model, X, y)
    if not math.isfinite(ev["loss"]):
        return False
    if ev["accuracy"] is not None:
        return ev["accuracy"] >= 1.0 and ev["loss"] <= loss_tol
    return ev["loss"] <= rel_tol * start or ev["loss"] <= 1e-6


def _suspects(model: nn.Module) -> list[str]:
    """Parts of the model that commonly prevent fitting (for the advice)."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, DROPOUT_LAYERS) and m.p >= 0.5:
            out.append(
                f"dropout p={m.p} in {name} drops {m.p:.0%} of the units at every step: lower it "
                "(typical p is 0.1-0.5; lecture 000)"
            )
    return out


def check_overfit(p: Problem, cfg: Any) -> list[Finding]:
    """One example to ~0 loss, then one minibatch, then 5-10 minibatches to 100% accuracy."""
    gen = torch.Generator().manual_seed(p.seed)
    perm = torch.randperm(len(p.X), generator=gen)
    bs = min(cfg.batch_size, len(p.X))
    # (check, what, rows, minibatch size, loss tolerance, relative tolerance for regression)
    stages = [
        ("overfit.one", "one example", perm[:1], None, 0.05, 0.01),
        ("overfit.batch", "one minibatch", perm[:bs], None, 0.5, 0.05),
        (
            "overfit.sample",
            f"{cfg.overfit_batches} minibatches",
            perm[: bs * cfg.overfit_batches],
            bs,
            math.inf,
            0.1,
        ),
    ]
    found: list[Finding] = []
    suspects = _suspects(p.model)
    for check, what, idx, batch, loss_tol, rel_tol in stages:
        best: dict[str, Any] = {}
        for lr in (
            cfg.overfit_lr,
            cfg.overfit_lr * 10,
        ):  # lecture 002: fiddle with the learning rate
            res = fit_subset(
                p, idx, cfg.overfit_iters * (2 if batch else 1), lr, batch, loss_tol, rel_tol
            )
            res["lr"] = lr
            if not best or res["fitted"] or res["loss"] < best["loss"]:
                best = res
            if res["fitted"]:
                break
        best.pop("model")
        ev = {k: v for k, v in best.items()}
        ev["n"] = len(idx)
        acc = f", training accuracy {best['accuracy']:.1%}" if best["accuracy"] is not None else ""
        detail = (
            f"{what} ({len(idx)} rows): loss {best['start_loss']:.4g} -> {best['loss']:.4g} in "
            f"{best['iters']} Adam iterations (lr {best['lr']:g}){acc}."
        )
        if best["fitted"]:
            found.append(Finding(check, "pass", f"the model can overfit {what}", detail, ev))
            continue
        falls = best["loss"] < 0.5 * best["start_loss"]
        advice = suspects + [
            (
                "the loss goes down but not all the way: train the check longer "
                "(doctor.overfit_iters) or with another learning rate before suspecting the model"
                if falls
                else "the loss does not go down: check the model definition and the loss "
                "(lecture 004: a single example must reach ~0 loss)"
            ),
            "try another learning rate or init; remove regularization while debugging",
        ]
        if check == "overfit.sample":
            advice.insert(0, "the model may lack capacity for this sample: add width or depth")
        found.append(Finding(check, "fail", f"the model cannot overfit {what}", detail, ev, advice))
        break  # later stages cannot pass when an easier one fails
    return found
