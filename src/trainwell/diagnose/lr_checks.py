"""Findings of the learning-rate checks: range test, coarse probe and the configured LR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwell.diagnose.lr import LR_FIGURE, coarse_probe, lr_range_test, train_at
from trainwell.diagnose.problem import Problem
from trainwell.diagnose.report import Finding, Status

NO_LR_ADVICE = (
    "check the init and the inputs: loss not going down means LR too low or a bad init; loss "
    "exploding means LR too high or a bad init (lecture 002)"
)


def check_lr(p: Problem, cfg: Any, out_dir: str | Path | None = None
             ) -> tuple[list[Finding], float | None]:
    """Returns the findings and the suggested LR; with ``out_dir`` the range test's curve is
    written there as ``lr_range.png`` (:data:`~trainwell.diagnose.lr.LR_FIGURE`)."""
    bs = min(cfg.batch_size, len(p.X))
    rng = lr_range_test(p, cfg.lr_iters, cfg.lr_min, cfg.lr_max, bs)
    found: list[Finding] = []
    ev = rng.to_dict()
    if out_dir is not None and rng.lrs:
        ev["figure"] = rng.save_plot(Path(out_dir) / LR_FIGURE).name
    where = f"; the loss diverges from lr {rng.diverge_lr:.3g}" if rng.diverge_lr else ""
    if rng.suggested_lr is None:
        found.append(
            Finding(
                "lr.range",
                "warn",
                "the LR range test found no LR that lowers the loss",
                f"range {cfg.lr_min:g} .. {cfg.lr_max:g}{where}.",
                ev,
                [NO_LR_ADVICE],
            )
        )
    else:
        found.append(
            Finding(
                "lr.range",
                "pass",
                f"LR range test suggests lr {rng.suggested_lr:.3g}",
                f"lowest smoothed loss at lr {rng.min_loss_lr:.3g}{where}.",
                ev,
            )
        )

    probe = coarse_probe(p, list(cfg.probe_lrs), cfg.probe_iters, bs)
    ok = [r for r in probe if not r["diverged"] and r["end_loss"] < 0.8 * r["start_loss"]]
    rows = "; ".join(_probe_row(r) for r in probe)
    pev = {"probe": probe}
    best = min(ok, key=lambda r: r["end_loss"]) if ok else None
    if best is not None:
        pev["best_lr"] = best["lr"]
        found.append(
            Finding(
                "lr.probe",
                "pass",
                f"lr {best['lr']:g} lowers the loss most in {cfg.probe_iters} iterations",
                rows,
                pev,
            )
        )
    elif all(r["diverged"] for r in probe):
        found.append(
            Finding(
                "lr.probe",
                "fail",
                "the loss diverges at every probed LR",
                rows,
                pev,
                ["standardize the inputs", "check the init (Kaiming for ReLU, Xavier for tanh)"],
            )
        )
    else:
        found.append(
            Finding(
                "lr.probe",
                "warn",
                f"no probed LR makes the loss drop within {cfg.probe_iters} iterations",
                rows,
                pev,
                ["loss not going down: LR too low or a bad init (lecture 002)"],
            )
        )

    suggested = rng.suggested_lr
    if suggested is None and best is not None:
        suggested = best["lr"]
    if p.lr is not None:
        found.append(_check_setting(p, p.lr, cfg, rng.diverge_lr, suggested, best))
    return found, suggested


def _check_setting(
    p: Problem,
    lr: float,
    cfg: Any,
    diverge_lr: float | None,
    suggested: float | None,
    best: dict[str, Any] | None,
) -> Finding:
    """The configured ``lr``, trained at for ``probe_iters`` minibatches."""
    run = train_at(p, lr, cfg.probe_iters, min(cfg.batch_size, len(p.X)))
    ev = {"lr": lr, "run": run, "diverge_lr": diverge_lr, "suggested_lr": suggested}
    tip = (
        f"use lr {suggested:.3g} (the range test's suggestion)"
        if suggested
        else "lower the learning rate"
    )
    if run["diverged"]:
        at = f"after {run['diverged_at']} iterations" if run["diverged_at"] else "at once"
        return Finding(
            "lr.setting",
            "fail",
            f"the configured lr {lr:g} makes the loss explode",
            f"training at lr {lr:g} diverges {at} (loss {run['start_loss']:.3g} -> "
            f"{run['end_loss']:.3g}).",
            ev,
            [
                tip,
                "loss exploding to inf/NaN: LR too high or a bad init (lecture 002)",
                "add a warmup (lecture 002) or gradient clipping",
            ],
        )
    if diverge_lr is not None and lr >= diverge_lr:
        status: Status = "fail" if run["end_loss"] > 0.5 * run["start_loss"] else "warn"
        return Finding(
            "lr.setting",
            status,
            f"the configured lr {lr:g} is at or above where the loss diverges ({diverge_lr:.3g})",
            f"training at lr {lr:g}: loss {run['start_loss']:.3g} -> "
            f"{run['end_loss']:.3g} in {cfg.probe_iters} iterations.",
            ev,
            [tip],
        )
    if (
        best is not None
        and run["end_loss"] > 0.9 * run["start_loss"]
        and best["end_loss"] < 0.5 * run["end_loss"]
    ):
        return Finding(
            "lr.setting",
            "warn",
            f"the configured lr {lr:g} barely lowers the loss",
            f"{run['start_loss']:.3g} -> {run['end_loss']:.3g} in {cfg.probe_iters} iterations; "
            f"lr {best['lr']:g} reaches {best['end_loss']:.3g}.",
            ev,
            [tip],
        )
    return Finding(
        "lr.setting",
        "pass",
        f"the configured lr {lr:g} lowers the loss",
        f"{run['start_loss']:.3g} -> {run['end_loss']:.3g} in {cfg.probe_iters} iterations.",
        ev,
    )


def _probe_row(r: dict[str, Any]) -> str:
    if r["diverged"]:
        return f"lr {r['lr']:g}: diverged"
    return f"lr {r['lr']:g}: {r['start_loss']:.3g} -> {r['end_loss']:.3g}"
