"""The ``[augment]`` section: one optional sub-table per operation of lecture 001.

Each operation is named after the lecture (``hflip``, ``crop``, ``affine``, ``color``,
``pca_color``, ``cutout``, ``mixup`` ...) and takes ``p``, the probability that a sample gets it.
The operations run in one fixed order, :data:`ORDER`, whatever the order of the tables in the
file. This module imports no torch: ``trainwell check`` validates the section without it. The
checks that need the data (an image operation on a table, a cutout larger than the image) are in
:func:`check_for_data`, called once the data is prepared and before any run directory exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator

from trainwell.errors import ConfigError, DataError
from trainwell.schema import Section

#: the order the operations run in: geometry, colour, erasing, noise, then the ops that mix
#: two samples (mixup, cutmix), whose targets become class-probability rows
ORDER: tuple[str, ...] = (
    "hflip",
    "vflip",
    "crop",
    "resized_crop",
    "affine",
    "color",
    "pca_color",
    "cutout",
    "erasing",
    "noise",
    "mixup",
    "cutmix",
)
#: operations that only make sense on images (C, H, W)
IMAGE_OPS: frozenset[str] = frozenset(ORDER) - {"noise", "mixup"}
#: operations that combine two samples of a batch: they run on whole batches (also when the
#: images are read lazily) and change the targets
MIXING_OPS: frozenset[str] = frozenset({"mixup", "cutmix"})


def _range(v: list[float], name: str, low: float, high: float | None = None) -> list[float]:
    if len(v) != 2 or v[0] > v[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high; got {v}")
    if v[0] < low or (high is not None and v[1] > high):
        bound = f"{low:g} .. {high:g}" if high is not None else f">= {low:g}"
        raise ValueError(f"{name} must lie in {bound}; got {v}")
    return [float(v[0]), float(v[1])]


def _positive_range(v: list[float], name: str, high: float | None = None) -> list[float]:
    """A ``[low, high]`` range of an area share or an aspect ratio: above 0, at most ``high``."""
    v = _range(v, name, 0.0, high)
    if v[0] <= 0:
        raise ValueError(f"{name} must be above 0; got {v}")
    return v


class OpConfig(Section):
    """Base of an operation's table: ``p``, the probability that a sample gets it."""

    p: float = Field(default=1.0, ge=0.0, le=1.0, description="probability per sample")


class BoxOpConfig(OpConfig):
    """Base of the operations drawing a box: ``scale`` (its area share, in (0, 1]) and
    ``ratio`` (its aspect ratio, above 0), each a ``[lo, hi]`` range."""

    @field_validator("scale", check_fields=False)
    @classmethod
    def _scale(cls, v: list[float]) -> list[float]:
        return _positive_range(v, "scale", 1.0)

    @field_validator("ratio", check_fields=False)
    @classmethod
    def _ratio(cls, v: list[float]) -> list[float]:
        return _positive_range(v, "ratio")


class FlipConfig(OpConfig):
    """``hflip`` / ``vflip``: mirror the image left-right / top-bottom."""

    p: float = Field(default=0.5, ge=0.0, le=1.0, description="probability per sample")


class CropConfig(OpConfig):
    """``crop``: pad ``padding`` pixels of zeros on each side, then cut a window of the original
    size at a random integer offset: a shift of up to ``padding`` pixels each way."""

    padding: int = Field(default=4, ge=1, description="pixels of zeros on each side")


class ResizedCropConfig(BoxOpConfig):
    """``resized_crop``: a box of a random fraction ``scale`` of the area and aspect ratio in
    ``ratio`` (log-uniform), anywhere inside the image, resized back to the image's size."""

    scale: list[float] = Field(default=[0.08, 1.0], description="area fraction [lo, hi]")
    ratio: list[float] = Field(default=[3 / 4, 4 / 3], description="width / height [lo, hi]")


class AffineConfig(OpConfig):
    """``affine``: rotation, translation, scale and shear drawn per sample, composed into one
    matrix and applied with one bilinear ``grid_sample`` per batch (zeros outside)."""

    rotate: float = Field(default=0.0, ge=0.0, le=180.0, description="degrees, U(-r, r)")
    translate: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="fraction of width / height, U(-t, t) each"
    )
    scale: list[float] = Field(default=[1.0, 1.0], description="zoom factor [lo, hi]")
    shear: float = Field(default=0.0, ge=0.0, lt=90.0, description="degrees, U(-s, s)")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: list[float]) -> list[float]:
        v = _range(v, "scale", 0.0)
        if v[0] <= 0:
            raise ValueError(f"scale must be above 0; got {v}")
        return v

    @model_validator(mode="after")
    def _something(self) -> AffineConfig:
        if not (self.rotate or self.translate or self.shear or self.scale != [1.0, 1.0]):
            raise ValueError(
                "affine changes nothing: set rotate, translate, shear or a scale other than [1, 1]"
            )
        return self


