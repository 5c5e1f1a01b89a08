"""Small files the data tests write: a mixed-type CSV, images in class folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image


def mixed_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Numeric, boolean and categorical columns, a few missing values, a text label."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n).round(1)
    age[[3, 17]] = np.nan
    frame = pd.DataFrame({
        "age": age,
        "income": rng.lognormal(10, 0.5, n).round(2),
        "member": rng.choice(["yes", "no"], n),
        "city": rng.choice(["paris", "rome", "oslo"], n).astype(object),
        "label": rng.choice(["cat", "dog", "eel"], n),
    })
    frame.loc[5, "city"] = None
    return frame


@pytest.fixture
def mixed_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    mixed_frame().to_csv(path, index=False)
    return path


def write_image_folder(root, classes=("a", "b"), per_class=6, size=(6, 5), mode="RGB", seed=0):
    """``root/<class>/<i>.png`` with random pixels; class b is brighter."""
    rng = np.random.default_rng(seed)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            arr = rng.integers(0, 128, shape, dtype=np.uint8) + np.uint8(100 * k)
            Image.fromarray(arr).save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "imgs")
