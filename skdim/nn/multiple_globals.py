"""Multiple globals (paper section 4.2, table 3).

Besides the global code computed from the whole local map, "less global"
codes are computed from random 3x3 blocks of the 7x7 local map of the
strided-crop encoder (:mod:`skdim.nn.crops`) and scored against the *full*
local map by one MI critic shared by every block position -- the paper calls
it an instance of occlusion, at the level of local features. A block code is
the encoder's own head (``summarize``) applied to the local map with every
location outside the block set to 0 (local features are post-ReLU, so 0 is
"no activation"); one block per image is drawn at every step, so all 25
positions are visited over training.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .occlusion import box_mask

__all__ = ["BLOCK_SIZE", "check_block_grid", "sample_block_origins", "block_mask", "mask_blocks"]

BLOCK_SIZE = 3


def check_block_grid(grid_shape: Sequence[int], block: int = BLOCK_SIZE) -> tuple[int, ...]:
    """The grid as a tuple, after checking that a ``block``-sided block fits in it.

    Examples
    --------
    >>> from skdim.nn.multiple_globals import check_block_grid
    >>> check_block_grid((7, 7))
    (7, 7)
    >>> check_block_grid((2, 7))
    Traceback (most recent call last):
    ...
    ValueError: multiple_globals needs a local map of at least 3 locations along every axis to place 3-sided blocks; got a local map of shape (2, 7).
    """
    grid = tuple(int(s) for s in grid_shape)
    if any(s < block for s in grid):
        raise ValueError(
            f"multiple_globals needs a local map of at least {block} locations along every "
            f"axis to place {block}-sided blocks; got a local map of shape {grid}."
        )
    return grid


def sample_block_origins(
    batch_size: int,
    grid_shape: Sequence[int],
    generator: torch.Generator | None = None,
    block: int = BLOCK_SIZE,
    device: torch.device | str | None = None,
) -> Tensor:
    """Top-left corner of one random ``block``-sided block per image.

    Parameters
    ----------
    batch_size : int
    grid_shape : sequence of int
        Spatial shape of the local map, e.g. ``(7, 7)``.
    generator : torch.Generator, default=None
        CPU generator; draws never depend on the device.
    block : int, default=3
        Block side along every axis.

    Returns
    -------
    origins : Tensor of shape (batch_size, n_axes), int64
        Uniform over the ``prod(side - block + 1)`` positions where the block
        lies inside the grid.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.multiple_globals import sample_block_origins
    >>> gen = torch.Generator().manual_seed(0)
    >>> origins = sample_block_origins(5, (7, 7), gen)
    >>> origins.shape, origins.dtype
    (torch.Size([5, 2]), torch.int64)

    A 3x3 block fits in a 7x7 map at corners 0 to 4 along each axis:

    >>> bool(((origins >= 0) & (origins <= 4)).all())
    True
    """
    grid = check_block_grid(grid_shape, block)
    cols = [torch.randint(s - block + 1, (int(batch_size),), generator=generator) for s in grid]
    origins = torch.stack(cols, dim=1)
    return origins if device is None else origins.to(device)


def block_mask(origins: Tensor, grid_shape: Sequence[int], block: int = BLOCK_SIZE) -> Tensor:
    """Boolean ``(B, *grid_shape)`` masks, True inside each image's block.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.multiple_globals import block_mask
    >>> block_mask(torch.tensor([[1, 2]]), (4, 5), block=2).long()
    tensor([[[0, 0, 0, 0, 0],
             [0, 0, 1, 1, 0],
             [0, 0, 1, 1, 0],
             [0, 0, 0, 0, 0]]])

    With the default 3x3 blocks, each mask covers 9 locations:

    >>> block_mask(torch.tensor([[0, 0], [4, 4]]), (7, 7)).sum((1, 2))
    tensor([9, 9])
    """
    return box_mask(origins, torch.full_like(origins, block), grid_shape)


def mask_blocks(local_map: Tensor, origins: Tensor, block: int = BLOCK_SIZE) -> Tensor:
    """Zero every location of ``local_map`` ``(B, C, *S)`` outside each block.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.multiple_globals import mask_blocks
    >>> local_map = torch.ones(1, 2, 4, 4)  # 1 image, 2 channels, 4x4 locations
    >>> out = mask_blocks(local_map, torch.tensor([[0, 1]]), block=2)
    >>> out.shape
    torch.Size([1, 2, 4, 4])
    >>> out[0, 0]
    tensor([[0., 1., 1., 0.],
            [0., 1., 1., 0.],
            [0., 0., 0., 0.],
            [0., 0., 0., 0.]])
    """
    mask = block_mask(origins, local_map.shape[2:], block)
    return local_map * mask.unsqueeze(1).to(local_map.dtype)
