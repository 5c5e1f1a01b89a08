"""What a run with ``[heads]`` or ``[domain]`` adds to :func:`trainwell.fit`.

The model (a trunk from ``[model]`` with one head per task, or a label head and a domain
classifier), the step (:class:`~trainwell.train.multitask.Multitask` or
:class:`~trainwell.train.domain.DomainAdversarial`), the per-head predictions, and for
domain-adversarial runs the summary of source, target and domain accuracy, with the optional
source-only baseline it is judged against.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from trainwell.config import Config
    from trainwell.data.domain_data import DomainData
    from trainwell.data.prepared_data import PreparedData

from trainwell.nn.config import LABEL_HEAD

log = logging.getLogger(__name__)


def several_heads(cfg: Config) -> bool:
    return bool(cfg.heads) or cfg.domain is not None


def build_run_model(
    cfg: Config,
    input_shape: tuple[int, ...],
    n_outputs: int,
    task: str,
    heads: dict[str, dict[str, Any]] | None,
    example: torch.Tensor,
    trust_code: bool = False,
) -> nn.Module:
    """The trunk of ``[model]`` with the run's heads (see :mod:`trainwell.nn.trunk`): one per
    entry of ``heads`` (``data.json``'s), or a label head and a domain classifier."""
    from trainwell.nn.trunk import build_multihead

    shape = tuple(input_shape)
    if cfg.heads:
        widths = {name: (int(h["n_outputs"]), str(h["task"])) for name, h in (heads or {}).items()}
        return build_multihead(cfg.model, shape, widths, example, trust_code=trust_code)
    assert cfg.domain is not None
    return build_multihead(
        cfg.model,
        shape,
        {LABEL_HEAD: (n_outputs, task)},
        example,
        domain_hidden=list(cfg.domain.hidden),
        trust_code=trust_code,
    )


def run_step(
    cfg: Config, prepared: PreparedData, domain: DomainData | None, lambda_: float | None = None
) -> tuple[Any, list[Any], dict[str, Any]]:
    """The objective, extra callbacks and Trainer keywords of a run with several heads.

    ``lambda_`` overrides ``[domain] grl_lambda`` (0 gives the source-only baseline).
    """
    if cfg.heads:
        from trainwell.train.multitask import Multitask

        info = prepared.heads or {}
        heads = {
            name: {
                "target": info[name]["index"] if len(info[name]["index"]) > 1
                else info[name]["index"][0],
                "task": info[name]["task"],
                "loss": h.loss.model_dump(),
                "weight": h.weight,
                "metrics": h.metrics,
            }
            for name, h in cfg.heads.items()
        }
        return Multitask(heads, top_k=cfg.train.top_k), [], {"task": None}
    from trainwell.train.domain import DannLR, DomainAdversarial

    d = cfg.domain
    assert d is not None and domain is not None
    fixed = None if d.grl_lambda == "ganin" else float(d.grl_lambda)
    step = DomainAdversarial(
        domain.X,
        target_eval=(domain.X, domain.y) if domain.y is not None else None,
        loss=cfg.train.loss,
        task=prepared.task,
        lambda_=fixed if lambda_ is None else lambda_,
        gamma=d.gamma,
        label_head=LABEL_HEAD,
        seed=cfg.seed,
        top_k=cfg.train.top_k,
    )
    callbacks = [DannLR(d.alpha, d.beta)] if d.lr_schedule == "dann" else []
    kwargs: dict[str, Any] = {"task": prepared.task, "restore_best": d.restore_best}
    if not d.early_stopping:
        kwargs["early_stopping"] = cfg.train.early_stopping.model_copy(update={"patience": None})
    return step, callbacks, kwargs


def check_head_metrics(cfg: Config, heads: dict[str, dict[str, Any]]) -> None:
    """Each head's ``metrics`` and the early-stopping and tune metrics, against the tasks the
    data gave the heads: refused before the run directory exists.

    Raises:
        ConfigError: naming the field, the value and the names the run logs.
    """
    from trainwell.errors import ConfigError
    from trainwell.train.heads_config import HEAD_METRICS

    logged: dict[str, list[str]] = {}
    for name, h in heads.items():
        task = str(h["task"])
        names = list(HEAD_METRICS[task])
        if task == "multiclass" and int(h["n_outputs"]) > cfg.train.top_k:
            names.append(f"top{cfg.train.top_k}_accuracy")
        wanted = cfg.heads[name].metrics
        bad = [m for m in wanted or [] if m not in names]
        if bad:
            raise ConfigError(
                f"heads.{name}.metrics: {', '.join(map(repr, bad))} is not a metric of the "
                f"{task} head {name!r}; allowed: {', '.join(names)}"
            )
        logged[name] = ["loss", *(wanted if wanted is not None else names)]
    every = [f"val_{n}_{m}" for n, ms in logged.items() for m in ms]
    for field, metric in (
        ("train.early_stopping.metric", cfg.train.early_stopping.metric),
        ("tune.metric", cfg.tune.metric),
    ):
        if metric.startswith("val_") and metric != "val_loss" and metric not in every:
            raise ConfigError(
                f"{field} = {metric!r} is not logged by this run's heads; it logs val_loss "
                f"and {', '.join(every)}"
            )


# ---------------------------------------------------------------------------- predictions


def head_predictions(out: dict[str, torch.Tensor], heads: dict[str, dict[str, Any]]
                     ) -> dict[str, np.ndarray]:
    """``<head>_y_pred`` (and ``<head>_proba``) for every head of ``heads``."""
    from trainwell.train.metrics import output_predictions

    arrays: dict[str, np.ndarray] = {}
    for name, h in heads.items():
        for key, value in output_predictions(out[name], h["task"]).items():
            arrays[f"{name}_{key}"] = value
    return arrays


def head_truth(y: torch.Tensor, heads: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """``<head>_y_true`` per head from the target matrix (NaN where a label is missing; class
    indices as floats)."""
    out = {}
    for name, h in heads.items():
        block = y[:, h["index"]].cpu().numpy()
        out[f"{name}_y_true"] = block.reshape(-1) if block.shape[1] == 1 else block
    return out


# ---------------------------------------------------------------------------- domain results


def domain_summary(history: list[dict[str, Any]], test: dict[str, Any],
                   baseline: dict[str, Any] | None) -> dict[str, Any]:
    """What ``results.json["domain"]`` holds: the kept weights' source / target accuracy, the
    domain classifier's accuracy at the end (0.5 is the goal), and the baseline's, with a
    verdict (:func:`trainwell.diagnose.domain_verdict.domain_verdict`)."""
    from trainwell.diagnose.domain_verdict import domain_verdict

    last = history[-1] if history else {}
    out: dict[str, Any] = {
        "source_accuracy": test.get("test_accuracy", last.get("val_accuracy")),
        "target_accuracy": test.get("test_target_accuracy", last.get("val_target_accuracy")),
        "domain_accuracy": last.get("train_domain_accuracy"),
        "grl_lambda": last.get("train_grl_lambda"),
    }
    if baseline is not None:
        out["baseline"] = baseline
    out["verdict"] = domain_verdict(out)
    return out


def source_only_baseline(cfg: Config, prepared: PreparedData, domain: DomainData,
                         device: torch.device, example: torch.Tensor, trust_code: bool = False
                         ) -> dict[str, Any]:
    """The same run with the gradient reversal off (lambda 0): the trunk learns from the label
    loss only, on the same data, steps and seed. Its test metrics, source and target."""
    import torch

    from trainwell.train.trainer import Trainer

    val = prepared.val if len(prepared.val) else None
    evaluated = prepared.test if len(prepared.test) else val
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_run_model(cfg, prepared.input_shape, prepared.n_outputs, prepared.task,
                                prepared.heads, example, trust_code)
        step, callbacks, kwargs = run_step(cfg, prepared, domain, lambda_=0.0)
        trainer = Trainer.from_config(
            model, cfg.train, seed=cfg.seed, device=device, step=step, callbacks=callbacks,
            **kwargs,
        )
        trainer.fit(prepared.train, val)
        metrics = trainer.evaluate(evaluated, prefix="test") if evaluated is not None else {}
    last = trainer.history[-1] if trainer.history else {}
    return {
        "source_accuracy": metrics.get("test_accuracy"),
        "target_accuracy": metrics.get("test_target_accuracy"),
        "domain_accuracy": last.get("train_domain_accuracy"),
    }


__all__ = [
    "LABEL_HEAD",
    "build_run_model",
    "check_head_metrics",
    "domain_summary",
    "head_predictions",
    "head_truth",
    "run_step",
    "several_heads",
    "source_only_baseline",
]
