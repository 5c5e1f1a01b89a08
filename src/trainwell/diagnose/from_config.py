"""The doctor on a whole experiment config: prepare the data, build the model, run the checks.

The experiment config (:class:`trainwell.config.Config`) is composed of every package's section,
this one's ``[doctor]`` included; it is read here through what the doctor needs of it
(:class:`Experiment`), so that this package does not import the root config back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from trainwell.diagnose.config import DoctorConfig
from trainwell.diagnose.recipe import doctor
from trainwell.diagnose.report import DoctorReport
from trainwell.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from trainwell.data.config import DataConfig
    from trainwell.nn.config import ModelConfig
    from trainwell.train.config import TrainConfig

log = logging.getLogger(__name__)


class Experiment(Protocol):
    """What the doctor reads of an experiment config (a :class:`trainwell.config.Config`)."""

    name: str | None
    seed: int
    runs_dir: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    doctor: DoctorConfig

    def to_dict(self) -> dict[str, Any]: ...


def default_out_dir(cfg: Experiment) -> Path:
    """``<runs_dir>/<name>-doctor``: where ``trainwell doctor`` writes when no ``--out`` is given.

    ``<name>`` is the run's name: the config's ``name`` (refused where ``trainwell train`` would
    refuse it), else the default run name.
    """
    from trainwell.runs import default_run_name, validate_run_name

    name = validate_run_name(cfg.name) if cfg.name else None
    name = name or default_run_name(cfg.data.source, cfg.model.arch)
    return Path(cfg.runs_dir) / f"{name}-doctor"


def doctor_from_config(
    cfg: Experiment,
    *,
    gradcheck: bool = False,
    out_dir: str | Path | None = None,
    prepared: Any = None,
    model: Any = None,
    scratch: Any = None,
) -> DoctorReport:
    """Prepare the data and build the model as ``trainwell train`` would, then run the doctor.

    The loss (``train.loss`` with its reduction, delta and margin) and the optimizer
    (``train.optimizer``) are handed to the doctor as the trainer takes them. torch's global
    RNG is the same afterwards as before: a run that follows trains on the same numbers.

    Args:
        cfg: a loaded :class:`~trainwell.config.Config`.
        gradcheck: also run the finite-difference gradient check.
        out_dir: where pictures go (``doctor.json`` is written by the caller).
        prepared: an already prepared dataset (skips ``prepare``).
        model: an already built model (skips ``build_model``).
        scratch: with a ``model`` holding pretrained weights, the same model at its scratch
            initialization (adds the ``transfer`` check).
    """
    import torch

    heads = getattr(cfg, "heads", None) or {}
    domain = getattr(cfg, "domain", None)
    if heads or domain is not None:
        return _doctor_heads(cfg, gradcheck, out_dir, prepared, model)
    if prepared is None or model is None:
        from trainwell.data import prepare
        from trainwell.nn import build_model

        # seeded as `trainwell train` seeds before it prepares and builds, on a forked RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if prepared is None:
                prepared = prepare(cfg.data, cfg.seed)
            if model is None:
                example = prepared.train.head(min(256, len(prepared.train)))
                model = build_model(
                    cfg.model,
                    prepared.input_shape,
                    prepared.n_outputs,
                    prepared.task,
                    example_batch=example,
                )
    return doctor(
        model,
        prepared,
        task=prepared.task,
        loss=cfg.train.loss,
        optimizer=cfg.train.optimizer,
        lr=float(cfg.train.optimizer.kwargs()["lr"]),
        config=cfg.doctor,
        gradcheck=gradcheck or cfg.doctor.gradcheck,
        seed=cfg.seed,
        out_dir=out_dir,
        scratch=scratch,
    )


def _doctor_heads(
    cfg: Any, gradcheck: bool, out_dir: str | Path | None, prepared: Any, model: Any
) -> DoctorReport:
    """The recipe once per head, on the head's own labelled rows, loss and task: each head's
    initial loss is checked against its own chance value (log C for C classes). A
    domain-adversarial model gets the recipe for its label head and the domain classifier's
    loss at step 0 checked against log 2. Findings are named ``heads.<head>.<check>``."""
    import torch

    from trainwell.nn.trunk import LABEL_HEAD, build_multihead

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if prepared is None:
            from trainwell.data import prepare

            prepared = prepare(cfg.data, cfg.seed, cfg.head_targets())
        if model is None:  # as trainwell.heads_run.build_run_model builds it
            example = prepared.train.head(min(256, len(prepared.train)))
            shape = tuple(prepared.input_shape)
            if prepared.heads:
                widths = {n: (int(h["n_outputs"]), str(h["task"]))
                          for n, h in prepared.heads.items()}
                model = build_multihead(cfg.model, shape, widths, example)
            else:
                model = build_multihead(cfg.model, shape,
                                        {LABEL_HEAD: (prepared.n_outputs, prepared.task)},
                                        example, domain_hidden=list(cfg.domain.hidden))
    if prepared.heads:
        plan = {name: (h["index"], h["task"], cfg.heads[name].loss)
                for name, h in prepared.heads.items()}
    else:
        plan = {LABEL_HEAD: (None, prepared.task, cfg.train.loss)}
    report = DoctorReport(info={"task": prepared.task, "heads": {}})
    suggestions: list[float] = []
    for name, (index, task, loss) in plan.items():
        splits = [_head_rows(s, index, task) for s in (prepared.train, prepared.val, prepared.test)]
        sub = doctor(
            model.branch(name),
            splits[0],
            task=task,
            loss=loss,
            optimizer=cfg.train.optimizer,
            lr=float(cfg.train.optimizer.kwargs()["lr"]),
            val=splits[1] if len(splits[1][0]) else None,
            test=splits[2] if len(splits[2][0]) else None,
            config=cfg.doctor,
            gradcheck=gradcheck or cfg.doctor.gradcheck,
            seed=cfg.seed,
            out_dir=out_dir,
        )
        for f in sub.findings:
            f.check = f"heads.{name}.{f.check}"
            f.title = f"{name} head: {f.title}"
        report.findings.extend(sub.findings)
        report.info["heads"][name] = {k: v for k, v in sub.info.items() if k != "seconds"}
        if not report.activation_stats:
            report.activation_stats = sub.activation_stats
        if sub.suggested_lr is not None:
            suggestions.append(sub.suggested_lr)
    heads = getattr(model, "heads", None)
    if cfg.domain is not None and heads is not None and "domain" in heads:
        report.findings.append(_domain_initial_loss(model, prepared, heads["domain"], cfg))
    if suggestions:  # the smallest: an LR every head's range test accepts
        report.info["suggested_lr"] = min(suggestions)
    return report


def _head_rows(split: Any, index: list[int] | None, task: str) -> tuple[Any, Any]:
    """``(X, y)`` of a split's rows labelled for one head (all rows for ``index=None``)."""
    import torch

    X, y = split.X, split.y
    if index is None:
        return X, y
    block = y[:, index]
    keep = ~torch.isnan(block).any(1)
    y_h = block[keep]
    y_h = y_h.reshape(-1).long() if task != "regression" else y_h
    return X[keep], y_h


