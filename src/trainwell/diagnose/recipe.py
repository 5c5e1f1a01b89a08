"""``doctor(module, data)``: lecture 002/004's sanity-check recipe on any ``nn.Module``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwell.diagnose.config import CHECKS, DoctorConfig
from trainwell.diagnose.problem import (
    OptimizerSpec,
    Problem,
    as_split,
    loss_config,
    optimizer_factory,
    output_width,
    validated,
)
from trainwell.diagnose.report import DoctorReport, Finding
from trainwell.errors import ConfigError, DataError
from trainwell.tasks import check_task, infer_task
from trainwell.train import losses
from trainwell.train.threads import auto_threads, use_threads

log = logging.getLogger(__name__)


def make_problem(
    module: nn.Module,
    data: Any,
    *,
    task: str | None = None,
    loss: Any = None,
    optimizer: OptimizerSpec = None,
    lr: float | None = None,
    val: Any = None,
    test: Any = None,
    seed: int = 0,
) -> Problem:
    """Validate the inputs and bundle them (see :func:`doctor` for the arguments).

    The task, the loss and the optimizer come from the trainer's own factories: the task from
    :func:`trainwell.tasks.infer_task` (the targets, the output width and the loss), the loss
    from :func:`trainwell.train.losses.make_loss`, the optimizer from
    :func:`trainwell.train.optim.make_optimizer`.
    """
    if not isinstance(module, nn.Module):
        raise ConfigError(f"doctor: module must be a torch.nn.Module; got {type(module).__name__}")
    if hasattr(data, "train") and not isinstance(
        data, (tuple, list, torch.utils.data.Dataset, torch.utils.data.DataLoader)
    ):
        val = val if val is not None else getattr(data, "val", None)
        test = test if test is not None else getattr(data, "test", None)
        task = task or getattr(data, "task", None)
        data = data.train
    train = as_split(data, "data")
    if train is None:
        raise DataError("doctor: the training data is empty")
    X, y = train
    device = next((t.device for t in module.parameters()), torch.device("cpu"))
    X, y = X.to(device), y.to(device)  # the doctor runs where the module lives
    if task is not None:
        check_task(task, "doctor: task")
    if lr is not None and not lr > 0:
        raise ConfigError(f"doctor: lr must be a positive float; got {lr!r}")
    make_optimizer = optimizer_factory(optimizer)
    cfg, fn = loss_config(loss)
    try:
        n_out = output_width(module, X)
    except Exception as exc:  # noqa: BLE001 - any failure here is a data/model mismatch to report
        raise DataError(
            f"doctor: the model cannot run on the data (X shape {tuple(X.shape)}): {exc}"
        ) from None
    if task is None:
        fits = losses.loss_tasks(cfg.name) if cfg is not None else None
        try:
            task = infer_task(y, n_outputs=n_out, loss_tasks=fits)
        except DataError:
            # integer labels beyond 0/1 on one output: the loss.task check reports it with advice
            task = "binary"
    if task != "regression" and y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise DataError(
                f"doctor: task {task!r} needs integer class labels; got non-integer targets"
            )
        y = y.long()
    n_classes = None
    if task != "regression":
        y = y.reshape(-1).long()
        if (y < 0).any():
            raise DataError("doctor: class labels must be 0 .. C-1; got negative labels")
        n_classes = max(int(y.max()) + 1, 2)
    name, error = "custom", None
    if cfg is not None:
        name = losses.AUTO_LOSS[task] if cfg.name == "auto" else cfg.name
        try:
            cfg = losses.resolve_loss(cfg, task, n_out)
            if fn is None:  # built exactly as the trainer builds it
                fn = losses.make_loss(cfg, task, n_out)
        except ConfigError as exc:
            error = str(exc)
    val_split, test_split = as_split(val, "val"), as_split(test, "test")
    return Problem(
        model=module,
        X=X,
        y=y,
        task=task,
        loss_fn=fn if fn is not None else _refused(error),
        loss_name=name,
        loss_cfg=cfg,
        loss_error=error,
        n_outputs=n_out,
        n_classes=n_classes,
        optimizer=make_optimizer,
        lr=lr,
        val=val_split,
        test=test_split,
        seed=seed,
    )


def _refused(error: str | None) -> Any:
    """The loss of a problem whose loss does not fit: raises what the trainer would raise."""

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise ConfigError(error or "the loss does not fit the task")

    return loss


def doctor(
    module: nn.Module,
    data: Any,
    *,
    task: str | None = None,
    loss: Any = None,
    optimizer: OptimizerSpec = None,
    lr: float | None = None,
    val: Any = None,
    test: Any = None,
    config: DoctorConfig | dict[str, Any] | None = None,
    checks: list[str] | None = None,
    gradcheck: bool | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    scratch: nn.Module | None = None,
) -> DoctorReport:
    """Run the sanity-check recipe on a module and its training data.

    The checks run in the lectures' order: data, initialization (activation and gradient
    statistics on a real batch), the loss at step 0, overfitting one example / one minibatch / a
    small sample, and the learning rate (range test, coarse probe, the configured LR). Every
    training loop works on a copy: ``module`` is left untouched.

    Args:
        module: any ``nn.Module`` mapping a batch of X to outputs (logits for classification).
        data: ``(X, y)`` tensors, a ``Split``, a ``PreparedData`` (its val/test are used), or
            as ``Trainer.fit`` takes it a ``Dataset`` of ``(x, y)`` items or a ``DataLoader`` of
            ``(x, y)`` batches (the first 4096 rows are read into memory).
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; default: inferred as the
            trainer infers it, from the loss, the targets and the width of the outputs.
        loss: what the trainer takes: a registered name (``"cross_entropy"``, ``"hinge"``,
            ``"l2"`` ... or ``"auto"``, the default), a dict / ``LossConfig`` (``reduction``,
            ``delta``, ``margin``), or a callable ``(out, y)``.
        optimizer: what the trainer takes: a name, a dict / ``OptimizerConfig`` (its ``lr`` is
            set by each loop), or a factory ``f(params, lr)``; default Adam.
        lr: the LR the user plans to train with; checked against the range test.
        val: held-out ``(X, y)`` (for the leakage check).
        test: held-out ``(X, y)`` (for the leakage check).
        config: budgets and tolerances (:class:`DoctorConfig`).
        checks: check groups to run; default ``config.checks``.
        gradcheck: also compare autograd with finite differences.
        seed: seeds every loop; torch's global RNG is left as it was (a training run that
            follows gets the same numbers with or without the doctor).
        out_dir: where pictures (the image batch) go; ``doctor.json`` is written by ``save``.
        scratch: for a ``module`` holding pretrained weights, the same architecture at its
            scratch initialization: adds the ``transfer`` check (a linear probe on each one's
            features; negative transfer is warned of).

    Returns:
        The report; ``report.exit_code`` is 1 when a check failed.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> X, y = torch.randn(128, 4), torch.randint(0, 3, (128,))
        >>> report = doctor(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)), (X, y),
        ...                 checks=["initial_loss"])
        >>> report.get("loss.initial")[0].status
        'pass'
    """
    cfg = _config(config)
    p = make_problem(
        module,
        data,
        task=task,
        loss=loss,
        optimizer=optimizer,
        lr=lr,
        val=val,
        test=test,
        seed=seed,
    )
    groups = list(checks if checks is not None else cfg.checks)
    if gradcheck if gradcheck is not None else cfg.gradcheck:
        groups.append("gradcheck")
    if scratch is not None and "transfer" not in groups:
        groups.append("transfer")
    for g in groups:
        if g not in CHECKS:
            from trainwell.registry import unknown_name_message

            raise ConfigError(
                "doctor.checks: " + unknown_name_message("check", g, list(CHECKS))
            )
    report = DoctorReport(info={"task": p.task, "loss": p.loss_name, "n_train": len(p.X)})
    timings: dict[str, float] = {}
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    needs_loss = {"init", "initial_loss", "overfit", "lr", "gradcheck"}
    threads = auto_threads(module, cfg.batch_size)  # never more than the idle cores
    with p.seeded(), use_threads(threads):  # the caller's RNG is left as it was
        for group in CHECKS:
            if group not in groups:
                continue
            if group in needs_loss and "loss_fits" not in timings:
                # the loss must fit the task before any check that computes it (lecture 004)
                from trainwell.diagnose.loss_checks import check_loss_fits

                fits = check_loss_fits(p)
                report.findings.append(fits)
                timings["loss_fits"] = 0.0
                if fits.status == "fail":
                    groups = [g for g in groups if g not in needs_loss]
                    continue
            if group in needs_loss and any(
                f.check == "data.finite" and f.status == "fail" for f in report.findings
            ):
                report.info.setdefault("skipped", []).append(
                    group
                )  # NaN inputs: nothing to learn from
                continue
            if group == "transfer" and (scratch is None or p.task == "regression"):
                report.info.setdefault("skipped", []).append(group)  # nothing to compare
                continue
            t0 = time.perf_counter()
            try:
                report.findings.extend(_run_group(group, p, cfg, report, out_dir, scratch))
            except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                log.debug("doctor: %s raised", group, exc_info=True)
                report.findings.append(
                    Finding(
                        group,
                        "fail",
                        f"the {group} check could not run",
                        f"{type(exc).__name__}: {exc}",
                        {"error": str(exc)},
                        ["run the model and the loss on one batch by hand to see the error"],
                    )
                )
            timings[group] = round(time.perf_counter() - t0, 3)
            log.debug("doctor: %s took %.2fs", group, timings[group])
    module.load_state_dict(state)
    report.info["seconds"] = timings
    return report


def _config(config: DoctorConfig | dict[str, Any] | None) -> DoctorConfig:
    if config is None:
        return DoctorConfig()
    return validated(DoctorConfig, config, "doctor config")


def _run_group(
    group: str, p: Problem, cfg: DoctorConfig, report: DoctorReport, out_dir: str | Path | None,
    scratch: nn.Module | None = None,
) -> list[Finding]:
    if group == "data":
        from trainwell.diagnose.data_checks import run_data_checks

        return run_data_checks(p, out_dir)
    if group == "init":
        from trainwell.diagnose.init_checks import check_init

        found, stats = check_init(p, cfg)
        report.activation_stats["init"] = {
            "layers": stats["layers"],
            "grad_norm": stats["grad_norm"],
        }
        return found
    if group == "initial_loss":
        from trainwell.diagnose.loss_checks import check_initial_loss

        return [check_initial_loss(p, cfg.loss_tolerance)]
    if group == "overfit":
        from trainwell.diagnose.overfit import check_overfit

        return check_overfit(p, cfg)
    if group == "lr":
        from trainwell.diagnose.lr_checks import check_lr

        found, suggested = check_lr(p, cfg, out_dir)
        report.info["suggested_lr"] = suggested
        return found
    if group == "transfer" and scratch is not None:
        from trainwell.diagnose.transfer_check import check_transfer

        return [check_transfer(p.model, scratch, p.X, p.y, seed=p.seed)]
    from trainwell.diagnose.gradcheck import check_gradients

    return [check_gradients(p)]
