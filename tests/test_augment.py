import pytest
import torch
import torch.nn.functional as F

from skdim.nn.augment import augment_batch, crop_padding, flip_horizontal, shift_crop


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
