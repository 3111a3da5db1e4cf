import pytest
import torch

from skdim.nn.multiple_globals import block_mask, mask_blocks, sample_block_origins


def test_origins_cover_the_7x7_grid_and_stay_inside():
    g = torch.Generator().manual_seed(0)
    origins = sample_block_origins(2000, (7, 7), g)
    assert origins.shape == (2000, 2)
    assert int(origins.min()) == 0 and int(origins.max()) == 4  # 3x3 blocks fit in 7
    # All 25 block positions are drawn, roughly uniformly (80 expected each).
    counts = torch.bincount(origins[:, 0] * 5 + origins[:, 1], minlength=25)
    assert counts.numel() == 25 and int(counts.min()) > 40


def test_block_mask_is_a_3x3_block_inside_the_grid():
    g = torch.Generator().manual_seed(1)
    origins = sample_block_origins(50, (7, 7), g)
    mask = block_mask(origins, (7, 7))
    assert mask.shape == (50, 7, 7)
    assert torch.equal(mask.sum(dim=(1, 2)), torch.full((50,), 9))
    for b in range(50):
        i, j = origins[b].tolist()
        assert bool(mask[b, i : i + 3, j : j + 3].all())


def test_mask_blocks_zeroes_outside():
    local = torch.rand(4, 5, 7, 7, generator=torch.Generator().manual_seed(2)) + 0.1
    origins = torch.tensor([[0, 0], [4, 4], [2, 1], [0, 4]])
    out = mask_blocks(local, origins)
    nonzero = (out != 0).any(dim=1)
    assert torch.equal(nonzero, block_mask(origins, (7, 7)))
    assert torch.equal(out[nonzero.unsqueeze(1).expand_as(out)], local[nonzero.unsqueeze(1).expand_as(local)])


def test_one_dimensional_and_too_small_grids():
    origins = sample_block_origins(100, (7,), torch.Generator().manual_seed(0))
    assert origins.shape == (100, 1) and int(origins.max()) == 4
    with pytest.raises(ValueError, match="at least 3 locations"):
        sample_block_origins(2, (2, 7))