def _domain_initial_loss(model: Any, prepared: Any, domain_head: Any, cfg: Any) -> Any:
    """The domain classifier's loss at step 0 on source vs target rows: log 2 (chance)."""
    import math

    import torch
    import torch.nn.functional as F

    from trainwell.data.domain_data import prepare_domain
    from trainwell.diagnose.report import Finding

    target = prepare_domain(cfg.domain.target, cfg.domain.params, prepared, cfg.seed).X
    n = min(256, len(prepared.train), len(target))
    x = torch.cat([prepared.train.X[:n], target[:n]])
    is_target = torch.cat([torch.zeros(n), torch.ones(n)])
    was = model.training
    model.eval()
    with torch.no_grad():
        d = domain_head(model.features(x)).reshape(-1)
        loss = float(F.binary_cross_entropy_with_logits(d, is_target))
    model.train(was)
    expected = math.log(2)
    ev = {"loss": loss, "expected": expected, "rows": 2 * n}
    ok = abs(loss / expected - 1) <= cfg.doctor.loss_tolerance
    detail = (f"domain classifier loss at step 0 is {loss:.4g} on {n} source and {n} target "
              f"rows; expected log 2 = {expected:.4g} (it cannot tell the domains apart yet).")
    if ok:
        return Finding("heads.domain.loss.initial", "pass",
                       "domain head: the loss at step 0 matches log 2", detail, ev)
    return Finding("heads.domain.loss.initial", "warn",
                   "domain head: the loss at step 0 is off log 2", detail, ev,
                   ["scale down the domain classifier's last layer so its logit starts near 0"])


def apply_suggestion(cfg: Experiment, report: DoctorReport, path: str | Path) -> Path:
    """Write ``cfg`` with ``train.optimizer.lr`` set to the doctor's suggestion as a TOML file."""
    import tomli_w

    from trainwell.runs import write_text_atomic
    from trainwell.schema import validate_section

    if report.suggested_lr is None:
        raise ConfigError(
            "doctor --apply: no learning rate to suggest: the LR checks found none (see lr.range "
            "and lr.probe above) or were skipped because loss.task or data.finite failed"
        )
    raw = cfg.to_dict()
    raw.setdefault("train", {}).setdefault("optimizer", {})["lr"] = float(
        f"{report.suggested_lr:.3g}"
    )
    section = cast("type[BaseModel]", type(cfg))  # the root config's own class
    validate_section(section, raw, str(path))  # still a valid config
    return write_text_atomic(path, tomli_w.dumps(raw))
