"""The ``[tta]`` section: test-time augmentation and Monte Carlo passes (docs/tta.md).

Like every section model, this module imports no torch: ``trainwell check`` validates it
cheaply. The views themselves are in :mod:`trainwell.data.augment.tta`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from trainwell.errors import ConfigError
from trainwell.schema import Section

#: fastai's default blend of the plain prediction (``Learner.tta(beta=0.25)``)
DEFAULT_BETA = 0.25


class TTAConfig(Section):
    """``[tta]``: which views test-time augmentation averages, and whether the run reports its
    test metrics with them.

    The views come from the training augmentation (``[augment]``): the identity, the flips that
    were trained, and shifts by ``shift`` pixels up, down, left and right when crops or
    translations were trained. ``trainwell predict --tta`` uses this section of the run's
    config whether or not ``enabled`` is set.
    """

    enabled: bool = Field(
        default=False,
        description="at the end of the run, also report the test metrics with TTA "
                    "(results.json test_tta, and the report)",
    )
    beta: float = Field(
        default=DEFAULT_BETA, ge=0.0, le=1.0,
        description="weight of the plain prediction: final = beta * plain + (1 - beta) * "
                    "mean over the views (fastai's convention); 0: the views' mean only",
    )
    flips: bool = Field(
        default=True, description="add the flipped views of the flips that were trained"
    )
    shift: Literal["auto"] | int = Field(
        default="auto",
        description="pixels of the shifted views; auto: the largest shift training used "
                    "(augment crop padding or translation), 0: no shifted views",
    )
    mc_samples: int = Field(
        default=0, ge=0,
        description="also report the test metrics averaged over this many passes with the "
                    "stochastic layers sampling (Monte Carlo dropout); 0: not",
    )

    @field_validator("shift", mode="before")
    @classmethod
    def _shift(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise ValueError("must be 'auto' or a whole number of pixels >= 0")


def trained_geometry_of(config: Any, input_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """What a config's training augmentation does to geometry: ``{"hflip": bool, "vflip":
    bool, "max_shift": pixels, ...}`` (``trained_geometry`` of ``[augment]``; a translation
    counts in pixels only with the ``input_shape``); ``{}`` for a config without
    ``[augment]``."""
    augment = getattr(config, "augment", None)
    if augment is None:
        return {}
    from trainwell.data.augment.config import trained_geometry

    return dict(trained_geometry(augment, input_shape))


def check_tta(config: Any) -> None:
    """``[tta]`` against the rest of a config, at load: a fixed ``shift`` within the trained
    range, and no TTA / Monte Carlo metrics for a run with ``[heads]`` or ``[domain]``. A shift
    that only a translation (a fraction of the image) may allow is checked once the image size
    is known, still before the run directory exists."""
    tta: TTAConfig = config.tta
    if (tta.enabled or tta.mc_samples) and (config.heads or config.domain is not None):
        field = "tta.enabled" if tta.enabled else "tta.mc_samples"
        raise ConfigError(
            f"{field} does not apply with [heads] or [domain] yet: test-time averaging "
            "reports one head's metrics; remove it or the heads"
        )
    if tta.shift == "auto" or tta.shift == 0:
        return
    affine = getattr(getattr(config, "augment", None), "affine", None)
    if affine is not None and affine.p > 0 and affine.translate:
        return  # a translation: its pixels depend on the image size
    most = int(trained_geometry_of(config).get("max_shift") or 0)
    if tta.shift > most:
        raise ConfigError(
            f"tta.shift = {tta.shift} pixels is beyond the shifts training draws (at most "
            f"{most}: augment crop padding / translation); a model is not invariant to shifts "
            f"it never saw: use a shift up to {most}, or 'auto'"
        )


__all__ = ["DEFAULT_BETA", "TTAConfig", "check_tta", "trained_geometry_of"]
