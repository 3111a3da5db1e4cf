import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skdim.nn.occlusion import (
    box_mask,
    check_occludable,
    occlude,
    occlusion_block_size,
    occlusion_mask,
)


def _windows(mask, block):
    """All block-sized windows of (B, *S) masks: (B, n_windows, prod(block))."""
    w = mask
    for a, b in enumerate(block):
        w = w.unfold(1 + a, b, 1)
    return w.reshape(mask.shape[0], -1, *block).flatten(2)


def _has_visible_and_occluded_block(mask, block):
    w = _windows(mask, block)
    visible = w.all(dim=2).any(dim=1)
    occluded = (~w).all(dim=2).any(dim=1)
    return visible, occluded


def test_paper_block_size():
    # Appendix A.7: 10x10 blocks on 32x32 inputs; scaled with the input.
    assert occlusion_block_size((32, 32)) == (10, 10)
    assert occlusion_block_size((64, 64)) == (20, 20)
    assert occlusion_block_size((8, 8)) == (2, 2)
    assert occlusion_block_size((1, 40)) == (1, 12)
    assert occlusion_block_size((100,)) == (31,)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.one_of(
        st.tuples(st.integers(1, 40), st.integers(2, 40)),
        st.tuples(st.integers(2, 40), st.integers(1, 40)),
        st.tuples(st.integers(2, 80)),
    ),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_mask_has_a_visible_and_an_occluded_block(shape, seed):
    block = occlusion_block_size(shape)
    g = torch.Generator().manual_seed(seed)
    mask = occlusion_mask(16, shape, g)
    assert mask.shape == (16, *shape) and mask.dtype == torch.bool
    visible, occluded = _has_visible_and_occluded_block(mask, block)
    assert bool(visible.all()) and bool(occluded.all())


@pytest.mark.parametrize("shape", [(32, 32), (8, 8), (28, 17), (50,)])
def test_guarantee_over_many_seeds(shape):
    block = occlusion_block_size(shape)
    for seed in range(40):
        mask = occlusion_mask(32, shape, torch.Generator().manual_seed(seed))
        visible, occluded = _has_visible_and_occluded_block(mask, block)
        assert bool(visible.all()) and bool(occluded.all()), seed


def test_explicit_block_and_partial_occlusion_amount():
    g = torch.Generator().manual_seed(0)
    mask = occlusion_mask(512, (32, 32), g)
    hidden = 1 - mask.float().mean()
    # One 10x10 block (~10%) plus a rectangle of 10..16 per side (10..25%),
    # overlapping at random: a real but partial occlusion.
    assert 0.12 < float(hidden) < 0.4
    # Masks differ between images (the sampler is not degenerate).
    assert len({tuple(m.flatten().tolist()) for m in mask[:50]}) == 50
    mask = occlusion_mask(64, (32, 32), g, block=(4, 6))
    visible, occluded = _has_visible_and_occluded_block(mask, (4, 6))
    assert bool(visible.all()) and bool(occluded.all())


def test_seeded_and_device_independent_draws():
    a = occlusion_mask(8, (16, 16), torch.Generator().manual_seed(3))
    b = occlusion_mask(8, (16, 16), torch.Generator().manual_seed(3))
    c = occlusion_mask(8, (16, 16), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    meta = occlusion_mask(8, (16, 16), torch.Generator().manual_seed(3), device="meta")
    assert meta.device.type == "meta" and meta.shape == a.shape


def test_box_mask():
    m = box_mask(torch.tensor([[1, 2]]), torch.tensor([[2, 3]]), (4, 6))
    expected = torch.zeros(1, 4, 6, dtype=torch.bool)
    expected[0, 1:3, 2:5] = True
    assert torch.equal(m, expected)


def test_occlude_zeroes_hidden_positions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 5, generator=g)
    mask = torch.rand(2, 5, 5, generator=g) > 0.5
    out = occlude(x, mask)
    assert torch.equal(out[~mask.unsqueeze(1).expand_as(x)], torch.zeros(int((~mask).sum()) * 3))
    assert torch.equal(out[mask.unsqueeze(1).expand_as(x)], x[mask.unsqueeze(1).expand_as(x)])
    with pytest.raises(ValueError, match="does not match"):
        occlude(x, mask[:, :4])


def test_too_small_input_is_rejected():
    with pytest.raises(ValueError, match="at least 2 positions"):
        occlusion_mask(2, (1, 1), torch.Generator())
    with pytest.raises(ValueError, match="at least 2 positions"):
        check_occludable((1,), (1,))
    assert check_occludable((32, 5), (10, 3)) == [0]
    with pytest.raises(ValueError, match="fraction"):
        occlusion_block_size((32, 32), fraction=0.9)
