"""Every augmentation operation against a closed form or a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainwell.data.augment.augmenter import Augmenter, augment_generator
from trainwell.data.augment.config import ORDER, AugmentConfig
from trainwell.data.augment.ops import (
    AUGMENTATIONS,
    LUMA,
    AugmentContext,
    affine_matrices,
    beta,
    crop_matrices,
    fit_pca_color,
    jitter_colors,
    list_augmentations,
    pca_offsets,
    shifted_windows,
    warp,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_op(name: str, x, y=None, ctx=None, seed=0, **fields):
    cfg = getattr(AugmentConfig(**{name: fields}), name)
    return AUGMENTATIONS.get(name).fn(x, y, cfg, gen(seed), ctx or AugmentContext())


def images(n=16, c=1, h=8, w=8, seed=0):
    return torch.rand(n, c, h, w, generator=gen(seed))


# ---------------------------------------------------------------------------- registry


def test_every_section_table_is_a_registered_operation():
    assert list_augmentations() == sorted(ORDER)
    assert list(AugmentConfig.model_fields) == list(ORDER)  # the fields are in running order


@pytest.mark.parametrize("name", list_augmentations())
def test_each_operation_keeps_shape_dtype_and_is_identity_at_p_zero(name):
    x = images(6, 3, 8, 8)
    table = x.reshape(6, -1) if name in ("noise", "mixup") else x
    ctx = AugmentContext()
    if name == "pca_color":
        ctx.pca_vectors, ctx.pca_values = fit_pca_color(x)
    fields = {"rotate": 10} if name == "affine" else {"brightness": 0.3} if name == "color" else {}
    y = F.one_hot(torch.arange(6) % 3, 3).float()
    out, y_out = run_op(name, table, y, ctx, p=1.0, **fields)
    assert out.shape == table.shape and out.dtype == table.dtype
    assert not torch.equal(out, table)  # p = 1 changes something
    same, y_same = run_op(name, table, y, ctx, p=0.0, **fields)
    assert torch.allclose(same, table, atol=1e-6) and torch.equal(y_same, y)


# ---------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("name,dim", [("hflip", -1), ("vflip", -2)])
def test_a_flip_is_a_flip(name, dim):
    x = images(400)
    out, _ = run_op(name, x, p=0.5)
    flipped = torch.tensor([torch.equal(o, xi.flip(dim)) for o, xi in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert bool((flipped ^ kept).all())  # each sample is either mirrored or untouched
    assert 0.4 < flipped.float().mean() < 0.6
    all_flipped, _ = run_op(name, x, p=1.0)
    assert torch.equal(all_flipped, x.flip(dim))


def test_crop_with_padding_is_a_shifted_window_of_the_padded_image():
    x = images(5, 2, 6, 7)
    dy, dx = torch.tensor([0, 1, 2, 4, 3]), torch.tensor([4, 0, 2, 1, 3])
    out = shifted_windows(x, 2, dy, dx)
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(5):
        want = padded[i, :, dy[i]:dy[i] + 6, dx[i]:dx[i] + 7]
        assert torch.equal(out[i], want)
    assert torch.equal(shifted_windows(x, 2, torch.full((5,), 2), torch.full((5,), 2)), x)


def test_the_crop_operation_draws_windows_within_the_padding():
    x = images(50, 1, 6, 6)
    out, _ = run_op("crop", x, padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = []
    for i in range(50):
        found = [(a, b) for a in range(5) for b in range(5)
                 if torch.equal(out[i], padded[i, :, a:a + 6, b:b + 6])]
        assert found, f"sample {i} is no window of its padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 10  # offsets vary over the 25 possible ones


def shift_with_zeros(x, dy, dx):
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_affine_with_a_translation_only_is_a_pixel_shift():
    x = images(3, 2, 6, 8)
    one, zero = torch.ones(3), torch.zeros(3)
    tx, ty = torch.tensor([2 / 8, -1 / 8, 0.0]), torch.tensor([0.0, 3 / 6, -2 / 6])
    out = warp(x, affine_matrices(zero, zero, one, tx, ty, 6, 8))
    for i, (dy, dx) in enumerate([(0, 2), (3, -1), (-2, 0)]):
        torch.testing.assert_close(out[i], shift_with_zeros(x[i], dy, dx), atol=1e-5, rtol=0)


def test_affine_rotation_by_90_degrees_turns_a_square_image():
    x = images(2, 1, 7, 7)
    one, zero = torch.ones(2), torch.zeros(2)
    out = warp(x, affine_matrices(torch.full((2,), 90.0), zero, one, zero, zero, 7, 7))
    turned = [torch.rot90(x, k, dims=(-2, -1)) for k in (1, 3)]
    assert any(torch.allclose(out, t, atol=1e-5) for t in turned)


def test_affine_scale_zooms_about_the_centre_on_a_linear_ramp():
    w = 16
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, w, w).clone()
    one, zero = torch.ones(1), torch.zeros(1)
    out = warp(ramp, affine_matrices(zero, zero, 2 * one, zero, zero, w, w))
    # output column j reads input column c + (j - c) / 2, c = (w - 1) / 2 (bilinear is exact)
    c = (w - 1) / 2
    want = c + (torch.arange(w, dtype=torch.float32) - c) / 2
    torch.testing.assert_close(out[0, 0, 5], want, atol=1e-5, rtol=0)


def test_the_affine_operation_draws_within_its_ranges():
    x = torch.zeros(200, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel at the centre
    out, _ = run_op("affine", x, translate=2 / 9)
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    mass = out[:, 0].sum((1, 2))
    cy = (out[:, 0] * ys).sum((1, 2)) / mass
    cx = (out[:, 0] * xs).sum((1, 2)) / mass
    assert float((cx - 4).abs().max()) <= 2 + 1e-4 and float((cy - 4).abs().max()) <= 2 + 1e-4
    assert float((cx - 4).abs().max()) > 1.5  # the range is used
    torch.testing.assert_close(mass, torch.ones(200), atol=1e-4, rtol=0)


def test_resized_crop_reads_the_drawn_box_resized_to_the_image():
    w = 12
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, w, w).clone()
    cw, ch = torch.tensor([0.5]), torch.tensor([1.0])
    cx, cy = torch.tensor([0.25]), torch.tensor([0.0])
    out = warp(ramp, crop_matrices(cw, ch, cx, cy))
    u = (2 * torch.arange(w, dtype=torch.float32) + 1) / w - 1
    source = cw * u + cx  # normalized input position of each output column
    want = ((source + 1) * w - 1) / 2  # its pixel coordinate = the ramp's value there
    torch.testing.assert_close(out[0, 0, 3], want, atol=1e-5, rtol=0)


def test_the_resized_crop_operation_is_the_identity_at_full_scale():
    x = images(4, 3, 8, 8)
    out, _ = run_op("resized_crop", x, scale=[1.0, 1.0], ratio=[1.0, 1.0])
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    zoomed, _ = run_op("resized_crop", x, scale=[0.25, 0.25], ratio=[1.0, 1.0])
    assert not torch.allclose(zoomed, x)


# ---------------------------------------------------------------------------- colour


def test_brightness_contrast_saturation_follow_their_formulas():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (2, 3, 2, 2)).astype(np.float32)
    b, c, s = np.array([1.3, 0.6]), np.array([0.7, 1.4]), np.array([0.5, 1.2])
    out = jitter_colors(torch.from_numpy(p), torch.from_numpy(b), torch.from_numpy(c),
                        torch.from_numpy(s), clamp=True).numpy()
    for i in range(2):  # the formulas, pixel by pixel
        q = np.clip(b[i] * p[i], 0, 1)
        gray = LUMA[0] * q[0] + LUMA[1] * q[1] + LUMA[2] * q[2]
        q = np.clip(c[i] * q + (1 - c[i]) * gray.mean(), 0, 1)
        gray = LUMA[0] * q[0] + LUMA[1] * q[1] + LUMA[2] * q[2]
        q = np.clip(s[i] * q + (1 - s[i]) * gray, 0, 1)
        np.testing.assert_allclose(out[i], q, atol=1e-6)


def test_brightness_scales_the_pixels_through_the_preprocessing():
    pixels = torch.rand(300, 1, 4, 4, generator=gen(1)) * 0.5 + 0.1  # far from clamping
    shift, div = torch.tensor([0.3]).view(1, 1, 1), torch.tensor([0.2]).view(1, 1, 1)
    x = (pixels - shift) / div  # what the model is fed after channel_mean_std
    ctx = AugmentContext(pixel_shift=shift, pixel_div=div)
    out, _ = run_op("color", x, ctx=ctx, brightness=0.4)
    factor = (out * div + shift) / pixels  # back in pixels: b * p
    per_image = factor.reshape(300, -1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image), atol=1e-4,
                               rtol=1e-4)
    b = per_image[:, 0]
    assert float(b.min()) >= 0.6 - 1e-5 and float(b.max()) <= 1.4 + 1e-5
    assert float(b.max() - b.min()) > 0.6  # U(0.6, 1.4) is used, not one value


# ---------------------------------------------------------------------------- PCA colour


def test_pca_colour_moves_colours_along_the_fitted_eigenvectors_with_the_lecture_scale():
    rng = np.random.default_rng(0)
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 1.0, 0.3], [0.0, 0.0, 0.4]])
    pix = rng.normal(size=(200 * 16, 3)) @ mix
    x = torch.from_numpy(pix.reshape(200, 4, 4, 3).transpose(0, 3, 1, 2).copy()).float()
    vectors, values = fit_pca_color(x)
    want_values, want_vectors = np.linalg.eigh(np.cov(pix.T))
    np.testing.assert_allclose(values.numpy(), want_values[::-1], rtol=1e-4)
    for k in range(3):  # eigenvectors up to sign
        v, wv = vectors[:, k].numpy(), want_vectors[:, 2 - k]
        assert abs(abs(float(v @ wv)) - 1) < 1e-6
    ctx = AugmentContext(pca_vectors=vectors, pca_values=values)
    flat = torch.zeros(4000, 3, 2, 2)
    out, _ = run_op("pca_color", flat, ctx=ctx, std=0.1)
    offset = out[:, :, 0, 0].double()
    assert torch.allclose(out, offset[:, :, None, None].float().expand_as(out))  # one per image
    alpha = (offset @ vectors) / values  # the coefficients along each eigenvector
    assert float(alpha.mean(0).abs().max()) < 0.01
    torch.testing.assert_close(alpha.std(0), torch.full((3,), 0.1, dtype=torch.float64),
                               atol=0.008, rtol=0)
    torch.testing.assert_close(pca_offsets(alpha, vectors, values), offset, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------- erasing


def test_cutout_zeroes_exactly_the_drawn_square():
    n, h, w, size = 64, 8, 8, 3
    x = torch.ones(n, 1, h, w)
    out, _ = run_op("cutout", x, seed=5, size=size, n=1, p=1.0)
    g = gen(5)  # the same draws, in the operation's order: who, then centres
    torch.rand(n, generator=g)
    cy = torch.randint(0, h, (n, 1), generator=g)[:, 0]
    cx = torch.randint(0, w, (n, 1), generator=g)[:, 0]
    for i in range(n):
        want = torch.ones(h, w)
        top, left = int(cy[i]) - size // 2, int(cx[i]) - size // 2
        want[max(top, 0):max(top + size, 0), max(left, 0):max(left + size, 0)] = 0
        assert torch.equal(out[i, 0], want), i


def test_random_erasing_fills_a_rectangle_inside_the_image():
    n, h, w = 100, 10, 12
    x = torch.rand(n, 2, h, w, generator=gen(2)) + 1.0
    out, _ = run_op("erasing", x, p=1.0, scale=[0.1, 0.3], ratio=[0.5, 2.0], value=-3.0)
    for i in range(n):
        erased = (out[i] == -3.0).all(0)
        rows, cols = erased.any(1).nonzero()[:, 0], erased.any(0).nonzero()[:, 0]
        box = erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool(box.all())  # a full rectangle
        area = float(erased.float().sum()) / (h * w)
        assert 0.05 <= area <= 0.4
        assert torch.equal(out[i][:, ~erased], x[i][:, ~erased])  # nothing else changed


def test_noise_adds_gaussian_noise_of_the_given_std_to_tables():
    x = torch.zeros(2000, 5)
    out, _ = run_op("noise", x, std=0.3)
    assert abs(float(out.std()) - 0.3) < 0.01 and abs(float(out.mean())) < 0.01


# ---------------------------------------------------------------------------- mixing


def test_beta_draws_follow_the_beta_distribution():
    from scipy import stats

    draws = beta(gen(0), 3000, 0.4).numpy()
    assert stats.kstest(draws, stats.beta(0.4, 0.4).cdf).pvalue > 0.001


def test_mixup_mixes_targets_with_the_same_lambda_as_the_inputs():
    n = 12
    x = torch.eye(n)  # row i is e_i: the mixture's weights can be read off
    y = F.one_hot(torch.arange(n) % 4, 4).float()
    out, y_out = run_op("mixup", x, y, alpha=0.4)
    for i in range(n):
        lam = float(out[i, i])
        assert lam >= 0.5 - 1e-6  # each row keeps the larger share of its own sample
        partner = int(torch.argmax(out[i] - lam * x[i]))
        if abs(lam - 1) < 1e-6 or partner == i:
            assert torch.allclose(y_out[i], y[i])
            continue
        torch.testing.assert_close(out[i], lam * x[i] + (1 - lam) * x[partner])
        torch.testing.assert_close(y_out[i], lam * y[i] + (1 - lam) * y[partner])
    torch.testing.assert_close(y_out.sum(1), torch.ones(n))


def test_cutmix_mixes_targets_by_the_pasted_area():
    n, h, w = 16, 8, 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, h, w).clone()
    y = F.one_hot(torch.arange(n), n).float()
    out, y_out = run_op("cutmix", x, y, alpha=1.0)
    pasted = 0
    for i in range(n):
        own = float((out[i] == i).float().mean())
        others = set(out[i].unique().tolist()) - {float(i)}
        assert len(others) <= 1
        if others:
            j = int(others.pop())
            pasted += 1
            want = own * y[i] + (1 - own) * y[j]
            mask = out[i, 0] == j
            rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
            assert bool(mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all())
        else:
            want = y[i]
        torch.testing.assert_close(y_out[i], want)
    assert pasted > n // 2


def test_binary_and_multiclass_targets_become_probability_rows():
    aug = Augmenter(AugmentConfig(mixup={}), task="binary")
    x, y = torch.randn(8, 3), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    _, soft = aug(x, y, augment_generator(0, 1, 0))
    assert soft.dtype == torch.float32 and soft.shape == (8,)
    assert float(soft.min()) >= 0 and float(soft.max()) <= 1
    multi = Augmenter(AugmentConfig(mixup={}), task="multiclass", n_classes=5)
    _, rows = multi(x, y + 2, augment_generator(0, 1, 0))
    assert rows.shape == (8, 5)
    torch.testing.assert_close(rows.sum(1), torch.ones(8))


# ---------------------------------------------------------------------------- order and draws


def test_operations_run_in_the_canonical_order_whatever_the_file_says():
    cfg = AugmentConfig.model_validate({"mixup": {}, "cutout": {"size": 2}, "hflip": {}})
    assert Augmenter(cfg).names == ["hflip", "cutout", "mixup"]


def test_draws_depend_on_seed_epoch_and_step_only():
    a = augment_generator(3, 2, 7)
    b = augment_generator(3, 2, 7)
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    others = [augment_generator(4, 2, 7), augment_generator(3, 3, 7), augment_generator(3, 2, 8),
              augment_generator(3, 2, 7, 1)]
    first = torch.rand(5, generator=augment_generator(3, 2, 7))
    assert all(not torch.equal(first, torch.rand(5, generator=g)) for g in others)


def test_a_whole_pipeline_is_vectorized_and_reproducible():
    cfg = AugmentConfig.model_validate({
        "hflip": {}, "crop": {"padding": 2}, "affine": {"rotate": 15, "translate": 0.1},
        "color": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2}, "cutout": {"size": 4},
        "erasing": {"value": "random"}, "mixup": {}, "cutmix": {}})
    x = images(32, 3, 16, 16)
    ctx = AugmentContext()
    ctx.pca_vectors, ctx.pca_values = fit_pca_color(x)
    aug = Augmenter(cfg, ctx, "multiclass", 10)
    y = torch.arange(32) % 10
    a = aug(x, y, augment_generator(0, 1, 0))
    b = aug(x, y, augment_generator(0, 1, 0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], aug(x, y, augment_generator(0, 2, 0))[0])
    assert math.isfinite(float(a[0].sum()))
