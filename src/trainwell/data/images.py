"""Image folders: one subfolder per class, read with Pillow, one mode and one size.

Pixels become float32 (C, H, W) in [0, 1]: 8-bit values divided by 255, 16-bit grayscale by
65535. A folder whose decoded pixels exceed ``data.images.memory_mb`` is served by
``ImageFolderDataset``, which reads each image when asked. Entries of a class folder that are not
images are skipped and listed, and an image whose header claims more pixels than Pillow decodes
safely is refused before it is decoded.
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


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTS


def _images_in(folder: Path, root: Path) -> tuple[list[Path], list[str]]:
    """The image files of ``folder``, and what else it holds (relative to ``root``; a folder
    ends with ``/``). Hidden entries (``.DS_Store``) are neither."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in entries if _is_image(p)]
    others = [p.relative_to(root).as_posix() + ("/" if p.is_dir() else "")
              for p in entries if not _is_image(p)]
    return images, others


def _check_dir(root: Path) -> None:
    if not root.exists():
        raise DataError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"images: source {root} is not a folder (expected one subfolder per class)")


def list_class_folders(root: Path) -> tuple[list[Path], list[str], list[str]]:
    """Image paths, their class names (subfolder names) in sorted order, and the entries that
    are skipped: files that are not images (by suffix) and folders inside a class folder, and
    files beside the class folders.

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
    skipped = [p.name for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")]
    paths: list[Path] = []
    labels: list[str] = []
    for folder in classes:
        found, others = _images_in(folder, root)
        if not found:
            raise DataError(
                f"class folder {folder} has no images (looked for {', '.join(IMAGE_EXTS)}); "
                "add images or remove the folder"
            )
        paths += found
        labels += [folder.name] * len(found)
        skipped += others
    return paths, labels, skipped


def list_images_for_prediction(root: Path) -> tuple[list[Path], list[str] | None, list[str]]:
    """Images to predict on: a flat folder, or class subfolders (labels then returned too); and
    the entries skipped (see :func:`list_class_folders`)."""
    _check_dir(root)
    flat, others = _images_in(root, root)
    if flat:
        return flat, None, others
    if not any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        raise DataError(f"image folder {root} has no images to predict on (looked for "
                        f"{', '.join(IMAGE_EXTS)}, in it or in subfolders)")
    return list_class_folders(root)


#: full-scale value of the grayscale modes with more than 8 bits per pixel (Pillow's names)
DEEP_GRAY_SCALE = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
                   "I": 65535.0, "F": 1.0}


def _open(path: Path) -> Any:
    """Pillow's lazy image (the header only), refusing one too large to decode safely."""
    import warnings

    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS  # Pillow's own bound; None where a user lifted it
    claimed = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:  # over twice the bound: Pillow refuses to open it
        img = None
    if img is not None and limit and img.width * img.height > limit:
        claimed = f" ({img.width}x{img.height})"
        img.close()
        img = None
    if img is None:
        raise DataError(f"image {path} claims more than {limit:,} pixels{claimed}: a corrupt file "
                        "or a decompression bomb; it is not decoded (make it smaller or remove it)")
    return img


def _deep_gray(img: Any, path: Path) -> np.ndarray:
    """A grayscale image of more than 8 bits (16-bit PNG: ``I;16``) as float32 (H, W) in [0, 1],
    divided by its full-scale value (65535 for 16 bits) instead of clipped to 8 bits."""
    scale = DEEP_GRAY_SCALE[img.mode]
    bits = getattr(img, "tag_v2", {}).get(258) if img.mode == "I" else None  # TIFF BitsPerSample
    if bits:
        scale = float(2 ** int(bits[0] if isinstance(bits, tuple) else bits) - 1)
    arr = np.asarray(img, dtype=np.float64) / scale
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        low, high = arr.min() * scale, arr.max() * scale
        raise DataError(f"image {path} (mode {img.mode}) has pixel values from {low:g} to "
                        f"{high:g}, outside 0..{scale:g}; save it as an 8- or 16-bit image")
    return arr.astype(np.float32)


def _pixels(img: Any, path: Path, mode: str, size: Sequence[int] | None) -> np.ndarray:
    """float32 (H, W) or (H, W, C) in [0, 1] in ``mode``, resized to ``size`` ([H, W])."""
    from PIL import Image

    to = None if size is None or (img.height, img.width) == tuple(size) else (size[1], size[0])
    if img.mode not in DEEP_GRAY_SCALE:
        img = img.convert(mode)
        if to is not None:
            img = img.resize(to, Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.float32) / 255.0
    gray = _deep_gray(img, path)
    if to is not None:  # a float32 array is a mode "F" image
        gray = np.asarray(Image.fromarray(gray).resize(to, Image.Resampling.BILINEAR))
    if mode == "L":
        return gray
    planes = [gray] * 3 + ([np.ones_like(gray)] if mode == "RGBA" else [])
    return np.stack(planes, axis=-1)


def read_image(path: Path, mode: str, size: Sequence[int] | None) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]; ``size`` is [height, width].

    8-bit pixels are divided by 255; deeper grayscale (16-bit PNG or TIFF) by its own full
    scale, 65535 for 16 bits.

    Raises:
        DataError: naming the file, when Pillow cannot decode it, or when its header claims more
            pixels than Pillow decodes safely (a decompression bomb).
    """
    from PIL import UnidentifiedImageError

    try:
        with _open(path) as opened:
            arr = _pixels(opened, path, mode, size)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} cannot be read (corrupt or not an image): {exc}") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def verify_image(path: Path) -> tuple[int, int]:
    """Check that Pillow can decode ``path``; return its (height, width)."""
    read_image(path, "L", None)  # a full decode catches truncated files that verify() misses
    with _open(path) as img:
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
