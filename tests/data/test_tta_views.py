"""Test-time augmentation views against hand computations, and which views a run gets."""

from __future__ import annotations

import pytest
import torch

from trainwell.config import load_config
from trainwell.data.augment.tta import (
    IDENTITY,
    View,
    check_image_input,
    identity_reason,
    shift,
    tta_views,
)
from trainwell.data.augment.tta_config import TTAConfig
from trainwell.errors import ConfigError

# one 1x3x3 image, its pixels numbered 1..9 row by row
IMG = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)


def test_identity_and_flips_are_torch_flips():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(IDENTITY(x), x)
    assert torch.equal(View(hflip=True)(x), torch.flip(x, dims=[3]))
    assert torch.equal(View(vflip=True)(x), torch.flip(x, dims=[2]))
    assert torch.equal(View(hflip=True, vflip=True)(x), torch.flip(x, dims=[2, 3]))
    # by hand on the numbered image: a horizontal flip reverses each row
    assert View(hflip=True)(IMG)[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]


def test_shift_view_is_a_padded_shift_by_hand():
    right = View(dx=1)(IMG)[0, 0].tolist()
    assert right == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]  # content moves right, zeros come in
    up = View(dy=-1)(IMG)[0, 0].tolist()
    assert up == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]
    # the crop at offset (p - dy, p - dx) of the image padded with p zeros: a random crop's view
    x = torch.randn(3, 2, 6, 7)
    p, dx, dy = 2, -2, 1
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    window = padded[..., p - dy : p - dy + 6, p - dx : p - dx + 7]
    assert torch.equal(shift(x, dx, dy), window)
    # exactly the window the training crop cuts at that offset
    from trainwell.data.augment.ops import shifted_windows

    n = len(x)
    crop = shifted_windows(x, p, torch.full((n,), p - dy), torch.full((n,), p - dx))
    assert torch.equal(shift(x, dx, dy), crop)
    # flips come first, then the shift
    assert torch.equal(View(hflip=True, dx=1)(x), shift(torch.flip(x, dims=[3]), 1, 0))


def test_no_geometric_augmentation_gives_the_identity_only():
    assert tta_views({}) == [IDENTITY]
    assert tta_views({"hflip": False, "vflip": False, "max_shift": 0}) == [IDENTITY]
    assert "identity view only" in identity_reason({})


def test_flips_only_when_trained():
    names = [v.name for v in tta_views({"hflip": True, "max_shift": 0})]
    assert names == ["identity", "hflip"]
    assert not any(v.vflip for v in tta_views({"hflip": True}))
    assert [v.name for v in tta_views({"vflip": True})] == ["identity", "vflip"]
    assert tta_views({"hflip": True}, flips=False) == [IDENTITY]
    assert "tta.flips = false" in identity_reason({"hflip": True}, flips=False)


def test_shifts_stay_within_the_trained_range():
    views = tta_views({"max_shift": 2})
    assert {(v.dx, v.dy) for v in views} == {(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)}
    assert {(v.dx, v.dy) for v in tta_views({"max_shift": 2}, shift=1)} == {
        (0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)}
    assert tta_views({"max_shift": 2}, shift=0) == [IDENTITY]
    with pytest.raises(ConfigError, match=r"tta.shift = 3 pixels is beyond .*\(at most 2"):
        tta_views({"max_shift": 2}, shift=3)
    with pytest.raises(ConfigError, match="at most 0"):
        tta_views({}, shift=1)
    # both: every flip with every shift
    assert len(tta_views({"hflip": True, "vflip": True, "max_shift": 1})) == 15


def test_views_on_a_table_are_refused():
    check_image_input((1, 8, 8), "--tta")
    with pytest.raises(ConfigError, match=r"--tta: .*shape \(4,\) \(a table"):
        check_image_input((4,), "--tta")


def test_tta_section_is_validated_at_load():
    assert TTAConfig().beta == 0.25 and TTAConfig().shift == "auto"
    for bad, field in (({"shift": -1}, "tta.shift"), ({"shift": "big"}, "tta.shift"),
                       ({"beta": 1.5}, "tta.beta"), ({"mc_samples": -2}, "tta.mc_samples")):
        with pytest.raises(ConfigError, match=field):
            load_config({"tta": bad})
    # a fixed shift that training never drew is refused when the config loads
    with pytest.raises(ConfigError, match=r"tta.shift = 2 pixels is beyond the shifts training"):
        load_config({"data": {"source": "builtin:digits_images"}, "tta": {"shift": 2}})
    with pytest.raises(ConfigError, match=r"tta.enabled does not apply with \[heads\]"):
        load_config({"heads": {"a": {}, "b": {}}, "tta": {"enabled": True}})


def test_the_trained_range_comes_from_augment():
    from trainwell.data.augment.tta_config import trained_geometry_of
    from trainwell.train.test_time import check_test_time_config

    src = {"source": "builtin:digits_images"}
    cfg = load_config({"data": src, "augment": {"crop": {"padding": 1}, "hflip": {}},
                       "tta": {"shift": 1}})
    names = [v.name for v in tta_views(trained_geometry_of(cfg, (1, 8, 8)), shift=cfg.tta.shift)]
    assert names[:5] == ["identity", "shift(+1,+0)", "shift(-1,+0)", "shift(+0,+1)",
                         "shift(+0,-1)"]
    assert names[5] == "hflip" and len(names) == 10
    with pytest.raises(ConfigError, match=r"tta.shift = 2 pixels .*\(at most 1"):
        load_config({"data": src, "augment": {"crop": {"padding": 1}}, "tta": {"shift": 2}})
    # a translation is a fraction of the image: checked once its size is known (before the
    # run directory exists); 0.25 of 8 pixels is 2
    cfg = load_config({"data": src, "augment": {"affine": {"translate": 0.25}},
                       "tta": {"enabled": True, "shift": 3}})
    with pytest.raises(ConfigError, match=r"tta.shift = 3 pixels .*\(at most 2"):
        check_test_time_config(cfg.tta, trained_geometry_of(cfg, (1, 8, 8)), (1, 8, 8),
                               torch.nn.Identity())
