"""Input occlusion for the global feature (paper section 4.3, appendix A.7).

With occlusion, the global feature ``Y`` that the critics score is computed
from an occluded copy of the input while the local features come from the
full input, so ``Y`` has to carry information shared across the whole image.

The paper's sampler was "ad hoc": random occlusions constrained so that at
least one 10x10 block of pixels stays visible and at least one is fully
occluded on 32x32 images -- 10x10 being the receptive field of the 8x8 local
features, so at least one local feature is fully observed and one fully
unobserved. :func:`occlusion_mask` keeps that guarantee for any input size
(and for 1-D signals), with the block side scaled with the input:
``round(side * 10 / 32)``, which gives the paper's 10 on 32x32 and 20 on
64x64 (the receptive field of the AlexNet-like encoder's local map is 21).

Each mask is the union of two occluders -- the guaranteed occluded block and
one random rectangle whose sides are drawn between one block and half the
input -- with the guaranteed visible block cut back out. The two guaranteed
blocks are placed so that they never overlap. Occluded inputs are set to 0,
which after the estimator's per-channel standardisation is the mean colour.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "PAPER_BLOCK_FRACTION",
    "occlusion_block_size",
    "check_occludable",
    "occlusion_mask",
    "box_mask",
    "occlude",
]

# 10x10 blocks on 32x32 inputs.
PAPER_BLOCK_FRACTION = 10 / 32


def occlusion_block_size(
    spatial: Sequence[int], fraction: float = PAPER_BLOCK_FRACTION
) -> tuple[int, ...]:
    """Side of the guaranteed visible / occluded block along each axis.

    Parameters
    ----------
    spatial : sequence of int
        Spatial shape of one input, ``(H, W)`` or ``(L,)``.
    fraction : float, default=10/32
        Block side as a fraction of the input side (the paper's 10 of 32).

    Returns
    -------
    block : tuple of int
        ``max(1, round(side * fraction))`` per axis.

    Examples
    --------
    >>> from skdim.nn.occlusion import occlusion_block_size
    >>> occlusion_block_size((32, 32))  # the paper's 10x10 blocks
    (10, 10)
    >>> occlusion_block_size((64, 48))
    (20, 15)
    >>> occlusion_block_size((3,))  # never below one position
    (1,)
    >>> occlusion_block_size((8, 8), fraction=0.5)
    (4, 4)
    """
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5]; got {fraction!r}.")
    return tuple(max(1, int(round(s * fraction))) for s in spatial)


def check_occludable(spatial: Sequence[int], block: Sequence[int]) -> list[int]:
    """Axes along which a visible and an occluded block fit side by side.

    Raises a ValueError when there is none: the two guaranteed blocks cannot
    both exist in such an input (e.g. a single pixel).

    Examples
    --------
    >>> from skdim.nn.occlusion import check_occludable
    >>> check_occludable((32, 32), (10, 10))
    [0, 1]
    >>> check_occludable((32, 15), (10, 10))  # no room along the width
    [0]
    >>> check_occludable((1, 1), (1, 1))
    Traceback (most recent call last):
        ...
    ValueError: occlusion=True needs room for a visible and a fully occluded block of 1x1 ...
    """
    spatial, block = tuple(spatial), tuple(block)
    if len(spatial) != len(block) or len(spatial) not in (1, 2):
        raise ValueError(
            f"spatial and block must both be (H, W) or (L,); got {spatial} and {block}."
        )
    if any(b < 1 or b > s for s, b in zip(spatial, block)):
        raise ValueError(f"Every block side must be in [1, side]; got block {block} for input {spatial}.")
    axes = [a for a, (s, b) in enumerate(zip(spatial, block)) if s >= 2 * b]
    if not axes:
        raise ValueError(
            f"occlusion=True needs room for a visible and a fully occluded block of "
            f"{'x'.join(map(str, block))} side by side, but the input is only "
            f"{'x'.join(map(str, spatial))}; inputs need at least 2 positions along one axis."
        )
    return axes


def box_mask(start: Tensor, length: Tensor, spatial: Sequence[int]) -> Tensor:
    """Boolean masks of axis-aligned boxes, one per row.

    Parameters
    ----------
    start, length : Tensor of shape (B, n_axes)
        Integer corner and side of each box.
    spatial : sequence of int
        Spatial shape of the mask.

    Returns
    -------
    mask : Tensor of shape ``(B, *spatial)``, bool
        True inside the box.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.occlusion import box_mask
    >>> start = torch.tensor([[1, 2]])   # row 1, column 2
    >>> length = torch.tensor([[2, 3]])  # 2 rows, 3 columns
    >>> box_mask(start, length, (4, 6)).long()
    tensor([[[0, 0, 0, 0, 0, 0],
             [0, 0, 1, 1, 1, 0],
             [0, 0, 1, 1, 1, 0],
             [0, 0, 0, 0, 0, 0]]])

    One box per row, here on 1-D signals of length 5:

    >>> box_mask(torch.tensor([[0], [3]]), torch.tensor([[2], [1]]), (5,))
    tensor([[ True,  True, False, False, False],
            [False, False, False,  True, False]])
    """
    inside = None
    n_axes = len(spatial)
    for a, side in enumerate(spatial):
        coord = torch.arange(side, device=start.device)
        view = [-1] + [1] * n_axes
        view[1 + a] = side
        lo = start[:, a].reshape([-1] + [1] * n_axes)
        hi = lo + length[:, a].reshape([-1] + [1] * n_axes)
        along = (coord.reshape(view) >= lo) & (coord.reshape(view) < hi)
        inside = along if inside is None else inside & along
    return inside


def _randint(high: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform integers in ``[0, high]`` (inclusive), elementwise."""
    u = torch.rand(high.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * (high + 1).to(torch.float64)).long(), high)


