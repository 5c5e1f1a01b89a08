"""The doctor on a whole experiment config: prepare the data, build the model, run the checks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.diagnose.recipe import doctor
from trainwell.diagnose.report import DoctorReport
from trainwell.errors import ConfigError

if TYPE_CHECKING:
    from trainwell.config import Config

log = logging.getLogger(__name__)

# train.loss canonical names -> the doctor's names
_LOSS = {
    "auto": None,
    "l1": "l1",
    "l2": "mse",
    "huber": "huber",
    "bce": "bce",
    "cross_entropy": "cross_entropy",
    "hinge": "hinge",
}


def default_out_dir(cfg: Config) -> Path:
    """``<runs_dir>/<name>-doctor``: where ``trainwell doctor`` writes when no ``--out`` is given."""
    if cfg.name:
        name = cfg.name
    else:
        src = cfg.data.source.split(":", 1)[-1]
        name = f"{Path(src).stem or 'data'}-{cfg.model.arch.split(':')[-1]}"
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.") or "run"
    return Path(cfg.runs_dir) / f"{safe}-doctor"


def doctor_from_config(
    cfg: Config,
    *,
    gradcheck: bool = False,
    out_dir: str | Path | None = None,
    prepared: Any = None,
    model: Any = None,
) -> DoctorReport:
    """Prepare the data and build the model as ``trainwell train`` would, then run the doctor.

    Args:
        cfg: a loaded :class:`~trainwell.config.Config`.
        gradcheck: also run the finite-difference gradient check.
        out_dir: where pictures go (``doctor.json`` is written by the caller).
        prepared: an already prepared dataset (skips ``prepare``).
        model: an already built model (skips ``build_model``).
    """
    import torch

    from trainwell.data import prepare
    from trainwell.nn import build_model
    from trainwell.train.optim import make_optimizer

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
    opt_cfg = cfg.train.optimizer
    opt_dict = opt_cfg.model_dump(exclude_none=True)

    def factory(params: Any, lr: float) -> torch.optim.Optimizer:
        return make_optimizer({**opt_dict, "lr": lr, "fused": False}, params)

    lr = float(opt_cfg.kwargs()["lr"])
    loss_name = getattr(cfg.train.loss, "name", cfg.train.loss)
    if loss_name not in _LOSS:
        raise ConfigError(
            f"doctor: train.loss {loss_name!r} is not one the doctor knows: {', '.join(_LOSS)}"
        )
    return doctor(
        model,
        prepared,
        task=prepared.task,
        loss=_LOSS[loss_name],
        optimizer=factory,
        lr=lr,
        config=cfg.doctor,
        gradcheck=gradcheck or cfg.doctor.gradcheck,
        seed=cfg.seed,
        out_dir=out_dir,
    )


def apply_suggestion(cfg: Config, report: DoctorReport, path: str | Path) -> Path:
    """Write ``cfg`` with ``train.optimizer.lr`` set to the doctor's suggestion as a new TOML file."""
    import tomli_w

    from trainwell.config import load_config
    from trainwell.runs import write_text_atomic

    if report.suggested_lr is None:
        raise ConfigError(
            "doctor --apply: no learning rate to suggest: the LR checks found none (see lr.range "
            "and lr.probe above) or were skipped because loss.task or data.finite failed"
        )
    raw = cfg.to_dict()
    raw.setdefault("train", {}).setdefault("optimizer", {})["lr"] = float(
        f"{report.suggested_lr:.3g}"
    )
    load_config(raw)  # still a valid config
    return write_text_atomic(path, tomli_w.dumps(raw))
