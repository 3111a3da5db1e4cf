"""Tests for skdim._data: layout resolution, float64 statistics, standardisation.

Every branch of :func:`resolve_layout` (and every error it raises) is covered,
and the NumPy-side helpers are compared with direct NumPy references.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skdim._data import (
    INPUT_LAYOUTS,
    Layout,
    channel_stats,
    column_stats,
    data_fingerprint,
    flat_image_hint,
    resolve_layout,
    scale_factor,
    standardize,
    to_channels_first,
)
from skdim._data._standardize import Moments, accumulate, finish

batch_to_tensor = standardize

# ----------------------------------------------------------------- resolve_layout


@pytest.mark.parametrize(
    "sample_shape, input_layout, expected",
    [
        # 4-D: the channel axis is the one with 1, 3 or 4 entries.
        ((32, 32, 3), "auto", Layout("NHWC", 3, (32, 32))),
        ((3, 32, 32), "auto", Layout("NCHW", 3, (32, 32))),
        ((28, 20, 1), "auto", Layout("NHWC", 1, (28, 20))),
        ((4, 9, 7), "auto", Layout("NCHW", 4, (9, 7))),
        # An explicit layout wins, also for channel counts "auto" would not accept.
        ((3, 5, 3), "NHWC", Layout("NHWC", 3, (3, 5))),
        ((3, 5, 3), "NCHW", Layout("NCHW", 3, (5, 3))),
        ((6, 6, 6), "NCHW", Layout("NCHW", 6, (6, 6))),
        # 3-D: grayscale images, or signals with channels when asked.
        ((8, 8), "auto", Layout("NHW", 1, (8, 8))),
        ((3, 8), "auto", Layout("NHW", 1, (3, 8))),
        ((8, 8), "NHW", Layout("NHW", 1, (8, 8))),
        ((2, 50), "NCL", Layout("NCL", 2, (50,))),
        # 2-D: 1-channel signals.
        ((10,), "auto", Layout("NL", 1, (10,))),
        ((1,), "NL", Layout("NL", 1, (1,))),
    ],
)
def test_resolve_layout_branches(sample_shape, input_layout, expected):
    assert resolve_layout(sample_shape, input_layout) == expected


@pytest.mark.parametrize(
    "image_shape, input_layout, expected",
    [
        ((8, 8), "auto", Layout("NHW", 1, (8, 8), (8, 8))),
        ((4, 16), "NHW", Layout("NHW", 1, (4, 16), (4, 16))),
        ((5, 6, 3), "auto", Layout("NHWC", 3, (5, 6), (5, 6, 3))),
        ((3, 5, 6), "auto", Layout("NCHW", 3, (5, 6), (3, 5, 6))),
        ((3, 4, 3), "NCHW", Layout("NCHW", 3, (4, 3), (3, 4, 3))),
        # NumPy integers (e.g. from X.shape or a parameter grid) are integers too.
        (np.array([8, 8]), "auto", Layout("NHW", 1, (8, 8), (8, 8))),
    ],
)
def test_resolve_layout_flat_images(image_shape, input_layout, expected):
    n_features = int(np.prod(image_shape))
    assert resolve_layout((n_features,), input_layout, image_shape) == expected


@pytest.mark.parametrize(
    "sample_shape, input_layout, image_shape, match",
    [
        ((8, 8), "NWHC", None, r"input_layout must be one of"),
        ((8, 8), None, None, r"input_layout must be one of"),
        # Ambiguous channel axis: the message must name the parameter that resolves it.
        ((3, 5, 3), "auto", None, r"input_layout='NHWC'.*input_layout='NCHW'"),
        ((1, 8, 4), "auto", None, r"per-sample shape \(1, 8, 4\).*input_layout"),
        ((5, 6, 7), "auto", None, r"Cannot find a channel axis.*input_layout"),
        ((3, 8, 8), "NCL", None, r"input_layout='NCL' does not describe images"),
        ((3, 8, 8), "NHW", None, r"input_layout='NHW' does not describe images"),
        ((8, 8), "NHWC", None, r"needs a 4-D X"),
        ((8, 8), "NL", None, r"needs a 4-D X"),
        ((10,), "NHW", None, r"2-D X is read as 1-channel signals"),
        ((10,), "NCL", None, r"2-D X is read as 1-channel signals"),
        ((), "auto", None, r"got a 1-D array"),
        ((2, 3, 4, 5), "auto", None, r"got a 5-D array"),
        # image_shape errors.
        ((8, 8), "auto", (8, 8), r"only used for flat 2-D X.*got a 3-D X"),
        ((64,), "auto", (64,), r"image_shape must be \(H, W\), \(H, W, C\) or \(C, H, W\)"),
        ((64,), "auto", (2, 2, 4, 4), r"image_shape must be"),
        ((64,), "auto", (-8, -8), r"positive entries"),
        ((64,), "auto", (0, 8), r"positive entries"),
        ((64,), "auto", (8.0, 8.0), r"tuple of integers"),
        ((64,), "auto", "8x8", r"tuple of integers"),
        ((64,), "auto", (True, 8), r"tuple of integers"),
        ((63,), "auto", (8, 8), r"holds 64 values per image but X has 63 features"),
        ((64,), "NHWC", (8, 8), r"describes grayscale images; input_layout must be 'auto' or 'NHW'"),
        ((27,), "auto", (3, 3, 3), r"input_layout='NHWC'"),
        ((27,), "NL", (3, 3, 3), r"does not describe images"),
    ],
)
def test_resolve_layout_errors(sample_shape, input_layout, image_shape, match):
    with pytest.raises(ValueError, match=match):
        resolve_layout(sample_shape, input_layout, image_shape)


def test_input_layouts_constant():
    assert INPUT_LAYOUTS == ("auto", "NHWC", "NCHW", "NHW", "NCL", "NL")
    # Every explicit layout is accepted for some rank.
    shapes = {"NHWC": (5, 5, 3), "NCHW": (3, 5, 5), "NHW": (5, 5), "NCL": (2, 5), "NL": (5,)}
    for layout, shape in shapes.items():
        assert resolve_layout(shape, layout).layout == layout


def test_layout_is_image():
    assert resolve_layout((8, 8)).is_image
    assert resolve_layout((3, 8, 8)).is_image
    # Square 4x4 colour images are ambiguous: 4 could be a channel count too.
    with pytest.raises(ValueError, match="input_layout"):
        resolve_layout((4, 4, 3))
    assert not resolve_layout((8,)).is_image
    assert not resolve_layout((2, 8), "NCL").is_image


# ------------------------------------------------------------ to_channels_first


def test_to_channels_first_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((5, 5, 6, 3))
    out = to_channels_first(x, resolve_layout(x.shape[1:]))
    np.testing.assert_array_equal(out, np.moveaxis(x, -1, 1))

    x = rng.random((5, 3, 4, 6))
    out = to_channels_first(x, resolve_layout(x.shape[1:]))
    np.testing.assert_array_equal(out, x)
    assert np.shares_memory(out, x)  # channels-first input is not copied

    x = rng.random((5, 4, 6))
    np.testing.assert_array_equal(to_channels_first(x, resolve_layout(x.shape[1:])), x[:, None])

    x = rng.random((5, 7))
    np.testing.assert_array_equal(to_channels_first(x, resolve_layout(x.shape[1:])), x[:, None])

    x = rng.random((5, 2, 7))
    np.testing.assert_array_equal(to_channels_first(x, resolve_layout(x.shape[1:], "NCL")), x)


@pytest.mark.parametrize("image_shape", [(4, 6), (5, 6, 3), (3, 4, 6)])
def test_to_channels_first_flat_rows(image_shape):
    rng = np.random.default_rng(1)
    images = rng.random((5, *image_shape))
    flat = images.reshape(5, -1)
    layout = resolve_layout(flat.shape[1:], "auto", image_shape)
    reference = to_channels_first(images, resolve_layout(images.shape[1:]))
    np.testing.assert_array_equal(to_channels_first(flat, layout), reference)


# ----------------------------------------------------------------- scaling and stats


def test_scale_factor():
    assert scale_factor(np.dtype(np.uint8)) == pytest.approx(1 / 255)
    for dtype in (np.float32, np.float64, np.int64, np.uint16, np.int8):
        assert scale_factor(np.dtype(dtype)) == 1.0


def _reference_stats(x_channels_first: np.ndarray):
    axes = (0,) + tuple(range(2, x_channels_first.ndim))
    return x_channels_first.mean(axis=axes), x_channels_first.std(axis=axes)


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_channel_stats_matches_numpy_nhwc_uint8(chunk):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(10, 5, 6, 3), dtype=np.uint8)
    mean, std = channel_stats(x, resolve_layout(x.shape[1:]), chunk=chunk)
    ref_mean, ref_std = _reference_stats(np.moveaxis(x.astype(np.float64) / 255, -1, 1))
    assert mean.dtype == std.dtype == np.float64
    # Float64 accumulation merged over chunks: agreement to rounding.
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=1e-12)


@pytest.mark.parametrize(
    "shape, layout, image_shape",
    [
        ((9, 2, 5, 4), "auto", None),  # NCHW
        ((9, 5, 4), "auto", None),  # NHW
        ((9, 2, 11), "NCL", None),
        ((9, 11), "auto", None),  # NL
        ((9, 90), "auto", (5, 6, 3)),  # flat NHWC
    ],
)
def test_channel_stats_matches_numpy_layouts(shape, layout, image_shape):
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=shape)
    lay = resolve_layout(x.shape[1:], layout, image_shape)
    mean, std = channel_stats(x, lay, chunk=4)
    ref_mean, ref_std = _reference_stats(to_channels_first(x, lay))
    assert mean.shape == std.shape == (lay.in_channels,)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=1e-12)


def test_channel_stats_constant_channel_gets_unit_std():
    x = np.zeros((6, 2, 8, 3), dtype=np.float32)
    x[..., 0] = 7.0  # constant non-zero channel
    x[..., 2] = np.arange(16, dtype=np.float32).reshape(2, 8)  # spatially varying
    mean, std = channel_stats(x, resolve_layout(x.shape[1:]))
    np.testing.assert_allclose(mean, [7.0, 0.0, 7.5])
    assert std[0] == 1.0 and std[1] == 1.0
    np.testing.assert_allclose(std[2], np.arange(16).std(), rtol=1e-12)


@pytest.mark.parametrize("scale, offset", [(1.0, 1e9), (1e-9, 0.0), (1e9, 0.0), (1e300, 0.0),
                                           (1e-200, 0.0), (1e-13, 5.0), (-3e5, 1e6)])
def test_channel_stats_are_affine_equivariant(scale, offset):
    """Float64 two-level accumulation: a large offset does not cancel the
    variance, squares that overflow (1e300) or underflow (1e-200) are
    measured again rescaled, and a spread of 1e-13 is not "constant"."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 6, 5, 3)) * [1.0, 2.0, 0.5]
    lay = resolve_layout(x.shape[1:])
    mean, std = channel_stats(x, lay, chunk=7)
    m2, s2 = channel_stats(x * scale + offset, lay, chunk=7)
    assert np.isfinite(m2).all() and np.isfinite(s2).all()
    # The data themselves hold offset + scale * x only to float64 precision.
    data_rtol = 1e-6 + 8 * np.finfo(float).eps * abs(offset / scale)
    np.testing.assert_allclose(s2, std * abs(scale), rtol=data_rtol)
    np.testing.assert_allclose((m2 - offset) / scale, mean, atol=data_rtol)
    # Standardised values agree to float32 rounding (and the data's precision).
    a = standardize(x, lay, mean, std).numpy() * np.sign(scale)
    b = standardize(x * scale + offset, lay, m2, s2).numpy()
    np.testing.assert_allclose(a, b, atol=4e-6 + 10 * data_rtol)


