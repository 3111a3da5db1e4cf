"""Coordinate prediction tasks (paper section 4.3, appendix A.7).

*Absolute*: predict the grid position ``(i, j)`` of a local feature
``c(i,j)`` from it and the global feature ``y``. *Relative*: for one source
location per image, predict the offset ``(i - i', j - j')`` to every target
location ``(i', j')`` from ``y``, ``c(i,j)`` and ``c(i',j')``. Both treat the
coordinate along each axis as an independent categorical variable and
minimise the sum over axes of the cross-entropies (in nats), averaged over
all locations ("marginalised over all local features", as in the paper).
1-D signals have one axis.

The predictor is the paper's MLP: two hidden layers of 512 units with batch
norm and ReLU. Its first layer is linear in the concatenation of its inputs,
so it is applied as a sum of per-input projections broadcast over locations:
the ``(B, L, D + C)`` concatenation is never built.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .critics import flatten_locations

__all__ = [
    "CoordinatePredictor",
    "grid_coordinates",
    "relative_offsets",
    "absolute_coordinate_loss",
    "relative_coordinate_loss",
    "sample_sources",
]


def grid_coordinates(grid_shape: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """Coordinates of every location, in the order of a flattened map.

    Parameters
    ----------
    grid_shape : sequence of int
        Spatial shape of the local map, ``(H, W)`` or ``(L,)``.

    Returns
    -------
    coords : Tensor of shape (prod(grid_shape), n_axes), int64
        Row ``l`` is the position of location ``l`` of
        ``feature_map.reshape(B, C, -1)`` (row-major).

    Examples
    --------
    >>> from skdim.nn.coordinates import grid_coordinates
    >>> grid_coordinates((2, 3)).tolist()
    [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    >>> grid_coordinates((3,)).tolist()
    [[0], [1], [2]]
    """
    axes = [torch.arange(int(s), device=device) for s in grid_shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def relative_offsets(source: Tensor, grid_shape: Sequence[int]) -> Tensor:
    """Offsets ``source - target`` from each image's source to every location.

    Parameters
    ----------
    source : Tensor of shape (B,), int64
        Flat index of each image's source location.
    grid_shape : sequence of int
        Spatial shape of the local map.

    Returns
    -------
    offsets : Tensor of shape (B, L, n_axes), int64
        ``offsets[b, l] = coords[source[b]] - coords[l]``, each axis in
        ``[-(side - 1), side - 1]``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.coordinates import relative_offsets
    >>> offsets = relative_offsets(torch.tensor([4]), (2, 3))  # source (1, 1)
    >>> tuple(offsets.shape)
    (1, 6, 2)
    >>> offsets[0].tolist()
    [[1, 1], [1, 0], [1, -1], [0, 1], [0, 0], [0, -1]]
    """
    coords = grid_coordinates(grid_shape, source.device)
    return coords[source][:, None, :] - coords[None, :, :]


def sample_sources(
    batch_size: int, n_locations: int, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """One uniformly drawn source location per image (drawn on the CPU).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.coordinates import sample_sources
    >>> source = sample_sources(5, 49, generator=torch.Generator().manual_seed(0))
    >>> tuple(source.shape), source.dtype
    ((5,), torch.int64)
    >>> bool(((source >= 0) & (source < 49)).all())
    True
    """
    source = torch.randint(int(n_locations), (int(batch_size),), generator=generator)
    return source if device is None else source.to(device)


class CoordinatePredictor(nn.Module):
    """MLP ``p(coordinates | inputs)``: 512-BN-ReLU, 512-BN-ReLU, logits.

    Parameters
    ----------
    in_features : sequence of int
        Feature size of each input, e.g. ``(code_dim, local_channels)``.
    n_classes : sequence of int
        Number of classes of each axis; the logits are split accordingly.
    units : int, default=512
        Width of the two hidden layers (the paper's 512).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.coordinates import CoordinatePredictor
    >>> predictor = CoordinatePredictor(in_features=(16, 8), n_classes=(7, 7), units=32)
    >>> code, feats = torch.zeros(2, 1, 16), torch.zeros(2, 49, 8)  # broadcast over 49 locations
    >>> [tuple(logits.shape) for logits in predictor(code, feats)]
    [(2, 49, 7), (2, 49, 7)]
    """

    def __init__(self, in_features: Sequence[int], n_classes: Sequence[int], units: int = 512) -> None:
        super().__init__()
        self.n_classes = tuple(int(c) for c in n_classes)
        # No biases before BatchNorm: it would subtract them again.
        self.inputs = nn.ModuleList(nn.Linear(int(f), units, bias=False) for f in in_features)
        self.norm1 = nn.BatchNorm1d(units)
        self.hidden = nn.Linear(units, units, bias=False)
        self.norm2 = nn.BatchNorm1d(units)
        self.out = nn.Linear(units, sum(self.n_classes))

    def forward(self, *parts: Tensor) -> tuple[Tensor, ...]:
        """Logits per axis for inputs broadcastable to a common ``(..., f_k)``.

        Returns one tensor of shape ``(..., n_classes[a])`` per axis.
        """
        if len(parts) != len(self.inputs):
            raise ValueError(f"Expected {len(self.inputs)} inputs; got {len(parts)}.")
        h = sum(proj(p) for proj, p in zip(self.inputs, parts))
        lead = h.shape[:-1]
        h = torch.relu(self.norm1(h.reshape(-1, h.shape[-1])))
        h = torch.relu(self.norm2(self.hidden(h)))
        logits = self.out(h).reshape(*lead, -1)
        return logits.split(self.n_classes, dim=-1)


def _axis_cross_entropy(logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    # float32: a log-softmax over a few classes in bf16 loses the small losses.
    return sum(
        F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float(), labels[..., a].reshape(-1))
        for a, lg in enumerate(logits)
    )


def absolute_coordinate_loss(predictor: CoordinatePredictor, local_map: Tensor, code: Tensor) -> Tensor:
    """Cross-entropy of the positions of all local features given ``y``.

    Parameters
    ----------
    predictor : CoordinatePredictor
        Built with ``in_features=(code_dim, local_channels)`` and
        ``n_classes=grid_shape``.
    local_map : Tensor of shape ``(B, C, *S)``
    code : Tensor of shape (B, D)

    Returns
    -------
    loss : Tensor
        Sum over axes of the mean cross-entropy (nats).

    Examples
    --------
    With uniform logits (zeroed output layer) the loss is chance level,
    ``log(H) + log(W)``:

    >>> import math, torch
    >>> from skdim.nn.coordinates import CoordinatePredictor, absolute_coordinate_loss
    >>> predictor = CoordinatePredictor(in_features=(16, 8), n_classes=(2, 3), units=32)
    >>> _ = torch.nn.init.zeros_(predictor.out.weight), torch.nn.init.zeros_(predictor.out.bias)
    >>> loss = absolute_coordinate_loss(predictor, torch.ones(4, 8, 2, 3), torch.ones(4, 16))
    >>> loss.shape, math.isclose(loss.item(), math.log(2) + math.log(3), rel_tol=1e-6)
    (torch.Size([]), True)
    """
    feats = flatten_locations(local_map)  # (B, L, C)
    logits = predictor(code[:, None, :], feats)
    labels = grid_coordinates(local_map.shape[2:], local_map.device)
    return _axis_cross_entropy(logits, labels.expand(feats.shape[0], -1, -1))


def relative_coordinate_loss(
    predictor: CoordinatePredictor, local_map: Tensor, code: Tensor, source: Tensor
) -> Tensor:
    """Cross-entropy of the offsets from one source to every target, given ``y``.

    Parameters
    ----------
    predictor : CoordinatePredictor
        Built with ``in_features=(code_dim, local_channels, local_channels)``
        and ``n_classes=[2 * side - 1 for side in grid_shape]``.
    local_map : Tensor of shape ``(B, C, *S)``
    code : Tensor of shape (B, D)
    source : Tensor of shape (B,), int64
        Flat index of each image's source location.

    Returns
    -------
    loss : Tensor
        Sum over axes of the mean cross-entropy over all targets (nats).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.coordinates import CoordinatePredictor, relative_coordinate_loss, sample_sources
    >>> predictor = CoordinatePredictor(in_features=(16, 8, 8), n_classes=(2 * 2 - 1, 2 * 3 - 1), units=32)
    >>> source = sample_sources(4, 2 * 3, generator=torch.Generator().manual_seed(0))
    >>> loss = relative_coordinate_loss(predictor, torch.ones(4, 8, 2, 3), torch.ones(4, 16), source)
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """
    grid = local_map.shape[2:]
    feats = flatten_locations(local_map)  # (B, L, C)
    src = feats[torch.arange(feats.shape[0], device=feats.device), source]  # (B, C)
    logits = predictor(code[:, None, :], src[:, None, :], feats)
    # Shift offsets in [-(s-1), s-1] to class indices [0, 2s-2].
    shift = torch.tensor([s - 1 for s in grid], device=local_map.device)
    return _axis_cross_entropy(logits, relative_offsets(source, grid) + shift)
