"""``Augmenter``: the configured operations in their order, with what they fitted on the data.

An augmenter is built from the ``[augment]`` section and the prepared data
(:meth:`Augmenter.fit`): it checks the operations against the data, reads the pixel scale off
the fitted image preprocessing (colour jitter works on pixels in [0, 1]) and fits
``pca_color``'s principal components on the training split once. :meth:`Augmenter.save` writes
``augment.json`` and ``augment.safetensors`` into the run directory, and a resumed run loads
them (:meth:`Augmenter.load`) instead of fitting again.

Its random draws come from :func:`augment_generator`, a CPU generator seeded from
``(seed, epoch, step)`` for a batch or ``(seed, epoch, sample index)`` for one lazily read
image: nothing to save in a checkpoint, the same augmentation after a resume, another one each
epoch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainwell.data.augment.config import AugmentConfig, check_for_data
from trainwell.data.augment.ops import (
    AUGMENTATIONS,
    AugmentContext,
    AugmentOp,
    fit_pca_color,
)
from trainwell.errors import RunError

#: lazily read images: the PCA colour axes are fitted on at most this many training images
PCA_SAMPLE = 4096
STREAM_BATCH, STREAM_SAMPLE = 0, 1  # the two kinds of draws derived from a seed


def augment_generator(seed: int, epoch: int, index: int, stream: int = STREAM_BATCH
                      ) -> torch.Generator:
    """A CPU generator seeded from ``(seed, epoch, index, stream)``: ``index`` is the step of a
    batch (``stream`` 0) or the position of a sample in the training split (``stream`` 1)."""
    key = f"augment:{seed}:{epoch}:{index}:{stream}".encode()
    value = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return torch.Generator().manual_seed(value & (2**63 - 1))


class Augmenter:
    """Applies the ``[augment]`` operations to batches.

    Args:
        cfg: the ``[augment]`` section.
        context: the pixel scale and PCA colour axes (:class:`AugmentContext`).
        task: the task (mixing needs it to turn targets into probability rows).
        n_classes: classes of a multiclass task.

    Example:
        >>> aug = Augmenter(AugmentConfig(hflip={"p": 1.0}))
        >>> x = torch.arange(4.0).view(1, 1, 1, 4)
        >>> aug(x, None, augment_generator(0, 1, 0))[0].flatten().tolist()
        [3.0, 2.0, 1.0, 0.0]
    """

    def __init__(self, cfg: AugmentConfig, context: AugmentContext | None = None,
                 task: str = "multiclass", n_classes: int | None = None) -> None:
        self.cfg = cfg
        self.context = context or AugmentContext()
        self.task = task
        self.n_classes = n_classes
        self.ops: list[tuple[AugmentOp, Any]] = [
            (AUGMENTATIONS.get(name), op) for name, op in cfg.ops().items()
        ]

    @property
    def mixes(self) -> bool:
        """Whether an operation mixes two samples (whole batches, probability-row targets)."""
        return any(op.kind == "mix" for op, _ in self.ops)

    @property
    def names(self) -> list[str]:
        return [op.name for op, _ in self.ops]

    def soft_targets(self, y: Tensor) -> Tensor:
        """Targets as float rows a mixing operation can combine: one-hot rows of class indices
        (multiclass), 0/1 labels as floats (binary), values as they are (regression)."""
        if self.task == "multiclass" and not y.is_floating_point():
            if self.n_classes is None:
                raise RunError("mixing multiclass targets needs the number of classes")
            return torch.nn.functional.one_hot(y.long(), self.n_classes).float()
        return y.float() if not y.is_floating_point() else y

    def __call__(self, x: Tensor, y: Tensor | None, g: torch.Generator, *,
                 per_sample: bool = True, mixing: bool = True) -> tuple[Tensor, Tensor | None]:
        """``(x, y)`` augmented with draws from ``g``: the per-sample operations (geometry,
        colour, erasing, noise) unless ``per_sample`` is False, then the mixing ones unless
        ``mixing`` is False (their targets become float rows, see :meth:`soft_targets`)."""
        for op, cfg in self.ops:
            is_mix = op.kind == "mix"
            if (is_mix and not mixing) or (not is_mix and not per_sample):
                continue
            if is_mix and y is not None:
                y = self.soft_targets(y)
            x, y = op.fn(x, y, cfg, g, self.context)
        return x, y

    # ---------------------------------------------------------------- fitting and saving

    @classmethod
    def fit(cls, cfg: AugmentConfig, prepared: Any) -> Augmenter:
        """The augmenter of ``cfg`` for ``prepared`` data, checked against it, its PCA colour axes
        fitted on the training split.

        Raises:
            DataError: an operation that does not fit the data (see
                :func:`~trainwell.data.augment.config.check_for_data`).
        """
        check_for_data(cfg, prepared.input_shape, prepared.task)
        context = AugmentContext()
        if len(prepared.input_shape) == 3:
            context.pixel_shift, context.pixel_div = pixel_scale(prepared.pipeline)
        if cfg.pca_color is not None:
            context.pca_vectors, context.pca_values = fit_pca_color(_pca_images(prepared.train))
        return cls(cfg, context, prepared.task, _n_classes(prepared))

    def save(self, run_dir: str | Path) -> None:
        """``augment.json`` (the operations, the pixel scale's presence) and, when anything was
        fitted, ``augment.safetensors`` into ``run_dir``."""
        from trainwell.runs import write_json_atomic, write_safetensors_atomic

        run_dir = Path(run_dir)
        arrays = {k: v.detach().cpu().contiguous() for k, v in self._arrays().items()}
        write_json_atomic(run_dir / "augment.json", {
            "ops": self.names, "order": list(self.cfg.ops()), "task": self.task,
            "n_classes": self.n_classes, "arrays": sorted(arrays),
        })
        if arrays:
            write_safetensors_atomic(run_dir / "augment.safetensors", arrays)

    def _arrays(self) -> dict[str, Tensor]:
        ctx = self.context
        named = {"pixel_shift": ctx.pixel_shift, "pixel_div": ctx.pixel_div,
                 "pca_vectors": ctx.pca_vectors, "pca_values": ctx.pca_values}
        return {k: v for k, v in named.items() if v is not None}

    @classmethod
    def load(cls, cfg: AugmentConfig, run_dir: str | Path) -> Augmenter:
        """The augmenter a run saved (:meth:`save`), for ``cfg`` (its ``config.toml``'s section).

        Raises:
            RunError: ``augment.json`` or ``augment.safetensors`` is missing or damaged.
        """
        from trainwell.runs import read_json, read_safetensors

        run_dir = Path(run_dir)
        meta = read_json(run_dir / "augment.json")
        arrays: dict[str, Tensor] = {}
        if meta.get("arrays"):
            path = run_dir / "augment.safetensors"
            arrays = read_safetensors(path)
            missing = sorted(set(meta["arrays"]) - set(arrays))
            if missing:
                raise RunError(f"{path} lacks {', '.join(missing)}")
        context = AugmentContext(**{k: arrays.get(k) for k in (
            "pixel_shift", "pixel_div", "pca_vectors", "pca_values")})
        return cls(cfg, context, str(meta.get("task", "multiclass")), meta.get("n_classes"))


def _n_classes(prepared: Any) -> int | None:
    if prepared.task != "multiclass":
        return None
    return int(prepared.n_outputs)


def pixel_scale(pipeline: Any) -> tuple[Tensor | None, Tensor | None]:
    """``(shift, div)`` with ``model input = (pixels - shift) / div`` for the fitted image
    steps of ``pipeline`` (float32, broadcastable to (C, H, W)); ``(0, 1)`` without steps."""
    import numpy as np

    if getattr(pipeline, "kind", None) != "image":
        return None, None
    shift: Any = np.zeros((1, 1, 1))
    div: Any = np.ones((1, 1, 1))
    for step in getattr(pipeline, "steps", []):
        s, d = np.asarray(step.shift_, dtype=np.float64), np.asarray(step.div_, dtype=np.float64)
        shift, div = shift + s * div, div * d
    return (torch.from_numpy(np.asarray(shift, dtype=np.float32)),
            torch.from_numpy(np.asarray(div, dtype=np.float32)))


def _pca_images(split: Any) -> Tensor:
    """The training images (N, 3, H, W) the PCA colour axes are fitted on: all of an in-memory
    split; at most :data:`PCA_SAMPLE`, evenly spaced, of a lazily read one."""
    if not split.lazy:
        return split.X
    n = len(split)
    picks: Sequence[int] = range(n) if n <= PCA_SAMPLE else [
        int(i * n / PCA_SAMPLE) for i in range(PCA_SAMPLE)]
    return torch.stack([split.X[i][0] for i in picks])


__all__ = ["PCA_SAMPLE", "Augmenter", "augment_generator", "pixel_scale"]
