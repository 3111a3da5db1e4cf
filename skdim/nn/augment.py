"""Random augmentations of a standardised batch, on its device.

Two strengths (``augment_batch(kind=...)``):

``"crop_flip"``
    The paper's setting, described below: pad-and-crop shifts and flips.
``"strong"``
    What the contrastive methods that followed DIM use to make every epoch
    new data (AMDIM, SimCLR): a random-area crop resized back to the input
    size (:func:`resized_crop`, area 20-100%, aspect 3/4-4/3, with the flip),
    then, with probability 0.8, intensity jitter (:func:`intensity_jitter`:
    brightness, contrast and saturation factors in ``[0.6, 1.4]``) and, with
    probability 0.2, grayscale (multi-channel inputs). The jitter acts on the
    standardised values (each channel centred on the data set's mean), so it
    is in the spirit of torchvision's ``ColorJitter``, not its exact
    arithmetic on ``[0, 1]`` pixels; hue is not jittered.

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

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AUGMENTATIONS", "crop_padding", "shift_crop", "flip_horizontal", "resized_crop",
           "intensity_jitter", "augment_batch"]

#: The strengths of :func:`augment_batch`.
AUGMENTATIONS: tuple[str, ...] = ("crop_flip", "strong")
# The "strong" recipe: SimCLR's CIFAR-10 ranges, with a less extreme
# smallest crop (8% of a 32x32 image is 9x9 pixels, below what DIM's local
# features see).
CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER_STRENGTH, JITTER_P, GRAYSCALE_P = 0.4, 0.8, 0.2


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


def _uniform(n: int, low: float, high: float, generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def resized_crop(x: Tensor, generator: torch.Generator | None = None,
                 scale: tuple[float, float] = CROP_SCALE,
                 ratio: tuple[float, float] = CROP_RATIO, flip_p: float = 0.5) -> Tensor:
    """Crop a random box of each sample and resize it back to the input size.

    The box covers a fraction of the area drawn uniformly from ``scale``,
    with an aspect ratio (width / height) log-uniform in ``ratio``, clipped to
    the input and placed uniformly inside it; images are also mirrored with
    probability ``flip_p``. Resampling is bilinear. Signals ``(B, C, L)``
    crop a segment of ``scale`` of the length (no flip).

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W) or (B, C, L)
    generator : torch.Generator, default=None
        CPU generator of the boxes and flips.
    scale, ratio : tuple of float
    flip_p : float, default=0.5

    Returns
    -------
    out : Tensor of the shape and dtype of ``x``

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.augment import resized_crop
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> torch.allclose(resized_crop(x, scale=(1, 1), ratio=(1, 1), flip_p=0.0), x)  # whole box
    True
    >>> resized_crop(x, scale=(1, 1), ratio=(1, 1), flip_p=1.0)[0, 0, 0].tolist()  # mirrored
    [3.0, 2.0, 1.0, 0.0]
    """
    b = x.shape[0]
    signal = x.dim() == 3
    area = _uniform(b, *scale, generator)
    if signal:
        w, h = area.clamp(max=1.0), torch.ones(b, dtype=torch.float64)
    else:
        log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator)
        w = (area * log_r.exp()).sqrt().clamp(max=1.0)
        h = (area / log_r.exp()).sqrt().clamp(max=1.0)
    # Box centre in [-1, 1] coordinates, so that the box stays inside.
    cx = (1 - w) * (2 * torch.rand(b, generator=generator, dtype=torch.float64) - 1)
    cy = torch.zeros(b, dtype=torch.float64) if signal else \
        (1 - h) * (2 * torch.rand(b, generator=generator, dtype=torch.float64) - 1)
    sx = w
    if not signal:
        sx = torch.where(torch.rand(b, generator=generator) < flip_p, -w, w)
    zero = torch.zeros(b, dtype=torch.float64)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    image = x.unsqueeze(2) if signal else x
    grid = F.affine_grid(theta.to(device=x.device, dtype=torch.float32), list(image.shape),
                         align_corners=False)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border",
                        align_corners=False).to(x.dtype)
    return out.squeeze(2) if signal else out


def intensity_jitter(x: Tensor, generator: torch.Generator | None = None,
                     strength: float = JITTER_STRENGTH, p: float = JITTER_P,
                     grayscale_p: float = GRAYSCALE_P) -> Tensor:
    """Random brightness, contrast and saturation of standardised samples, then grayscale.

    With probability ``p`` a sample is scaled by a brightness factor, its
    deviation from its own mean by a contrast factor and, with several
    channels, each pixel's deviation from its channel mean by a saturation
    factor, all uniform in ``[1 - strength, 1 + strength]``. Then, with
    probability ``grayscale_p``, every channel is replaced by the channel
    mean (multi-channel inputs only).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.augment import intensity_jitter
    >>> x = torch.randn(3, 3, 4, 4)
    >>> torch.allclose(intensity_jitter(x, p=0.0, grayscale_p=0.0), x, atol=1e-6)
    True
    >>> gray = intensity_jitter(x, p=0.0, grayscale_p=1.0)
    >>> bool((gray == gray[:, :1]).all())
    True
    """
    b, c = x.shape[:2]
    shape = (b,) + (1,) * (x.dim() - 1)

    def factors():
        f = _uniform(b, 1 - strength, 1 + strength, generator).float()
        return f.to(x.device).reshape(shape)

    on = (torch.rand(b, generator=generator) < p).to(x.device).reshape(shape)
    bright, contrast, saturation = factors(), factors(), factors()
    out = x * torch.where(on, bright, 1.0)
    mean = out.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    out = mean + (out - mean) * torch.where(on, contrast, 1.0)
    gray_on = (torch.rand(b, generator=generator) < grayscale_p).to(x.device).reshape(shape)
    if c > 1:
        gray = out.mean(dim=1, keepdim=True)
        out = gray + (out - gray) * torch.where(on, saturation, 1.0)
        out = torch.where(gray_on, gray.expand_as(out), out)
    return out.to(x.dtype)


def augment_batch(x: Tensor, generator: torch.Generator | None = None,
                  kind: str = "crop_flip") -> Tensor:
    """Random shift-crop (pad ``side // 8``) and flips, or the ``"strong"`` recipe.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W) or (B, C, L)
        The standardised batch, on any device.
    generator : torch.Generator, default=None
        CPU generator for the random offsets and flips.
    kind : {"crop_flip", "strong"}, default="crop_flip"
        See the module docstring.

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
    if kind not in AUGMENTATIONS:
        raise ValueError(f"kind must be one of {AUGMENTATIONS}; got {kind!r}.")
    if kind == "strong":
        return intensity_jitter(resized_crop(x, generator), generator)
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
