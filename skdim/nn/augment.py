"""Random crops and horizontal flips of a batch, on its device.

The paper augments STL-10 with random crops and horizontal flips (section
4.1). Here a random crop is *pad-and-crop*: the batch is zero-padded by
``side // 8`` on every side (4 pixels on 32x32, the usual CIFAR setting) and
each image is cut back to its original size at a random offset, i.e. shifted
by up to ``side // 8`` pixels. It keeps the input size, so the encoder that
:meth:`transform` uses sees the same shape as in fit (the paper's STL-10
crop-to-64 then evaluates on another size, which a scikit-learn transformer
cannot do). Zero is the per-channel mean after the estimator's
standardisation. Images are flipped left-right with probability 1/2; 1-D
signals are only shifted (time reversal is not a natural symmetry of a
signal).

All random draws come from the caller's CPU generator, so the result does not
depend on the device; the cropping and flipping run where the batch is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["crop_padding", "shift_crop", "flip_horizontal", "augment_batch"]


def crop_padding(side: int) -> int:
    """Padding (and maximal shift) of the random crop: ``side // 8``.

    Examples
    --------
    >>> from skdim.nn.augment import crop_padding
    >>> crop_padding(32), crop_padding(64), crop_padding(7)
    (4, 8, 0)
    """
    return int(side) // 8


def shift_crop(x: Tensor, offsets: Tensor, pad: int) -> Tensor:
    """Zero-pad ``x`` by ``pad`` and crop each sample back at ``offsets``.

    Parameters
    ----------
    x : Tensor of shape ``(B, C, *S)``
        Images ``(H, W)`` or signals ``(L,)``.
    offsets : Tensor of shape (B, n_axes), int64
        Crop corner in the padded input, in ``[0, 2 * pad]``; ``pad`` gives
        the input back unchanged.
    pad : int

    Returns
    -------
    out : Tensor of the shape of ``x``
        ``out[b, :, i, j] = x[b, :, i + offsets[b, 0] - pad, j + offsets[b, 1] - pad]``
        and 0 outside ``x``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.augment import shift_crop
    >>> x = torch.tensor([[[1, 2, 3, 4]], [[1, 2, 3, 4]]])
    >>> shift_crop(x, torch.tensor([[0], [1]]), pad=1).tolist()  # shift right by 1; unchanged
    [[[0, 1, 2, 3]], [[1, 2, 3, 4]]]
    """
    if pad == 0:
        return x
    spatial = x.shape[2:]
    padded = F.pad(x, [pad] * (2 * len(spatial)))
    # Sliding windows of the original size are a strided view: no copy until
    # the per-sample window is picked.
    windows = padded
    for a, side in enumerate(spatial):
        windows = windows.unfold(2 + a, side, 1)  # adds (side,) at the end
    # windows: (B, C, 2p+1, [2p+1,] *S)
    offsets = offsets.to(x.device)
    index = (torch.arange(x.shape[0], device=x.device), slice(None), *offsets.unbind(1))
    return windows[index]


def flip_horizontal(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror the last axis of the samples where ``flip`` (B,) is True.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.augment import flip_horizontal
    >>> x = torch.arange(6).reshape(2, 1, 3)
    >>> flip_horizontal(x, torch.tensor([True, False])).tolist()
    [[[2, 1, 0]], [[3, 4, 5]]]
    """
    flip = flip.to(x.device).reshape(-1, *([1] * (x.dim() - 1)))
    return torch.where(flip, x.flip(-1), x)


def augment_batch(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random shift-crop (pad ``side // 8``) and, for images, random flips.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W) or (B, C, L)
        The standardised batch, on any device.
    generator : torch.Generator, default=None
        CPU generator for the random offsets and flips.

    Returns
    -------
    out : Tensor of the shape, dtype and device of ``x``

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.augment import augment_batch
    >>> x = torch.ones(4, 3, 16, 16)
    >>> out = augment_batch(x, generator=torch.Generator().manual_seed(0))
    >>> out.shape == x.shape, out.dtype == x.dtype
    (True, True)
    >>> bool(((out == 0) | (out == 1)).all())  # shifted pixels, zero padding
    True
    """
    spatial = x.shape[2:]
    if len(spatial) not in (1, 2):
        raise ValueError(f"augment expects (B, C, H, W) or (B, C, L); got shape {tuple(x.shape)}.")
    b = x.shape[0]
    pads = [crop_padding(s) for s in spatial]
    offsets = torch.stack(
        [torch.randint(2 * p + 1, (b,), generator=generator) for p in pads], dim=1
    )
    # One padding for all axes keeps the crop a single strided view; an axis
    # with a smaller pad just has its offsets shifted into the larger frame.
    pad = max(pads)
    out = shift_crop(x, offsets + torch.tensor([pad - p for p in pads]), pad)
    if len(spatial) == 2:
        out = flip_horizontal(out, torch.rand(b, generator=generator) < 0.5)
    return out