def test_moments_pool_exactly_over_shares():
    rng = np.random.default_rng(8)
    blocks = [rng.normal(loc=1e6, size=(n, 3)) for n in (5, 1, 12, 0, 7)]
    whole = finish(accumulate(blocks, 3), blocks)
    pooled = Moments.pooled(np.stack([accumulate([b], 3).as_array() for b in blocks]))
    np.testing.assert_allclose(np.stack(finish(pooled, blocks)), np.stack(whole), rtol=1e-12)
    ref = np.concatenate(blocks)
    np.testing.assert_allclose(whole[1], ref.std(axis=0), rtol=1e-9)


def test_column_stats_constant_only_when_all_values_are_equal():
    a = np.array([[1.0, 5.0, 1e9], [1.0, 5.0 + 1e-12, 1e9 + 1e-6], [1.0, 5.0, 1e9]])
    mean, std = column_stats(a)
    assert std[0] == 1.0  # constant
    assert 0 < std[1] < 1e-11 and 0 < std[2] < 1e-5


def test_data_fingerprint_hashes_every_value(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, size=(64, 4, 4, 3), dtype=np.uint8)
    base = data_fingerprint(x)
    for row in (0, 31, 63):
        y = x.copy()
        y[row, 2, 1, 0] ^= 1
        assert data_fingerprint(y)["sha256"] != base["sha256"], row
    np.save(tmp_path / "x.npy", x)
    assert data_fingerprint(np.load(tmp_path / "x.npy", mmap_mode="r")) == base
    assert data_fingerprint(np.asfortranarray(x)) == base  # layout in memory does not matter


