"""The augmentation operations of lecture 001, on whole batches, on the batch's device.

Every operation takes a batch ``x`` (N, C, H, W) for images or (N, F) for tables, the targets
``y`` (class-probability rows for the operations that mix samples, else untouched), a torch
``Generator`` on the CPU and the :class:`AugmentContext` of what was fitted on the training
split. Its random parameters (N numbers each: a flip's coin, a crop's offset, an affine matrix)
are drawn on the CPU from that generator, in a fixed order, and moved to the batch's device;
per-pixel noise is drawn on the device from a generator seeded by a CPU draw. The same seed
gives the same augmentation on every device, and no operation loops over samples in Python.

Each operation decides per sample, with probability ``p``, whether the sample gets it; a
sample that does not get it keeps its values (a mixing operation pairs it with itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainwell.errors import ConfigError
from trainwell.registry import Registry

#: ITU-R 601 luma weights, torchvision's grayscale for contrast and saturation
LUMA = (0.299, 0.587, 0.114)


@dataclass
class AugmentContext:
    """What the operations know beyond the batch.

    Attributes:
        pixel_shift, pixel_div: the model input is ``(pixels - shift) / div`` (the fitted image
            preprocessing, broadcastable to (C, H, W)); colour jitter works on the pixels in
            [0, 1] and clamps there. None: the input is taken as the pixels, unclamped.
        pca_vectors, pca_values: the eigenvectors (columns, 3x3) and eigenvalues (3,) of the
            training split's channel covariance, for ``pca_color``.
    """

    pixel_shift: Tensor | None = None
    pixel_div: Tensor | None = None
    pca_vectors: Tensor | None = None
    pca_values: Tensor | None = None


OpFn = Callable[[Tensor, "Tensor | None", Any, torch.Generator, AugmentContext],
                "tuple[Tensor, Tensor | None]"]


@dataclass(frozen=True)
class AugmentOp:
    """A registered operation: ``fn(x, y, cfg, generator, context) -> (x, y)``.

    ``kind``: ``image`` (images only), ``any`` (images and tables) or ``mix`` (combines two
    samples of the batch and their targets; runs on whole batches).
    """

    name: str
    kind: str
    fn: OpFn
    doc: str


AUGMENTATIONS: Registry[AugmentOp] = Registry("augmentation", ConfigError)


def _register(name: str, kind: str, doc: str) -> Callable[[OpFn], OpFn]:
    def deco(fn: OpFn) -> OpFn:
        AUGMENTATIONS.register(name)(AugmentOp(name, kind, fn, doc))
        return fn

    return deco


def list_augmentations() -> list[str]:
    """The registered operation names."""
    return AUGMENTATIONS.names()


# ---------------------------------------------------------------------------- draws


def chosen(g: torch.Generator, n: int, p: float) -> Tensor:
    """Which of ``n`` samples get an operation of probability ``p`` (N bools, CPU)."""
    return torch.rand(n, generator=g) < p


def uniform(g: torch.Generator, n: int, low: float, high: float) -> Tensor:
    """``n`` draws of U(low, high) (float64, CPU)."""
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def beta(g: torch.Generator, n: int, alpha: float) -> Tensor:
    """``n`` draws of Beta(alpha, alpha) (float64, CPU): the inverse CDF of uniform draws, so
    that they come from ``g`` (torch's Beta sampler reads the global RNG only)."""
    from scipy.special import betaincinv

    u = torch.rand(n, generator=g, dtype=torch.float64)
    return torch.from_numpy(betaincinv(alpha, alpha, u.numpy()))


def device_generator(g: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from one draw of ``g``, for per-element noise."""
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return torch.Generator(device=device).manual_seed(seed)


def _on(t: Tensor, x: Tensor) -> Tensor:
    return t.to(device=x.device, dtype=x.dtype if t.is_floating_point() else t.dtype)


# ---------------------------------------------------------------------------- geometry


def flip(x: Tensor, which: Tensor, dim: int) -> Tensor:
    """``x`` with the samples where ``which`` is True mirrored along ``dim``."""
    return torch.where(_on(which, x).view(-1, *([1] * (x.ndim - 1))), x.flip(dim), x)


@_register("hflip", "image", "horizontal flip (mirror left-right)")
def _hflip(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
           ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    return flip(x, chosen(g, len(x), cfg.p), -1), y


@_register("vflip", "image", "vertical flip (mirror top-bottom)")
def _vflip(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
           ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    return flip(x, chosen(g, len(x), cfg.p), -2), y


def shifted_windows(x: Tensor, padding: int, dy: Tensor, dx: Tensor) -> Tensor:
    """Windows of ``x``'s size cut from ``x`` padded with ``padding`` zeros on each side, at
    offsets ``dy``, ``dx`` (0 .. 2 padding; ``padding``: the original position), by one gather."""
    n, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    rows = _on(dy, x)[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = _on(dx, x)[:, None] + torch.arange(w, device=x.device)  # (N, W)
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@_register("crop", "image", "random crop of the image padded with zeros")
def _crop(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
          ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n, pad = len(x), cfg.padding
    which = chosen(g, n, cfg.p)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dy, dx = torch.where(which, dy, pad), torch.where(which, dx, pad)
    return shifted_windows(x, pad, dy, dx), y


def warp(x: Tensor, theta: Tensor) -> Tensor:
    """``grid_sample`` of ``x`` with per-sample matrices ``theta`` (N, 2, 3): output position
    ``u`` (normalized, ``align_corners=False``) reads the input at ``theta @ [u, 1]``; bilinear,
    zeros outside."""
    theta = _on(theta, x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def affine_matrices(rotate: Tensor, shear: Tensor, scale: Tensor, tx: Tensor, ty: Tensor,
                    height: int, width: int) -> Tensor:
    """The ``grid_sample`` matrices (N, 2, 3) of the forward maps ``q = A p + t`` in pixels about
    the image centre, ``A = R(rotate) Shear(shear) scale`` (degrees), ``t = (tx W, ty H)``: the
    content moves right by ``tx W`` pixels and down by ``ty H``, turns by ``rotate`` degrees,
    grows by ``scale``. Inverted in closed form and taken to normalized coordinates."""
    r, s = torch.deg2rad(rotate.double()), torch.deg2rad(shear.double())
    cos, sin, tan, k = torch.cos(r), torch.sin(r), torch.tan(s), scale.double()
    # A = R @ [[1, tan], [0, 1]] @ k I
    a11, a12 = k * cos, k * (cos * tan - sin)
    a21, a22 = k * sin, k * (sin * tan + cos)
    det = a11 * a22 - a12 * a21
    i11, i12, i21, i22 = a22 / det, -a12 / det, -a21 / det, a11 / det
    hw, hh = width / 2.0, height / 2.0  # pixels per normalized unit
    # p_norm = D^-1 A^-1 (D q_norm - t), D = diag(W/2, H/2)
    px, py = tx.double() * width, ty.double() * height
    theta = torch.stack([
        torch.stack([i11, i12 * hh / hw, -(i11 * px + i12 * py) / hw], -1),
        torch.stack([i21 * hw / hh, i22, -(i21 * px + i22 * py) / hh], -1),
    ], 1)
    return theta.float()


@_register("affine", "image",
           "rotation, translation, scale and shear in one matrix, one grid_sample per batch")
def _affine(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
            ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    which = chosen(g, n, cfg.p).double()
    rotate = uniform(g, n, -cfg.rotate, cfg.rotate) * which
    shear = uniform(g, n, -cfg.shear, cfg.shear) * which
    lo, hi = cfg.scale
    scale = 1 + (uniform(g, n, lo, hi) - 1) * which
    tx = uniform(g, n, -cfg.translate, cfg.translate) * which
    ty = uniform(g, n, -cfg.translate, cfg.translate) * which
    return warp(x, affine_matrices(rotate, shear, scale, tx, ty, h, w)), y


def crop_matrices(cw: Tensor, ch: Tensor, cx: Tensor, cy: Tensor) -> Tensor:
    """``grid_sample`` matrices (N, 2, 3) reading the box of width ``cw`` and height ``ch``
    (fractions of the image) centred at ``(cx, cy)`` (normalized, -1 .. 1) into the whole
    output."""
    zero = torch.zeros_like(cw)
    return torch.stack([torch.stack([cw, zero, cx], -1),
                        torch.stack([zero, ch, cy], -1)], 1).float()


@_register("resized_crop", "image",
           "a random box (area fraction, aspect ratio) resized to the image's size")
def _resized_crop(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
                  ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    which = chosen(g, n, cfg.p)
    area = uniform(g, n, *cfg.scale)
    ratio = torch.exp(uniform(g, n, math.log(cfg.ratio[0]), math.log(cfg.ratio[1])))
    cw = torch.sqrt(area * ratio * h / w).clamp(max=1.0)  # box width / W: w_px / h_px = ratio
    ch = torch.sqrt(area / ratio * w / h).clamp(max=1.0)
    cx = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * (1 - cw)
    cy = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * (1 - ch)
    one, zero = torch.ones_like(cw), torch.zeros_like(cw)
    cw, ch = torch.where(which, cw, one), torch.where(which, ch, one)
    cx, cy = torch.where(which, cx, zero), torch.where(which, cy, zero)
    return warp(x, crop_matrices(cw, ch, cx, cy)), y


# ---------------------------------------------------------------------------- colour


def to_pixels(x: Tensor, ctx: AugmentContext) -> Tensor:
    if ctx.pixel_shift is None or ctx.pixel_div is None:
        return x
    return x * _on(ctx.pixel_div, x) + _on(ctx.pixel_shift, x)


def from_pixels(p: Tensor, ctx: AugmentContext) -> Tensor:
    if ctx.pixel_shift is None or ctx.pixel_div is None:
        return p
    return (p - _on(ctx.pixel_shift, p)) / _on(ctx.pixel_div, p)


def gray(p: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of RGB pixels; a single channel is its own."""
    if p.shape[1] != 3:
        return p.mean(1, keepdim=True)
    r, g_, b = LUMA
    return (r * p[:, 0:1] + g_ * p[:, 1:2] + b * p[:, 2:3])


def jitter_colors(p: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor,
                  clamp: bool) -> Tensor:
    """Brightness, contrast, saturation factors (N each) on pixels ``p``, in that order:
    ``b p``; ``c p + (1 - c) mean(gray(p))``; ``s p + (1 - s) gray(p)``; clamped to [0, 1]
    after each when ``clamp``."""
    def fix(t: Tensor) -> Tensor:
        return t.clamp(0.0, 1.0) if clamp else t

    def col(f: Tensor) -> Tensor:
        return _on(f, p).view(-1, 1, 1, 1)

    p = fix(p * col(brightness))
    c = col(contrast)
    p = fix(c * p + (1 - c) * gray(p).mean((1, 2, 3), keepdim=True))
    s = col(saturation)
    return fix(s * p + (1 - s) * gray(p))


@_register("color", "image", "brightness, contrast and saturation jitter")
def _color(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
           ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n = len(x)
    which = chosen(g, n, cfg.p).double()
    factors = []
    for v in (cfg.brightness, cfg.contrast, cfg.saturation):
        f = uniform(g, n, max(0.0, 1 - v), 1 + v)
        factors.append(1 + (f - 1) * which)
    b, c, s = factors
    p = jitter_colors(to_pixels(x, ctx), b, c, s, clamp=ctx.pixel_shift is not None)
    return from_pixels(p, ctx), y


def fit_pca_color(x: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvectors (columns) and eigenvalues of the 3x3 covariance of the pixels of ``x``
    (N, 3, H, W), largest first (float64)."""
    flat = x.double().permute(1, 0, 2, 3).reshape(3, -1)
    cov = torch.cov(flat)
    values, vectors = torch.linalg.eigh(cov)
    order = torch.argsort(values, descending=True)
    return vectors[:, order], values[order].clamp(min=0.0)


def pca_offsets(alpha: Tensor, vectors: Tensor, values: Tensor) -> Tensor:
    """AlexNet's colour offsets ``sum_i alpha_i lambda_i p_i`` (N, 3) for ``alpha`` (N, 3)."""
    return (alpha.double() * values.double()) @ vectors.double().T


@_register("pca_color", "image",
           "AlexNet lighting: a colour offset along the training pixels' principal components")
def _pca_color(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
               ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    if ctx.pca_vectors is None or ctx.pca_values is None:
        raise ConfigError("augment.pca_color is not fitted: fit it on the training split first")
    n = len(x)
    which = chosen(g, n, cfg.p).double()
    alpha = torch.randn(n, 3, generator=g, dtype=torch.float64) * cfg.std * which[:, None]
    offset = pca_offsets(alpha, ctx.pca_vectors, ctx.pca_values)
    return x + _on(offset, x)[:, :, None, None], y


# ---------------------------------------------------------------------------- erasing


def boxes_mask(top: Tensor, left: Tensor, height: Tensor, width: Tensor, h: int, w: int,
               device: torch.device) -> Tensor:
    """(N, H, W) bools: True inside the box of each sample (rows ``top`` .. ``top + height``,
    clipped to the image); boxes given as (N,) or (N, K) (any of K boxes)."""
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    top, left = top.to(device), left.to(device)
    height, width = height.to(device), width.to(device)
    if top.ndim == 1:
        top, left, height, width = top[:, None], left[:, None], height[:, None], width[:, None]
    in_rows = (rows >= top[..., None]) & (rows < (top + height)[..., None])  # (N, K, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + width)[..., None])  # (N, K, W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).any(1)


@_register("cutout", "image", "zero squares centred anywhere in the image")
def _cutout(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
            ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    which = chosen(g, n, cfg.p)
    cy = torch.randint(0, h, (n, cfg.n), generator=g)
    cx = torch.randint(0, w, (n, cfg.n), generator=g)
    size = torch.full((n, cfg.n), cfg.size) * which[:, None]
    mask = boxes_mask(cy - cfg.size // 2, cx - cfg.size // 2, size, size, h, w, x.device)
    return x.masked_fill(mask[:, None], 0.0), y


@_register("erasing", "image", "random erasing: a rectangle inside the image filled with a value")
def _erasing(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
             ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    which = chosen(g, n, cfg.p)
    area = uniform(g, n, *cfg.scale) * h * w
    ratio = torch.exp(uniform(g, n, math.log(cfg.ratio[0]), math.log(cfg.ratio[1])))
    eh = torch.sqrt(area * ratio).round().long().clamp(1, h)  # ratio = height / width
    ew = torch.sqrt(area / ratio).round().long().clamp(1, w)
    top = (torch.rand(n, generator=g, dtype=torch.float64) * (h - eh + 1)).floor().long()
    left = (torch.rand(n, generator=g, dtype=torch.float64) * (w - ew + 1)).floor().long()
    mask = boxes_mask(top, left, eh * which, ew * which, h, w, x.device)[:, None]
    if cfg.value == "random":
        fill = torch.randn(x.shape, generator=device_generator(g, x.device), device=x.device,
                           dtype=x.dtype)
        return torch.where(mask, fill, x), y
    return x.masked_fill(mask, float(cfg.value)), y


@_register("noise", "any", "Gaussian noise added to every standardized input")
def _noise(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
           ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n = len(x)
    scale = chosen(g, n, cfg.p).double() * cfg.std
    noise = torch.randn(x.shape, generator=device_generator(g, x.device), device=x.device,
                        dtype=x.dtype)
    return x + noise * _on(scale, x).view(-1, *([1] * (x.ndim - 1))), y


# ---------------------------------------------------------------------------- mixing


def mix_targets(y: Tensor, lam: Tensor, perm: Tensor) -> Tensor:
    """``lam y + (1 - lam) y[perm]`` row by row (``lam`` (N,))."""
    lam_y = _on(lam, y).view(-1, *([1] * (y.ndim - 1)))
    return lam_y * y + (1 - lam_y) * y[_on(perm, y)]


@_register("mixup", "mix", "mixup: convex combinations of two samples and of their targets")
def _mixup(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
           ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n = len(x)
    which = chosen(g, n, cfg.p)
    draws = beta(g, n, cfg.alpha)
    # each row keeps the larger share of its own sample (fastai's MixUp): the same pairs and
    # targets in distribution, and an augmented row still shows the sample it came from
    lam = torch.where(which, torch.maximum(draws, 1 - draws), 1.0)
    perm = torch.randperm(n, generator=g)
    lam_x = _on(lam, x).view(-1, *([1] * (x.ndim - 1)))
    x = lam_x * x + (1 - lam_x) * x[_on(perm, x)]
    return x, (mix_targets(y, lam, perm) if y is not None else None)


@_register("cutmix", "mix", "cutmix: a box of another sample pasted in, targets mixed by area")
def _cutmix(x: Tensor, y: Tensor | None, cfg: Any, g: torch.Generator,
            ctx: AugmentContext) -> tuple[Tensor, Tensor | None]:
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    which = chosen(g, n, cfg.p)
    cut = torch.sqrt(1 - beta(g, n, cfg.alpha))
    bh, bw = (cut * h).round().long(), (cut * w).round().long()
    cy = torch.randint(0, h, (n,), generator=g)
    cx = torch.randint(0, w, (n,), generator=g)
    perm = torch.randperm(n, generator=g)
    top, left = (cy - bh // 2).clamp(0, h), (cx - bw // 2).clamp(0, w)
    bottom, right = (cy - bh // 2 + bh).clamp(0, h), (cx - bw // 2 + bw).clamp(0, w)
    bh, bw = (bottom - top) * which, (right - left) * which
    lam = 1 - (bh * bw).double() / (h * w)  # the pasted area decides the targets
    mask = boxes_mask(top, left, bh, bw, h, w, x.device)[:, None]
    x = torch.where(mask, x[_on(perm, x)], x)
    return x, (mix_targets(y, lam, perm) if y is not None else None)


__all__ = [
    "AUGMENTATIONS",
    "LUMA",
    "AugmentContext",
    "AugmentOp",
    "affine_matrices",
    "beta",
    "boxes_mask",
    "chosen",
    "crop_matrices",
    "fit_pca_color",
    "flip",
    "jitter_colors",
    "list_augmentations",
    "mix_targets",
    "pca_offsets",
    "shifted_windows",
    "warp",
]