def occlusion_mask(
    batch_size: int,
    spatial: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    block: Sequence[int] | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sample occlusion masks with a guaranteed visible and occluded block.

    Parameters
    ----------
    batch_size : int
        Number of masks.
    spatial : sequence of int
        Spatial shape of the input, ``(H, W)`` or ``(L,)``.
    generator : torch.Generator, default=None
        Source of randomness (a CPU generator); all draws happen on the CPU so
        that the masks do not depend on the device.
    block : sequence of int, default=None
        Side of the guaranteed blocks per axis; ``None`` uses
        :func:`occlusion_block_size`.
    device : torch.device or str, default=None
        Where the mask is built.

    Returns
    -------
    mask : Tensor of shape ``(batch_size, *spatial)``, bool
        True where the input stays visible. Every mask has a fully visible
        and a fully occluded ``block``-sized box.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.occlusion import occlusion_mask
    >>> gen = torch.Generator().manual_seed(0)
    >>> mask = occlusion_mask(4, (32, 32), gen)
    >>> mask.shape, mask.dtype
    (torch.Size([4, 32, 32]), torch.bool)

    Every mask keeps one 10x10 block fully visible and one fully occluded:

    >>> windows = mask.unfold(1, 10, 1).unfold(2, 10, 1).flatten(-2)
    >>> bool(windows.all(-1).flatten(1).any(1).all())
    True
    >>> bool((~windows).all(-1).flatten(1).any(1).all())
    True
    """
    spatial = tuple(int(s) for s in spatial)
    block = occlusion_block_size(spatial) if block is None else tuple(int(b) for b in block)
    axes = check_occludable(spatial, block)
    n = int(batch_size)
    side = torch.tensor(spatial)
    size = torch.tensor(block)
    free = (side - size).expand(n, -1)

    # The two guaranteed blocks: independent positions along every axis,
    # except along one separating axis (drawn among those with room), where
    # they are laid side by side so that they can never overlap.
    visible = _randint(free, generator)
    occluded = _randint(free, generator)
    axis_pick = _randint(torch.full((n,), len(axes) - 1), generator)
    first_is_visible = torch.rand(n, generator=generator) < 0.5
    for k, a in enumerate(axes):
        gap = int(spatial[a] - 2 * block[a])
        ends = torch.sort(_randint(torch.full((n, 2), gap), generator), dim=1).values
        first, second = ends[:, 0], ends[:, 1] + block[a]
        chosen = axis_pick == k
        visible[:, a] = torch.where(chosen, torch.where(first_is_visible, first, second), visible[:, a])
        occluded[:, a] = torch.where(chosen, torch.where(first_is_visible, second, first), occluded[:, a])

    # One extra random occluder, between one block and half the input per side.
    longest = torch.maximum(side // 2, size)
    extra_len = size + _randint((longest - size).expand(n, -1), generator)
    extra_start = _randint(side - extra_len, generator)

    to = lambda t: t.to(device) if device is not None else t  # noqa: E731
    hidden = box_mask(to(occluded), to(size.expand(n, -1)), spatial)
    hidden |= box_mask(to(extra_start), to(extra_len), spatial)
    return ~hidden | box_mask(to(visible), to(size.expand(n, -1)), spatial)


def occlude(x: Tensor, mask: Tensor) -> Tensor:
    """Zero the occluded positions of ``x`` ``(B, C, *S)`` given ``mask`` ``(B, *S)``.

    Every channel is zeroed where ``mask`` is False.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.occlusion import occlude
    >>> x = torch.arange(1.0, 7.0).reshape(1, 2, 3)  # 1 signal, 2 channels, length 3
    >>> mask = torch.tensor([[True, False, True]])
    >>> occlude(x, mask)
    tensor([[[1., 0., 3.],
             [4., 0., 6.]]])

    With a sampled mask for a batch of images:

    >>> from skdim.nn.occlusion import occlusion_mask
    >>> images = torch.ones(2, 3, 32, 32)
    >>> mask = occlusion_mask(2, (32, 32), torch.Generator().manual_seed(0))
    >>> out = occlude(images, mask)
    >>> out.shape
    torch.Size([2, 3, 32, 32])
    >>> bool((out == mask.unsqueeze(1)).all())  # ones kept where visible, 0 elsewhere
    True
    """
    if mask.shape[0] != x.shape[0] or mask.shape[1:] != x.shape[2:]:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not match inputs of shape {tuple(x.shape)}; "
            "expected (batch, *spatial)."
        )
    return x * mask.unsqueeze(1).to(x.dtype)