@pytest.mark.parametrize("n, expected", [(3072, "3072 = 32 x 32 x 3"), (64, "64 = 8 x 8"),
                                         (784, "784 = 28 x 28"), (50, None), (16, None), (12, None)])
def test_flat_image_hint(n, expected):
    assert flat_image_hint(n) == expected


def test_channel_stats_reads_memmap_without_copy(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(20, 5, 5, 3), dtype=np.uint8)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    lay = resolve_layout(mm.shape[1:])
    np.testing.assert_array_equal(
        np.stack(channel_stats(mm, lay, chunk=7)), np.stack(channel_stats(x, lay, chunk=7))
    )
    # Other block sizes merge in another order: equal to float64 rounding.
    np.testing.assert_allclose(np.stack(channel_stats(mm, lay, chunk=7)),
                               np.stack(channel_stats(x, lay)), rtol=1e-14)


# ----------------------------------------------------------------- batch_to_tensor


def test_batch_to_tensor_scales_and_standardises():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    lay = resolve_layout(x.shape[1:])
    mean = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    std = np.array([0.5, 2.0, 0.25], dtype=np.float32)
    t = batch_to_tensor(x, lay, mean, std)
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32 and t.device.type == "cpu"
    assert tuple(t.shape) == (4, 3, 5, 6)
    ref = (np.moveaxis(x / 255.0, -1, 1) - mean[None, :, None, None]) / std[None, :, None, None]
    # float32 arithmetic on values of order 1: 1e-5 absolute.
    np.testing.assert_allclose(t.numpy(), ref, atol=1e-5)
    assert t.is_contiguous()


