"""The augmentation grid shows every cell in pixels on one scale, so colour jitter is visible."""

from __future__ import annotations

import numpy as np

from trainwell.data.augment.grid import _rgb


def test_a_cell_is_shown_in_pixels_so_a_darkened_copy_looks_darker():
    shift = np.array([[[0.2]], [[0.3]], [[0.4]]], dtype=np.float32)
    div = np.array([[[0.5]], [[0.25]], [[0.1]]], dtype=np.float32)
    pixels = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    x = (pixels - shift) / div  # the model input
    dark = (0.5 * pixels - shift) / div  # brightness 0.5, as colour jitter makes it
    np.testing.assert_allclose(_rgb(x, shift, div), pixels.transpose(1, 2, 0), atol=1e-6)
    np.testing.assert_allclose(_rgb(dark, shift, div), 0.5 * pixels.transpose(1, 2, 0),
                               atol=1e-6)
    # outside [0, 1] (noise, erasing with random values) is clipped, not rescaled
    assert _rgb(x + 100.0, shift, div).min() == 1.0
    # one channel is shown grey; without a pixel scale a cell is min-max scaled
    grey = _rgb(x[:1], shift[:1], div[:1])
    assert grey.shape == (4, 5, 3) and np.allclose(grey[..., 0], grey[..., 2])
    mm = _rgb(dark)
    assert np.isclose(mm.min(), 0.0) and np.isclose(mm.max(), 1.0)


def test_the_grid_of_a_run_erasing_with_noise_keeps_the_background_black():
    from io import BytesIO

    from PIL import Image

    from trainwell.data import prepare
    from trainwell.data.augment.augmenter import Augmenter
    from trainwell.data.augment.config import AugmentConfig
    from trainwell.data.augment.grid import augment_grid_png
    from trainwell.data.config import DataConfig

    data = prepare(DataConfig(source="builtin:digits_images"), 0)
    aug = Augmenter.fit(AugmentConfig.model_validate({"erasing": {"p": 1, "value": "random"}}),
                        data)
    png = np.asarray(Image.open(BytesIO(augment_grid_png(data, aug, seed=0))).convert("L"))
    # the digits' black background stays black in every row (min-max scaling per cell turned
    # the background of a cell with random noise in it grey)
    assert (png < 30).mean() > 0.2


def test_a_long_mixture_label_gets_a_smaller_font_that_keeps_it_within_its_cell():
    from trainwell.data.augment.grid import label_fontsize

    assert label_fontsize("0.62 3 + 0.38 8") == 7.0
    long = "0.81 circle + 0.19 triangle"
    size = label_fontsize(long)
    assert size < 7.0 and len(long) * size <= 20 * 7.0 + 1e-9