class ColorConfig(OpConfig):
    """``color``: brightness, contrast and saturation factors drawn from U(1 - v, 1 + v), applied
    in that order to the pixels in [0, 1] (clamped), as torchvision's formulas do."""

    brightness: float = Field(default=0.0, ge=0.0, le=1.0)
    contrast: float = Field(default=0.0, ge=0.0, le=1.0)
    saturation: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self) -> ColorConfig:
        if not (self.brightness or self.contrast or self.saturation):
            raise ValueError("color changes nothing: set brightness, contrast or saturation")
        return self


class PcaColorConfig(OpConfig):
    """``pca_color``: AlexNet's "lighting": add ``sum_i alpha_i lambda_i p_i`` to every pixel,
    ``p_i``, ``lambda_i`` the eigenvectors and eigenvalues of the training split's 3x3 channel
    covariance, ``alpha_i ~ N(0, std)`` per sample."""

    std: float = Field(default=0.1, gt=0.0, description="std of alpha (AlexNet: 0.1)")


class CutoutConfig(OpConfig):
    """``cutout``: zero ``n`` squares of side ``size`` centred anywhere in the image (clipped at
    its border)."""

    size: int = Field(default=8, ge=1, description="side of each square in pixels")
    n: int = Field(default=1, ge=1, description="squares per image")


class ErasingConfig(BoxOpConfig):
    """``erasing``: random erasing: a rectangle of a fraction ``scale`` of the area and aspect
    ratio in ``ratio``, inside the image, filled with ``value`` (a number, or ``"random"``:
    standard normal noise)."""

    p: float = Field(default=0.5, ge=0.0, le=1.0, description="probability per sample")
    scale: list[float] = Field(default=[0.02, 0.33], description="area fraction [lo, hi]")
    ratio: list[float] = Field(default=[0.3, 3.3], description="height / width [lo, hi]")
    value: float | str = Field(default=0.0, description='fill: a number or "random"')

    @field_validator("value")
    @classmethod
    def _value(cls, v: float | str) -> float | str:
        if isinstance(v, str) and v != "random":
            raise ValueError(f'value must be a number or "random"; got {v!r}')
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"value must be finite; got {v}")
        return v


class NoiseConfig(OpConfig):
    """``noise``: add Gaussian noise of std ``std`` to every (standardized) input."""

    std: float = Field(default=0.1, gt=0.0)


class MixupConfig(OpConfig):
    """``mixup``: ``x = lam x_i + (1 - lam) x_j`` with the same ``lam ~ Beta(alpha, alpha)`` for
    the targets (class-probability rows); ``regression = true`` mixes regression targets too."""

    alpha: float = Field(default=0.2, gt=0.0)
    regression: bool = Field(
        default=False, description="allow regression: the targets are mixed with the same lam"
    )


class CutmixConfig(OpConfig):
    """``cutmix``: paste a box of another image of the batch; the targets mix by the box's area
    (``lam ~ Beta(alpha, alpha)`` sets the box)."""

    alpha: float = Field(default=1.0, gt=0.0)


class AugmentConfig(Section):
    """The ``[augment]`` section (see docs/augment.md): empty, augmentation is off."""

    hflip: FlipConfig | None = None
    vflip: FlipConfig | None = None
    crop: CropConfig | None = None
    resized_crop: ResizedCropConfig | None = None
    affine: AffineConfig | None = None
    color: ColorConfig | None = None
    pca_color: PcaColorConfig | None = None
    cutout: CutoutConfig | None = None
    erasing: ErasingConfig | None = None
    noise: NoiseConfig | None = None
    mixup: MixupConfig | None = None
    cutmix: CutmixConfig | None = None

    def ops(self) -> dict[str, OpConfig]:
        """The configured operations in the order they run (:data:`ORDER`)."""
        return {name: op for name in ORDER if (op := getattr(self, name)) is not None}

    @property
    def enabled(self) -> bool:
        return bool(self.ops())

    @property
    def mixes(self) -> bool:
        """Whether an operation mixes samples (the targets become probability rows)."""
        return any(name in MIXING_OPS for name in self.ops())


def check_against_config(aug: AugmentConfig, *, task: str, loss: str,
                         loss_tasks: Sequence[str] | None, several_heads: bool,
                         domain: bool) -> None:
    """What the rest of the config says against ``[augment]``, at load time.

    Args:
        aug: the section.
        task: ``data.task`` (``auto`` when inferred from the data).
        loss: ``train.loss``'s canonical name; ``loss_tasks``: the tasks it fits (None: auto).
        several_heads, domain: whether the config has ``[heads]`` / ``[domain]``.

    Raises:
        ConfigError: mixup / cutmix on a regression task or with a regression loss (mixup
            without ``regression = true``), with a classification loss that takes no soft
            targets, with ``[heads]`` or ``[domain]``.
    """
    regression_loss = loss_tasks is not None and "regression" in loss_tasks
    for name in sorted(MIXING_OPS & set(aug.ops())):
        if several_heads or domain:
            section = "[heads]" if several_heads else "[domain]"
            raise ConfigError(
                f"augment.{name} mixes the targets of two samples, which {section} does not "
                f"support (several targets per row); remove augment.{name}"
            )
        if not regression_loss and loss not in ("auto", "cross_entropy", "bce"):
            raise ConfigError(
                f"augment.{name} makes soft targets (class probabilities), which train.loss "
                f"{loss!r} does not take; use 'cross_entropy' (or 'bce' for two classes)"
            )
    check_mixing_task(aug, "regression" if regression_loss else task)


