"""Image folders: one subfolder per class, read with Pillow, one mode and one size.

Pixels become float32 (C, H, W) in [0, 1]. A folder whose decoded pixels exceed
``data.images.memory_mb`` is served by ``ImageFolderDataset``, which reads each image when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from trainwell.data.image_steps import ImageStep
from trainwell.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS)


def _check_dir(root: Path) -> None:
    if not root.exists():
        raise DataError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"images: source {root} is not a folder (expected one subfolder per class)")


def list_class_folders(root: Path) -> tuple[list[Path], list[str]]:
    """Image paths and their class names (subfolder names), in sorted order.

    Raises:
        DataError: the folder is missing, has no class subfolders, or a class folder is empty.
    """
    _check_dir(root)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"image folder {root} has no class subfolders; put each class's images in its own "
            "subfolder (e.g. cats/, dogs/)"
        )
    paths: list[Path] = []
    labels: list[str] = []
    for folder in classes:
        found = _images_in(folder)
        if not found:
            raise DataError(
                f"class folder {folder} has no images (looked for {', '.join(IMAGE_EXTS)}); "
                "add images or remove the folder"
            )
        paths += found
        labels += [folder.name] * len(found)
    return paths, labels


def list_images_for_prediction(root: Path) -> tuple[list[Path], list[str] | None]:
    """Images to predict on: a flat folder, or class subfolders (labels then returned too)."""
    _check_dir(root)
    flat = _images_in(root)
    if flat:
        return flat, None
    paths, labels = list_class_folders(root)
    return paths, labels


def read_image(path: Path, mode: str, size: Sequence[int] | None) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]; ``size`` is [height, width].

    Raises:
        DataError: naming the file, when Pillow cannot decode it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            img = opened.convert(mode)
            if size is not None and (img.height, img.width) != (size[0], size[1]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} cannot be read (corrupt or not an image): {exc}") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def verify_image(path: Path) -> tuple[int, int]:
    """Check that Pillow can decode ``path``; return its (height, width)."""
    from PIL import Image

    read_image(path, "L", None)  # a full decode catches truncated files that verify() misses
    with Image.open(path) as img:
        return img.height, img.width


def first_size(paths: list[Path]) -> tuple[int, int]:
    return verify_image(paths[0])


def read_many(paths: list[Path], mode: str, size: Sequence[int]) -> np.ndarray:
    out = np.empty((len(paths), CHANNELS[mode], size[0], size[1]), dtype=np.float32)
    for i, p in enumerate(paths):
        out[i] = read_image(p, mode, size)
    return out


def iter_batches(paths: list[Path], mode: str, size: Sequence[int], steps: list[ImageStep],
                 batch: int = 256) -> Any:
    """Yield decoded, already-transformed (by ``steps``) batches of images."""
    for i in range(0, len(paths), batch):
        x = read_many(paths[i:i + batch], mode, size)
        for step in steps:
            x = step.transform(x)
        yield x


class ImageFolderDataset(Dataset[tuple[Any, Any]]):
    """Images read lazily: ``dataset[i]`` decodes file i and returns ``(x, y)``.

    x is float32 (C, H, W) after the fitted image steps; y the int64 class index. Plain
    attributes only, so it works with ``DataLoader`` workers.
    """

    def __init__(self, paths: list[Path], y: Any, mode: str, size: Sequence[int],
                 steps: list[ImageStep]) -> None:
        self.paths = [Path(p) for p in paths]
        self.y = y
        self.mode = mode
        self.size = list(size)
        self.steps = steps

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), CHANNELS[self.mode], self.size[0], self.size[1])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        x = read_image(self.paths[i], self.mode, self.size)
        for step in self.steps:
            x = step.transform(x)
        return torch.from_numpy(x), self.y[i]


__all__ = ["CHANNELS", "IMAGE_EXTS", "ImageFolderDataset", "list_class_folders", "read_image"]
