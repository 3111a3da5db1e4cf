import pytest
import torch
import torch.nn.functional as F

from skdim.nn.augment import (
    augment_batch,
    crop_padding,
    flip_horizontal,
    intensity_jitter,
    resized_crop,
    shift_crop,
)


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_padding_scales_with_the_side():
    assert [crop_padding(s) for s in (32, 64, 96, 8, 7)] == [4, 8, 12, 1, 0]


def test_shift_crop_matches_a_loop():
    x = _x(3, 2, 6, 5)
    pad = 2
    offsets = torch.tensor([[0, 4], [2, 2], [4, 1]])
    out = shift_crop(x, offsets, pad)
    padded = F.pad(x, [pad] * 4)
    for b in range(3):
        i, j = offsets[b].tolist()
        assert torch.equal(out[b], padded[b, :, i : i + 6, j : j + 5])
    assert torch.equal(out[1], x[1])  # offset == pad is the identity


def test_flip():
    x = _x(2, 1, 3, 4)
    out = flip_horizontal(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def _is_shift_or_flip(out, x, pad):
    for flipped in (x, x.flip(-1)):
        padded = F.pad(flipped, [pad] * 4)
        side_h, side_w = x.shape[-2:]
        for i in range(2 * pad + 1):
            for j in range(2 * pad + 1):
                if torch.equal(out, padded[:, i : i + side_h, j : j + side_w]):
                    return True
    return False


def test_augment_batch_is_a_random_shift_and_flip():
    x = _x(16, 3, 16, 16)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    # Each image is its own original, shifted by at most side // 8 and maybe flipped;
    # flipping happens after the shift, which is the same set of images.
    assert all(_is_shift_or_flip(out[b], x[b], 2) for b in range(16))
    assert sum(not torch.equal(out[b], x[b]) for b in range(16)) >= 12


def test_flips_are_about_half():
    x = _x(400, 1, 7, 7)  # side 7: no shift, only flips
    out = augment_batch(x, torch.Generator().manual_seed(1))
    same = torch.tensor([torch.equal(out[b], x[b]) for b in range(400)]).float()
    flipped = torch.tensor([torch.equal(out[b], x[b].flip(-1)) for b in range(400)]).float()
    assert bool(((same + flipped) >= 1).all())
    assert 0.4 < float(flipped.mean()) < 0.6  # binomial(400, 1/2): sd 0.025


def test_seeded_reproducible_and_different_across_seeds():
    x = _x(8, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    c = augment_batch(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_signals_are_shifted_not_flipped():
    x = _x(50, 2, 24)  # pad 3
    out = augment_batch(x, torch.Generator().manual_seed(0))
    padded = F.pad(x, [3, 3])
    for b in range(50):
        assert any(torch.equal(out[b], padded[b, :, k : k + 24]) for k in range(7))
    with pytest.raises(ValueError, match="augment expects"):
        augment_batch(_x(2, 1, 2, 2, 2), torch.Generator())


# ------------------------------------------------------------- "strong" recipe


def _ramp(b, c, h, w, axis):
    """Images whose value is the pixel's column (axis=-1) or row (axis=-2) index."""
    ramp = torch.arange(float(w if axis == -1 else h))
    ramp = ramp.reshape(1, 1, 1, w) if axis == -1 else ramp.reshape(1, 1, h, 1)
    return ramp.expand(b, c, h, w).clone()


def test_resized_crop_is_a_zoom_into_a_box_of_the_right_area():
    # Bilinear resampling of a ramp is a ramp: its slope is the box's width
    # (or height) as a fraction of the side, negative when flipped.
    gen = torch.Generator().manual_seed(0)
    b = 64
    widths = resized_crop(_ramp(b, 1, 32, 32, -1), torch.Generator().manual_seed(3))
    heights = resized_crop(_ramp(b, 1, 32, 32, -2), torch.Generator().manual_seed(3))
    dx = widths[:, 0, :, 8:24].diff(dim=-1)
    dy = heights[:, 0, 8:24, :].diff(dim=-2)
    w = dx[:, 0, 0]
    h = dy[:, 0, 0]
    # Constant slope inside (the box stays inside the image) ...
    torch.testing.assert_close(dx, w.reshape(b, 1, 1).expand_as(dx), atol=1e-4, rtol=0)
    torch.testing.assert_close(dy, h.reshape(b, 1, 1).expand_as(dy), atol=1e-4, rtol=0)
    # ... of 20-100% of the area, aspect within 3/4-4/3 unless a side was
    # clipped to the whole image.
    area = w.abs() * h
    assert bool(((area >= 0.2 - 1e-4) & (area <= 1 + 1e-5)).all()) and bool((h > 0).all())
    ratio = w.abs() / h
    inside = (w.abs() < 0.999) & (h < 0.999)
    assert bool(((ratio[inside] > 0.74) & (ratio[inside] < 1.35)).all())
    # About half of the boxes are mirrored; the draws follow the generator.
    assert 16 < int((w < 0).sum()) < 48
    assert torch.equal(widths, resized_crop(_ramp(b, 1, 32, 32, -1), torch.Generator().manual_seed(3)))
    assert not torch.equal(widths, resized_crop(_ramp(b, 1, 32, 32, -1), gen))


def test_resized_crop_of_signals_keeps_their_direction():
    x = torch.arange(40.0).expand(20, 2, 40).clone()
    out = resized_crop(x, torch.Generator().manual_seed(0))
    slope = out[:, :, 10:30].diff(dim=-1)
    assert out.shape == x.shape
    assert bool((slope > 0.19).all()) and bool((slope < 1.0 + 1e-4).all())


def test_intensity_jitter_bounds_and_grayscale():
    x = _x(200, 1, 8, 8)
    out = intensity_jitter(x, torch.Generator().manual_seed(0), p=1.0)
    # Brightness and contrast each scale the spread by 0.6-1.4.
    ratio = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert bool((ratio > 0.36 - 1e-4).all()) and bool((ratio < 1.96 + 1e-4).all())
    assert float(ratio.std()) > 0.1  # really random per sample
    rgb = _x(400, 3, 4, 4)
    out = intensity_jitter(rgb, torch.Generator().manual_seed(1))
    gray = (out == out[:, :1]).flatten(1).all(dim=1).float()
    assert 0.14 < float(gray.mean()) < 0.26  # binomial(400, 0.2): sd 0.02
    untouched = torch.tensor([torch.allclose(out[i], rgb[i], atol=1e-6) for i in range(400)]).float()
    assert 0.12 < float(untouched.mean()) < 0.25  # (1 - 0.8) * (1 - 0.2) = 0.16


def test_strong_augmentation_of_a_batch():
    x = _x(16, 3, 32, 32)
    out = augment_batch(x, torch.Generator().manual_seed(0), "strong")
    assert out.shape == x.shape and out.dtype == x.dtype and bool(torch.isfinite(out).all())
    assert torch.equal(out, augment_batch(x, torch.Generator().manual_seed(0), "strong"))
    assert all(not torch.allclose(out[b], x[b]) for b in range(16))
    signal = augment_batch(_x(4, 2, 50), torch.Generator().manual_seed(0), "strong")
    assert signal.shape == (4, 2, 50)
    bf16 = augment_batch(x.bfloat16(), torch.Generator().manual_seed(0), "strong")
    assert bf16.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="kind must be one of"):
        augment_batch(x, torch.Generator(), "heavy")
