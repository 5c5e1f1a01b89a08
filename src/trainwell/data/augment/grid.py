""""Look at what the model is fed" (lecture 004): training samples beside their augmented views.

:func:`augment_grid_png` draws a few training samples (first row, as preprocessed) and, below
each, the views the augmentation made of it in the first epochs, exactly as the training step
draws (the draws of the first step of epochs 1, 2, 3 ..., per image for images read lazily).
Under each image its target is written; under a view whose target was mixed (mixup, cutmix),
the mixture, e.g. ``0.62 3 + 0.38 8`` (the two largest parts).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainwell.data.augment.augmenter import (
    STREAM_BATCH,
    STREAM_SAMPLE,
    Augmenter,
    augment_generator,
)


def augmented_views(augmenter: Augmenter, x: Tensor, y: Tensor, seed: int, epochs: int,
                    lazy: bool = False) -> list[tuple[Tensor, Tensor | None]]:
    """``(x, y)`` as the training step of step 0 of epochs 1 .. ``epochs`` augments it (with
    ``lazy``: per sample, by ``(seed, epoch, i)``, then the mixing operations on the batch)."""
    out = []
    for epoch in range(1, epochs + 1):
        xa = x
        if lazy:
            xa = torch.cat([augmenter(x[i:i + 1], None,
                                      augment_generator(seed, epoch, i, STREAM_SAMPLE),
                                      mixing=False)[0] for i in range(len(x))])
        g = augment_generator(seed, epoch, 0, STREAM_BATCH)
        out.append(augmenter(xa, y, g, per_sample=not lazy))
    return out


def label_text(y: Tensor, classes: list[Any] | None, task: str) -> str:
    """A target as text: a class, a value, or a mixture ``0.62 3 + 0.38 8`` (largest first)."""
    def name(i: int) -> str:
        return str(classes[i]) if classes is not None and i < len(classes) else str(i)

    if task == "regression":
        return ", ".join(f"{float(v):.3g}" for v in y.reshape(-1)[:2])
    if not y.is_floating_point():
        return name(int(y.reshape(-1)[0]))
    if task == "binary" or y.numel() == 1:
        v = float(y.reshape(-1)[0])
        if v in (0.0, 1.0):
            return name(int(v))
        return f"{v:.2f} {name(1)} + {1 - v:.2f} {name(0)}"
    top = torch.argsort(y, descending=True)[:2]
    parts = [(float(y[i]), int(i)) for i in top if float(y[i]) > 0.005]
    if len(parts) == 1 and parts[0][0] > 0.995:
        return name(parts[0][1])
    return " + ".join(f"{w:.2f} {name(i)}" for w, i in parts)


def label_fontsize(text: str, cell_chars: int = 20, largest: float = 7.0) -> float:
    """Points for a label under a cell: ``largest`` when ``text`` fits the cell's width (about
    ``cell_chars`` characters at that size), smaller in proportion when longer (a mixture of
    long class names), so neighbouring labels do not overlap."""
    return largest if len(text) <= cell_chars else largest * cell_chars / len(text)


def _rgb(img: np.ndarray, shift: Any = None, div: Any = None) -> np.ndarray:
    """(C, H, W) as (H, W, 3) in [0, 1]: with the pixel scale (model input = (pixels - shift) /
    div), the pixels clipped to [0, 1], so that every cell is shown on the same scale and
    colour jitter stays visible; without it, min-max scaled for display only."""
    if shift is not None and div is not None:
        show = np.clip(img * np.asarray(div, dtype=np.float32) + np.asarray(shift,
                                                                           dtype=np.float32), 0, 1)
    else:
        lo, hi = float(img.min()), float(img.max())
        show = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.repeat(show[:1], 3, 0).transpose(1, 2, 0) if show.shape[0] != 3 else \
        show.transpose(1, 2, 0)


def augment_grid_png(prepared: Any, augmenter: Augmenter, seed: int, n: int = 8,
                     epochs: int = 3, batch: int = 64) -> bytes:
    """PNG bytes: ``n`` training images (top row) and their augmented views in ``epochs``
    epochs (rows below), each with its target written under it (a mixture for mixup / cutmix).

    The images are drawn at random (fixed by ``seed``) from the training split; a batch of
    ``batch`` of them is augmented together so that mixing operations have partners. The grid
    is one mosaic image (one ``imshow``), each cell in pixels clipped to [0, 1].
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    train = prepared.train
    pick = np.random.default_rng(seed).permutation(len(train))[:max(n, min(batch, len(train)))]
    if train.lazy:
        x = torch.stack([train.X[int(i)][0] for i in pick])
    else:
        x = train.X[torch.from_numpy(pick)]
    y = train.y[torch.from_numpy(pick)]
    views = augmented_views(augmenter, x, y, seed, epochs, lazy=train.lazy)
    cols = min(n, len(x))
    rows = [(x, y, "original")] + [(vx, vy, f"epoch {e + 1}") for e, (vx, vy) in enumerate(views)]
    h, w = int(x.shape[-2]), int(x.shape[-1])
    gap_x, gap_y = max(1, w // 8), max(h // 3, 3)  # room for the labels under each row
    mosaic = np.ones((len(rows) * (h + gap_y), cols * (w + gap_x), 3))
    cell = 1.1  # inches per cell
    ctx = augmenter.context  # every cell in pixels, on one scale
    scale = [None if t is None else t.detach().cpu().numpy()
             for t in (ctx.pixel_shift, ctx.pixel_div)]
    fig, ax = plt.subplots(figsize=(cols * cell + 0.6, len(rows) * cell * (h + gap_y) / h))
    for r, (xs, ys, what) in enumerate(rows):
        top = r * (h + gap_y)
        for c in range(cols):
            left = c * (w + gap_x)
            mosaic[top:top + h, left:left + w] = _rgb(xs[c].detach().cpu().float().numpy(),
                                                      *scale)
            yc = ys[c] if ys is not None else torch.tensor(0)
            text = label_text(yc, prepared.classes, prepared.task)
            ax.text(left + w / 2, top + h - 0.2, text, ha="center", va="top",
                    fontsize=label_fontsize(text))
        ax.text(-gap_x, top + h / 2, what, rotation=90, ha="right", va="center", fontsize=8)
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    ops = ", ".join(augmenter.names)
    ax.set_title(f"training samples (top) and what the model is fed: {ops}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def save_with_run(augmenter: Augmenter, prepared: Any, run_dir: Any, seed: int) -> None:
    """Write the augmenter (``augment.json``, ``augment.safetensors``) and, for images,
    ``augment_grid.png`` into ``run_dir``."""
    from pathlib import Path

    from trainwell.runs import write_bytes_atomic

    augmenter.save(run_dir)
    if len(prepared.input_shape) == 3 and len(prepared.train):
        write_bytes_atomic(Path(run_dir) / "augment_grid.png",
                           augment_grid_png(prepared, augmenter, seed))


def augment_summary(augmenter: Augmenter) -> list[str]:
    """Lines for ``describe``: the operations in the order they run, with their settings."""
    lines = ["augmentation (training split only, in this order):"]
    for op, cfg in augmenter.ops:
        fields = ", ".join(f"{k} {v}" for k, v in cfg.model_dump().items())
        lines.append(f"  {op.name:<13} {fields}")
    ctx = augmenter.context
    if ctx.pca_values is not None:
        values = ", ".join(f"{float(v):.4g}" for v in ctx.pca_values)
        lines.append(f"  pca_color eigenvalues of the training channel covariance: {values}")
    return lines


__all__ = ["augment_grid_png", "augment_summary", "augmented_views", "label_text", "save_with_run"]
