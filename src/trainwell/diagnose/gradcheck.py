"""Gradient check: autograd against central finite differences in float64 (for custom layers)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from trainwell.diagnose.problem import Problem
from trainwell.diagnose.report import Finding
from trainwell.diagnose.stats import DROPOUT_LAYERS


def gradient_check(p: Problem, n: int = 4, per_param: int = 8, eps: float = 1e-6) -> dict[str, Any]:
    """Max relative error |a - f| / max(|a| + |f|, 1e-8) over sampled entries of every parameter.

    ``a`` is autograd's derivative of the loss, ``f`` = (L(w + eps) - L(w - eps)) / (2 eps).
    Dropout is off and BatchNorm uses batch statistics, so the loss is a deterministic function.
    """
    model = copy.deepcopy(p.model).double().train()
    for m in model.modules():
        if isinstance(m, DROPOUT_LAYERS):
            m.eval()
    X = p.X[: max(n, 2)].double()
    y = p.target(p.y[: max(n, 2)])
    y = y.double() if y.is_floating_point() else y

    def loss_fn() -> torch.Tensor:
        return p.loss(model(X), y)

    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    gen = torch.Generator().manual_seed(p.seed)
    errors: dict[str, float] = {}
    with torch.no_grad():
        for name, w in model.named_parameters():
            if w.grad is None:
                continue
            flat, gflat = w.view(-1), w.grad.view(-1)
            picks = torch.randperm(flat.numel(), generator=gen)[:per_param]
            worst = 0.0
            for j in picks.tolist():
                old = flat[j].item()
                flat[j] = old + eps
                up = loss_fn().item()
                flat[j] = old - eps
                down = loss_fn().item()
                flat[j] = old
                num, ana = (up - down) / (2 * eps), gflat[j].item()
                worst = max(worst, abs(ana - num) / max(abs(ana) + abs(num), 1e-8))
            errors[name] = worst
    return {"max_rel_error": max(errors.values(), default=0.0), "per_param": errors, "n": len(X)}


def check_gradients(p: Problem) -> Finding:
    res = gradient_check(p)
    err = res["max_rel_error"]
    worst = max(res["per_param"], key=res["per_param"].get) if res["per_param"] else "-"
    detail = f"largest relative error {err:.2e} (in {worst}) on {res['n']} examples in float64."
    if err > 1e-2:
        return Finding(
            "gradcheck",
            "fail",
            "autograd disagrees with finite differences",
            detail,
            res,
            [f"check the backward of the custom layer owning {worst}"],
        )
    if err > 1e-4:
        return Finding(
            "gradcheck",
            "warn",
            "autograd is close to finite differences, but not tight",
            detail,
            res,
            ["kinks (ReLU at 0, max) can cause this; re-run on other examples"],
        )
    return Finding("gradcheck", "pass", "autograd matches finite differences", detail, res)
