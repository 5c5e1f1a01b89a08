"""Data augmentation (lecture 001): the ``[augment]`` section, the operations and where they run.

- :mod:`.config`: the section models, the canonical order, the checks against the data, and
  :func:`~trainwell.data.augment.config.trained_geometry` (what test-time views may use);
- :mod:`.ops`: the operations on whole batches (``AUGMENTATIONS``, ``list_augmentations()``);
- :mod:`.augmenter`: :class:`~trainwell.data.augment.augmenter.Augmenter`, the configured ops
  with what they learned from the training split (PCA colour axes, the pixel scale);
- :mod:`.lazy`: per-sample augmentation of images read lazily, in the ``DataLoader`` workers;
- :mod:`.grid`: the grid of augmented training samples beside the originals.

Public names are imported lazily, so that reading the config loads no torch.
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

_LAZY = {
    "AugmentConfig": "trainwell.data.augment.config",
    "trained_geometry": "trainwell.data.augment.config",
    "AUGMENTATIONS": "trainwell.data.augment.ops",
    "list_augmentations": "trainwell.data.augment.ops",
    "Augmenter": "trainwell.data.augment.augmenter",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
