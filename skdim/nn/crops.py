"""The strided-crop encoder of the paper's CPC comparison (section 4.2, table 3).

The input is cut into a 7x7 grid of overlapping crops, each 25% of the input
side with a stride of 12.5% (8x8 crops with stride 4 on 32x32, 16x16 with
stride 8 on 64x64). A small convolutional network, shared by all crops,
maps each crop to one local feature vector, giving a ``(B, C, 7, 7)`` local
map in which every location has seen only its own crop. A head then
summarises the local map into the global code::

    local (C x 7 x 7) -> conv 3x3 / stride 2 (256 x 4 x 4, "conv")
                      -> fc 1024 ("fc") -> Y

The head is exposed as :meth:`CropEncoder.summarize`, which multiple-globals
DIM (:mod:`skdim.nn.multiple_globals`) applies to local maps masked down to a
3x3 block. 1-D signals get the same design with 1-D crops (7 local features).

Sides that 8 does not divide get crops of ``round(side / 4)`` and the 7
crop origins spread evenly (rounded) from 0 to ``side - crop``.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
from torch import Tensor, nn

from .encoders import EncoderOutput

__all__ = ["CROPS_ENCODER", "GRID_SIZE", "CropEncoder", "build_crop_encoder", "crop_geometry", "extract_crops"]

CROPS_ENCODER = "crops"
GRID_SIZE = 7
CROP_FRACTION = 0.25
_MAX_WIDTH = 256
# Crops are halved while longer than this side.
_CROP_TARGET_SIDE = 2


def crop_geometry(side: int, grid: int = GRID_SIZE) -> tuple[int, list[int]]:
    """Crop length and the ``grid`` crop origins along one axis of ``side``.

    Examples
    --------
    >>> from skdim.nn.crops import crop_geometry
    >>> crop_geometry(32)  # 8-wide crops, stride 4
    (8, [0, 4, 8, 12, 16, 20, 24])
    >>> crop_geometry(10)  # 8 does not divide 10: rounded, even spread
    (2, [0, 1, 3, 4, 5, 7, 8])
    """
    side = int(side)
    crop = max(1, int(round(side * CROP_FRACTION)))
    span = side - crop
    starts = [int(round(span * k / (grid - 1))) for k in range(grid)]
    return crop, starts


def extract_crops(x: Tensor, crop: Sequence[int], starts: Sequence[Sequence[int]]) -> Tensor:
    """Cut every crop of a grid out of a batch.

    Parameters
    ----------
    x : Tensor of shape ``(B, C, *S)``
        Images ``(H, W)`` or signals ``(L,)``.
    crop : sequence of int
        Crop side per axis.
    starts : sequence of sequence of int
        Crop origins per axis.

    Returns
    -------
    crops : Tensor of shape ``(B, G_1, ..., G_d, C, *crop)``
        ``crops[b, i, j] = x[b, :, starts[0][i]:+crop[0], starts[1][j]:+crop[1]]``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.crops import extract_crops
    >>> extract_crops(torch.arange(6).reshape(1, 1, 6), (2,), ((0, 2, 4),)).tolist()
    [[[[0, 1]], [[2, 3]], [[4, 5]]]]
    >>> images = torch.zeros(2, 3, 4, 4)
    >>> tuple(extract_crops(images, (2, 2), ((0, 2), (0, 1, 2))).shape)
    (2, 2, 3, 3, 2, 2)
    """
    dim = len(crop)
    out = x
    for a in range(dim):
        idx = torch.tensor(starts[a], device=x.device)[:, None] + torch.arange(crop[a], device=x.device)
        # Indexing axis 2 + 2a with a (G, k) index inserts both dims in place.
        out = out.index_select(2 + 2 * a, idx.reshape(-1))
        shape = list(out.shape)
        out = out.reshape(*shape[: 2 + 2 * a], len(starts[a]), crop[a], *shape[3 + 2 * a :])
    # (B, C, G1, k1, [G2, k2]) -> (B, G1, [G2], C, k1, [k2])
    grid_dims = [2 + 2 * a for a in range(dim)]
    crop_dims = [3 + 2 * a for a in range(dim)]
    return out.permute(0, *grid_dims, 1, *crop_dims)


def _block(dim: int, c_in: int, c_out: int, kernel, stride, padding) -> nn.Sequential:
    conv = nn.Conv1d if dim == 1 else nn.Conv2d
    norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
    return nn.Sequential(
        conv(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        norm(c_out),
        nn.ReLU(inplace=True),
    )


def _crop_network(dim: int, in_channels: int, crop: Sequence[int], local_channels: int) -> nn.Sequential:
    """Conv blocks halving each crop axis down to 2 (at least two blocks), then
    a linear layer to one ``local_channels`` vector per crop."""
    sides = list(crop)
    layers: list[nn.Module] = []
    c_in = in_channels
    while len(layers) < 2 or max(sides) > _CROP_TARGET_SIDE:
        halve = [s > _CROP_TARGET_SIDE for s in sides]
        c_out = min(64 * 2 ** len(layers), _MAX_WIDTH)
        layers.append(
            _block(
                dim, c_in, c_out,
                tuple(4 if h else 3 for h in halve), tuple(2 if h else 1 for h in halve), 1,
            )
        )
        # k=4, s=2, p=1 maps s to floor(s / 2); k=3, s=1, p=1 keeps it.
        sides = [s // 2 if h else s for s, h in zip(sides, halve)]
        c_in = c_out
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(c_in * math.prod(sides), local_channels, bias=False),
        nn.BatchNorm1d(local_channels),
        nn.ReLU(inplace=True),
    )


class CropEncoder(nn.Module):
    """Strided-crop encoder: a shared crop network, then a summary head.

    Parameters
    ----------
    in_channels : int
        Number of input channels.
    input_shape : tuple of int
        ``(H, W)`` or ``(L,)``.
    n_components : int
        Size of the code ``Y``.
    local_channels : int, default=128
        Size of each crop's local feature vector.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.crops import CropEncoder
    >>> encoder = CropEncoder(in_channels=3, input_shape=(32, 32), n_components=16)
    >>> encoder.crop, encoder.starts[0]
    ((8, 8), (0, 4, 8, 12, 16, 20, 24))
    >>> out = encoder(torch.zeros(2, 3, 32, 32))
    >>> tuple(out.local.shape), tuple(out.conv.shape), tuple(out.fc.shape), tuple(out.y.shape)
    ((2, 128, 7, 7), (2, 256, 4, 4), (2, 1024), (2, 16))
    """

    def __init__(
        self, in_channels: int, input_shape: tuple[int, ...], n_components: int, local_channels: int = 128
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.input_shape = tuple(int(s) for s in input_shape)
        dim = len(self.input_shape)
        geometry = [crop_geometry(s) for s in self.input_shape]
        self.crop = tuple(c for c, _ in geometry)
        self.starts = tuple(tuple(s) for _, s in geometry)
        self.local_channels = int(local_channels)
        self.crop_net = _crop_network(dim, self.in_channels, self.crop, self.local_channels)
        # 7 -> 4 per axis (k=3, s=2, p=1), as the dcgan encoder's 8 -> 4.
        self.head_conv = _block(dim, self.local_channels, _MAX_WIDTH, 3, 2, 1)
        n_flat = _MAX_WIDTH * 4**dim
        self.fc = nn.Sequential(nn.Linear(n_flat, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(inplace=True))
        self.head = nn.Linear(1024, int(n_components))

    def local_features(self, x: Tensor) -> Tensor:
        """The ``(B, local_channels, 7[, 7])`` map of crop features."""
        expected = (self.in_channels, *self.input_shape)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"This encoder was built for inputs of shape (batch, {', '.join(map(str, expected))}); "
                f"got {tuple(x.shape)}."
            )
        crops = extract_crops(x, self.crop, self.starts)  # (B, *G, C, *k)
        b, grid = x.shape[0], crops.shape[1 : 1 + len(self.crop)]
        feats = self.crop_net(crops.reshape(-1, self.in_channels, *self.crop))  # (B * G.., F)
        feats = feats.reshape(b, *grid, self.local_channels)
        return feats.movedim(-1, 1)

    def summarize(self, local_map: Tensor) -> EncoderOutput:
        """Apply the head to a (possibly masked) local map."""
        conv = self.head_conv(local_map)
        fc = self.fc(conv.flatten(1))
        return EncoderOutput(local_map, conv, fc, self.head(fc))

    def forward(self, x: Tensor) -> EncoderOutput:
        return self.summarize(self.local_features(x))

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, crop={self.crop}, grid={GRID_SIZE}"


def build_crop_encoder(
    in_channels: int,
    input_shape: tuple[int, ...],
    n_components: int,
    local_layer: int | None = None,
) -> CropEncoder:
    """Build the strided-crop encoder (``encoder="crops"`` in the estimator).

    Parameters
    ----------
    in_channels : int
    input_shape : tuple of int
        ``(H, W)`` or ``(L,)``, any size from 1.
    n_components : int
    local_layer : None
        Must be None: the local map is always the 7x7 grid of crop features.

    Returns
    -------
    encoder : CropEncoder

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.crops import build_crop_encoder
    >>> encoder = build_crop_encoder(in_channels=1, input_shape=(64,), n_components=8)
    >>> encoder.crop, encoder.starts
    ((16,), ((0, 8, 16, 24, 32, 40, 48),))
    >>> tuple(encoder(torch.zeros(2, 1, 64)).y.shape)
    (2, 8)
    """
    if local_layer is not None:
        raise ValueError(
            f"encoder='crops' has a single local map (the {GRID_SIZE}x{GRID_SIZE} grid of crop "
            f"features); local_layer must be None, got {local_layer!r}."
        )
    for name, value in (("in_channels", in_channels), ("n_components", n_components)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        not shape
        or len(shape) > 2
        or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape)
    ):
        raise ValueError(f"input_shape must be (H, W) or (L,) with positive ints, got {input_shape!r}.")
    return CropEncoder(int(in_channels), shape, int(n_components))