def test_batch_to_tensor_uint8_equals_float_over_255():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    lay = resolve_layout(x.shape[1:])
    mean, std = np.array([0.3], np.float32), np.array([0.2], np.float32)
    a = batch_to_tensor(x, lay, mean, std)
    b = batch_to_tensor(x.astype(np.float64) / 255.0, lay, mean, std)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "shape, layout, image_shape, expected",
    [
        ((4, 7), "auto", None, (4, 1, 7)),
        ((4, 2, 7), "NCL", None, (4, 2, 7)),
        ((4, 16), "auto", (4, 4), (4, 1, 4, 4)),
        ((4, 90), "auto", (3, 5, 6), (4, 3, 5, 6)),
        ((4, 3, 5, 6), "auto", None, (4, 3, 5, 6)),
        ((4, 5, 6, 3), "auto", None, (4, 3, 5, 6)),
    ],
)
def test_batch_to_tensor_shapes(shape, layout, image_shape, expected):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    lay = resolve_layout(x.shape[1:], layout, image_shape)
    c = lay.in_channels
    t = batch_to_tensor(x, lay, np.zeros(c, np.float32), np.ones(c, np.float32))
    assert tuple(t.shape) == expected
    np.testing.assert_array_equal(t.numpy(), to_channels_first(x, lay).astype(np.float32))


def test_batch_to_tensor_does_not_modify_input():
    x = np.ones((2, 5, 5, 3), dtype=np.float32)
    before = x.copy()
    lay = resolve_layout(x.shape[1:])
    batch_to_tensor(x, lay, np.full(3, 0.5, np.float32), np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(x, before)
