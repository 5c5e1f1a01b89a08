"""Fitted preprocessing steps for images (lectures 001-002, "Data Preprocessing for Images").

- ``mean_image``: subtract the training mean image, a (C, H, W) array (AlexNet);
- ``channel_mean``: subtract the training mean of each channel, C numbers (VGGNet);
- ``channel_mean_std``: also divide by each channel's std (ResNet).

Statistics are fitted with scikit-learn's ``StandardScaler.partial_fit`` over batches of the
training split, so images loaded lazily are fitted without holding them all in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from trainwell.data.steps import Step, register_step
from trainwell.errors import DataError, NotFittedError


class ImageStep(Step):
    """Base: ``fit(batches)`` on training images (N, C, H, W), ``transform`` any (..., C, H, W)."""

    per_channel: ClassVar[bool] = True
    with_std: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.fitted_ = False

    def fit(self, batches: Iterable[np.ndarray]) -> ImageStep:
        from sklearn.preprocessing import StandardScaler

        sc = StandardScaler(with_std=self.with_std)
        shape = None
        for batch in batches:
            batch = np.asarray(batch, dtype=np.float64)
            shape = batch.shape[1:]
            if self.per_channel:  # (N, C, H, W) -> (N*H*W, C)
                flat = batch.transpose(0, 2, 3, 1).reshape(-1, batch.shape[1])
            else:  # (N, C, H, W) -> (N, C*H*W)
                flat = batch.reshape(batch.shape[0], -1)
            if flat.shape[0]:
                sc.partial_fit(flat)
        if shape is None or not hasattr(sc, "mean_"):
            raise DataError(f"preprocessing step {self.name!r} got no training images to fit on")
        c = shape[0]
        if self.per_channel:
            self.shift_ = sc.mean_.reshape(c, 1, 1).astype(np.float64)
            scale = sc.scale_ if self.with_std else np.ones(c)
            self.div_ = np.asarray(scale, dtype=np.float64).reshape(c, 1, 1)
        else:
            self.shift_ = sc.mean_.reshape(shape).astype(np.float64)
            self.div_ = np.ones((1, 1, 1))
        self.shape_ = tuple(int(s) for s in shape)
        self.fitted_ = True
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply to float32 images (..., C, H, W); returns float32."""
        if not self.fitted_:
            raise NotFittedError(f"preprocessing step {self.name!r} is used before it was fitted")
        if tuple(x.shape[-3:]) != self.shape_:
            raise DataError(
                f"preprocessing step {self.name!r} was fitted on images of shape {self.shape_}; "
                f"got {tuple(x.shape[-3:])}"
            )
        shift = self.shift_.astype(np.float32)
        div = self.div_.astype(np.float32)
        return ((x.astype(np.float32) - shift) / div).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift_, "div": self.div_}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape_)}

    def load(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> ImageStep:
        self.shift_, self.div_ = arrays["shift"], arrays["div"]
        self.shape_ = tuple(meta["shape"])
        self.fitted_ = True
        return self


@register_step("mean_image", family="image")
class MeanImage(ImageStep):
    """Subtract the training mean image (C, H, W)."""

    per_channel = False


@register_step("channel_mean", "per_channel_mean", family="image")
class ChannelMean(ImageStep):
    """Subtract the training per-channel mean."""


@register_step("channel_mean_std", "per_channel_mean_std", family="image")
class ChannelMeanStd(ImageStep):
    """Subtract the per-channel mean, divide by the per-channel std."""

    with_std = True


__all__ = ["ChannelMean", "ChannelMeanStd", "ImageStep", "MeanImage"]
