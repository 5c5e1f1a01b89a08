"""Test-time augmentation views: a deterministic set derived from the training augmentation.

Lecture 001: "Training: add randomness; Testing: marginalize over the randomness" (fixed crops
and flips, averaged). The views are those the model saw in training and nothing more: the
identity; horizontal / vertical flips only when they were trained; shifts by ``s`` pixels
(right, left, down, up) only when random crops with padding or translations were trained, with
``s`` at most the largest shift training drew. A model trained without shifts loses accuracy
under shifted views (0.8 points on the 8x8 digits for one pixel), so none is ever invented.

A shifted view is the crop that a random crop with padding would take at a fixed offset:
the image padded with zeros (the model input's zero, as training's padding) by ``s`` on every
side, then the ``H x W`` window at offset ``(s - dy, s - dx)``, i.e.
``view[..., i, j] = x[..., i - dy, j - dx]`` inside the image, 0 outside. Views apply to a whole
batch ``(N, C, H, W)`` at once, on the batch's device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812 - torch's own spelling

from trainwell.errors import ConfigError


@dataclass(frozen=True)
class View:
    """One test-time view: flips first, then a shift by ``(dx, dy)`` pixels (``dx > 0``: the
    content moves right; ``dy > 0``: down)."""

    hflip: bool = False
    vflip: bool = False
    dx: int = 0
    dy: int = 0

    @property
    def name(self) -> str:
        parts = [p for p, on in (("hflip", self.hflip), ("vflip", self.vflip)) if on]
        if self.dx or self.dy:
            parts.append(f"shift({self.dx:+d},{self.dy:+d})")
        return "+".join(parts) or "identity"

    @property
    def is_identity(self) -> bool:
        return not (self.hflip or self.vflip or self.dx or self.dy)

    def __call__(self, x: Tensor) -> Tensor:
        """The view of a batch of images ``(N, C, H, W)`` (or one image ``(C, H, W)``)."""
        if self.hflip:
            x = torch.flip(x, dims=[-1])
        if self.vflip:
            x = torch.flip(x, dims=[-2])
        if self.dx or self.dy:
            x = shift(x, self.dx, self.dy)
        return x


IDENTITY = View()


def shift(x: Tensor, dx: int, dy: int) -> Tensor:
    """``x`` moved by ``dx`` columns and ``dy`` rows, zeros where nothing moved in: the
    ``H x W`` crop at offset ``(p - dy, p - dx)`` of ``x`` padded with ``p = max(|dx|, |dy|)``
    zeros on every side."""
    h, w = x.shape[-2], x.shape[-1]
    p = max(abs(dx), abs(dy))
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p))
    top, left = p - dy, p - dx
    return padded[..., top : top + h, left : left + w]


def _as_pair(value: Any) -> tuple[int, int]:
    """A trained shift as ``(columns, rows)``: one number for both, or a pair."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value or 0), int(value or 0)


def trained_shift(geometry: Mapping[str, Any]) -> tuple[int, int]:
    """The largest shift in pixels, ``(columns, rows)``, that training drew."""
    return _as_pair(geometry.get("max_shift", 0))


def tta_views(
    geometry: Mapping[str, Any], *, shift: int | str = "auto", flips: bool = True
) -> list[View]:
    """The views of test-time augmentation for a model trained with ``geometry``
    (``{"hflip": bool, "vflip": bool, "max_shift": pixels, ...}``, see ``trained_geometry``).

    Args:
        geometry: what the training augmentation did; ``{}``: no augmentation.
        shift: pixels of the shifted views, at most the trained shift; ``"auto"``: the
            trained shift itself; 0: none.
        flips: add the flipped views of the trained flips.

    Raises:
        ConfigError: ``shift`` exceeds what training drew.

    Example:
        >>> [v.name for v in tta_views({"hflip": True, "max_shift": 1})]  # doctest: +ELLIPSIS
        ['identity', 'shift(+1,+0)', 'shift(-1,+0)', 'shift(+0,+1)', 'shift(+0,-1)', 'hflip', ...]
    """
    sx, sy = trained_shift(geometry)
    if shift != "auto":
        s = int(shift)
        if s > max(sx, sy):
            raise ConfigError(
                f"tta.shift = {s} pixels is beyond the shifts training drew "
                f"(at most {max(sx, sy)}: from augment crop padding / translation); a model "
                "is not invariant to shifts it never saw: use a shift up to "
                f"{max(sx, sy)} or 'auto'"
            )
        sx, sy = min(s, sx), min(s, sy)
    moves = [(0, 0)]
    moves += [(d, 0) for d in (sx, -sx) if sx] + [(0, d) for d in (sy, -sy) if sy]
    flipped = [(False, False)]
    if flips and geometry.get("hflip"):
        flipped.append((True, False))
    if flips and geometry.get("vflip"):
        flipped.append((False, True))
    return [View(h, v, dx, dy) for h, v in flipped for dx, dy in moves]


def identity_reason(
    geometry: Mapping[str, Any], *, shift: int | str = "auto", flips: bool = True
) -> str:
    """Why test-time augmentation has the identity view only (for the warning that says so)."""
    if not (geometry.get("hflip") or geometry.get("vflip") or any(trained_shift(geometry))):
        return ("no flip, crop or translation was trained ([augment]), so test-time "
                "augmentation uses the identity view only: its predictions equal the plain "
                "ones (shifted views of a model never trained on shifts lose accuracy)")
    why_flips = "tta.flips = false" if flips is False else "no flip was trained"
    why_shift = "tta.shift = 0" if shift == 0 else "no crop or translation was trained"
    return (f"{why_flips} and {why_shift}, so test-time augmentation uses the identity view "
            "only: its predictions equal the plain ones")


def check_image_input(input_shape: tuple[int, ...] | list[int], what: str) -> None:
    """Views flip and shift images: a run fitted on a table (or sequences) is refused."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"{what}: test-time augmentation flips and shifts images (C, H, W), but this run's "
            f"input has shape {tuple(input_shape)} (a table or sequence); there is nothing to "
            "flip or shift: predict without it"
        )


__all__ = ["IDENTITY", "View", "check_image_input", "identity_reason", "shift",
           "trained_shift", "tta_views"]
