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
    """
    import torch

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
    )


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