def check_mixing_task(aug: AugmentConfig, task: str) -> None:
    """Refuse mixing on a regression task: cutmix always, mixup unless it says how."""
    if task != "regression":
        return
    if aug.cutmix is not None:
        raise ConfigError(
            "augment.cutmix mixes targets by the pasted area, which has no meaning for a "
            "regression task; remove augment.cutmix"
        )
    if aug.mixup is not None and not aug.mixup.regression:
        raise ConfigError(
            "augment.mixup on a regression task: set augment.mixup.regression = true to mix the "
            "target values with the same lambda as the inputs, or remove augment.mixup"
        )


def check_for_data(aug: AugmentConfig, input_shape: Sequence[int], task: str) -> None:
    """The operations against the prepared data's per-sample shape and task.

    Raises:
        DataError: an image operation on a table; a crop padding or a cutout at least as large
            as the image; pca_color or a saturation jitter on images without 3 channels.
        ConfigError: mixing on a regression task (see :func:`check_mixing_task`).
    """
    ops = aug.ops()
    if len(input_shape) != 3:
        image = [n for n in ops if n in IMAGE_OPS]
        if image:
            raise DataError(
                f"augment.{image[0]} is an image operation, but the data is a table of "
                f"{input_shape[0] if input_shape else 0} features; tables take augment.noise "
                "and augment.mixup"
            )
    else:
        c, h, w = (int(s) for s in input_shape)
        side = min(h, w)
        if aug.crop is not None and aug.crop.padding >= side:
            raise DataError(
                f"augment.crop.padding = {aug.crop.padding} is not smaller than the image "
                f"({h}x{w}): a crop would hold mostly padding; use padding < {side}"
            )
        if aug.cutout is not None and aug.cutout.size > side:
            raise DataError(
                f"augment.cutout.size = {aug.cutout.size} is larger than the image ({h}x{w}); "
                f"use size <= {side}"
            )
        if aug.pca_color is not None and c != 3:
            raise DataError(
                f"augment.pca_color needs 3-channel (RGB) images; these have {c} channel(s)"
            )
        if aug.color is not None and aug.color.saturation and c != 3:
            raise DataError(
                f"augment.color.saturation needs 3-channel (RGB) images; these have {c} "
                "channel(s): use brightness and contrast"
            )
    check_mixing_task(aug, task)


def trained_geometry(cfg: AugmentConfig, input_shape: Sequence[int] | None = None
                     ) -> dict[str, Any]:
    """What geometric variation a model trained with ``cfg`` has seen, for test-time views.

    Returns:
        ``{"hflip": bool, "vflip": bool, "max_shift": pixels, "max_shift_fraction": fraction,
        "rotate": degrees, "scale": [lo, hi], "shear": degrees, "resized_crop": bool,
        "input_shape": [C, H, W] or None}``. ``max_shift`` is the largest shift (pixels, each
        axis) a sample was trained with: the crop padding, or the affine translation times the
        smaller side, whichever is larger (0 when neither is set); ``max_shift_fraction`` the
        same as a fraction of the smaller side (None without an input shape and only a crop).

    Example:
        >>> cfg = AugmentConfig(hflip={}, crop={"padding": 2})
        >>> g = trained_geometry(cfg, (1, 28, 28))
        >>> g["hflip"], g["vflip"], g["max_shift"]
        (True, False, 2)
    """
    side = min(int(input_shape[-2]), int(input_shape[-1])) if input_shape is not None and len(
        input_shape) == 3 else None
    pad = cfg.crop.padding if cfg.crop is not None and cfg.crop.p > 0 else 0
    frac = cfg.affine.translate if cfg.affine is not None and cfg.affine.p > 0 else 0.0
    shift = pad
    if frac and side is not None:
        shift = max(shift, int(math.floor(frac * side + 1e-9)))  # 0.29 * 100 is 28.999...96
    if side:
        fraction: float | None = max(pad / side, frac)
    else:
        fraction = frac if not pad else None
    affine = cfg.affine if cfg.affine is not None and cfg.affine.p > 0 else None
    return {
        "hflip": cfg.hflip is not None and cfg.hflip.p > 0,
        "vflip": cfg.vflip is not None and cfg.vflip.p > 0,
        "max_shift": int(shift),
        "max_shift_fraction": fraction,
        "rotate": affine.rotate if affine is not None else 0.0,
        "scale": list(affine.scale) if affine is not None else [1.0, 1.0],
        "shear": affine.shear if affine is not None else 0.0,
        "resized_crop": cfg.resized_crop is not None and cfg.resized_crop.p > 0,
        "input_shape": [int(s) for s in input_shape] if input_shape is not None else None,
    }


__all__ = [
    "IMAGE_OPS",
    "MIXING_OPS",
    "ORDER",
    "AugmentConfig",
    "check_against_config",
    "check_for_data",
    "check_mixing_task",
    "trained_geometry",
]
