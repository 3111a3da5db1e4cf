"""Out-of-core inputs: memory maps, array-likes and datasets read batch by batch.

:func:`validate_data` copies nothing for an in-memory or memory-mapped
``ndarray`` of a numeric dtype, but it would load an ``h5py``/``zarr`` array
or a ``torch.utils.data.Dataset`` whole, and its finiteness check of a float
memory map may allocate a mask the size of the data. Such inputs take the
path below instead: the same checks (and the same error messages) computed
one block of rows at a time.

* ``np.memmap`` is used as is (it is an ``ndarray``); float memmaps are
  checked for NaN/inf block by block.
* Array-likes with ``shape``, ``dtype`` and NumPy-style indexing (``h5py``,
  ``zarr``) are wrapped in :class:`ArraySource`.
* A ``torch.utils.data.Dataset`` or any other sequence of samples (items are
  arrays or tensors, or tuples whose first entry is) is wrapped in
  :class:`SampleSource`; non-finite values raise when the rows holding them
  are read.

Their batches are read by :mod:`skdim._data._batches`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import torch

from ..nn.distributed import all_gather_with_grad, collective_device, world
from ._layout import Layout
from ._standardize import (
    ChannelBlocks,
    Moments,
    channel_moments,
    channel_stats,
    check_finite,
    finish,
    rows_per_block,
)


def _is_sparse_or_frame(X) -> bool:
    module = type(X).__module__
    return module.startswith(("scipy.sparse", "pandas", "polars", "pyarrow"))


def is_out_of_core(X) -> bool:
    """Whether ``X`` takes the block-wise path instead of ``validate_data``."""
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, (np.ndarray, torch.Tensor, list, tuple, str, bytes, Mapping)) or _is_sparse_or_frame(X):
        return False
    if isinstance(X, torch.utils.data.Dataset):
        return True
    if hasattr(X, "shape") and hasattr(X, "dtype") and hasattr(X, "__getitem__"):
        return True
    return hasattr(X, "__len__") and hasattr(X, "__getitem__")


class _Source:
    """What both sources share: a ``shape``, and ``len``/``ndim``/``__array__`` from it."""

    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # Only for callers that explicitly want everything in memory.
        return np.asarray(self[:], dtype=dtype)


class ArraySource(_Source):
    """An array-like (``h5py``, ``zarr`` ...) read by blocks of rows."""

    def __init__(self, data) -> None:
        self.data = data
        self.shape = tuple(int(s) for s in data.shape)
        self.dtype = np.dtype(data.dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, np.ndarray):
            # h5py needs increasing indices; batches are sorted already.
            key = np.asarray(key, dtype=np.int64)
        return np.asarray(self.data[key])


def _sample_to_numpy(item) -> np.ndarray:
    if isinstance(item, (tuple, list)) and len(item) > 0 and not np.isscalar(item[0]):
        item = item[0]  # (x, y) pairs: the features come first
    if isinstance(item, torch.Tensor):
        return item.detach().cpu().numpy()
    return np.asarray(item)


class SampleSource(_Source):
    """A ``Dataset`` or sequence whose items are single samples."""

    def __init__(self, data) -> None:
        n = len(data)
        self.data = data
        first = _sample_to_numpy(data[0]) if n else np.zeros((0,))
        self.shape = (n, *first.shape)
        self.dtype = first.dtype
        self.check_finite = self.dtype.kind in "fc"

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            rows = range(*key.indices(self.shape[0]))
        else:
            rows = np.asarray(key, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for k, i in enumerate(rows):
            sample = _sample_to_numpy(self.data[int(i)])
            if sample.shape != self.shape[1:]:
                raise ValueError(
                    f"Sample {int(i)} has shape {sample.shape}, but the first sample has "
                    f"shape {self.shape[1:]}; every sample must have the same shape."
                )
            out[k] = sample
        if self.check_finite:
            check_finite(out, "X")
        return out


class RowView:
    """Rows ``start:stop`` of ``X`` without reading them (a lazy slice)."""

    def __init__(self, X, start: int, stop: int) -> None:
        self.X, self.start = X, start
        self.shape = (stop - start, *X.shape[1:])
        self.dtype = X.dtype

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            lo, hi, step = key.indices(self.shape[0])
            return np.asarray(self.X[self.start + lo : self.start + hi : step])
        return np.asarray(self.X[np.asarray(key) + self.start])


def validate_source(X, *, name: str, n_features: int | None = None):
    """Checks of ``validate_data`` for out-of-core ``X``, block by block.

    Returns ``X`` itself for a memmap, else an :class:`ArraySource` or
    :class:`SampleSource` view; writes nothing anywhere. ``n_features``, when
    given, is the ``X.shape[1]`` seen in fit.
    """
    if isinstance(X, np.memmap):
        source = X
    elif isinstance(X, torch.utils.data.Dataset) or not hasattr(X, "shape"):
        if not hasattr(X, "__len__"):
            raise TypeError(
                f"X of type {type(X).__name__} has no len(); a dataset passed to {name} "
                "must be a map-style torch Dataset or a sequence of samples."
            )
        source = SampleSource(X)
    else:
        source = ArraySource(X)
    shape, dtype = source.shape, np.dtype(source.dtype)
    if len(shape) < 2:
        raise ValueError(
            f"Expected X with at least 2 dimensions (n_samples, ...); got shape {shape}."
        )
    if shape[0] < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is "
            f"required by {name}."
        )
    if int(np.prod(shape[1:])) < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is "
            f"required by {name}."
        )
    if dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers (bool, integer or float); got dtype {dtype}.")
    if dtype.kind == "f" and not isinstance(source, SampleSource):
        step = rows_per_block(shape[1:])
        for start in range(0, shape[0], step):
            check_finite(np.asarray(source[start : start + step]), "X")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"X has {shape[1]} features, but {name} is expecting {n_features} features as input."
        )
    return source


def dataset_channel_stats(X, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``X`` (float64), in blocks.

    Under ``torch.distributed`` each process reads a contiguous share of the
    rows and the shares' moments are pooled exactly, so the data are read
    once in total, not once per process.
    """
    chunk = rows_per_block(X.shape[1:])
    rank, size = world()
    if size == 1:
        return channel_stats(X, layout, chunk)
    bounds = np.linspace(0, X.shape[0], size + 1).astype(int)
    share = RowView(X, int(bounds[rank]), int(bounds[rank + 1]))
    local = torch.from_numpy(channel_moments(share, layout, chunk).as_array())
    with torch.no_grad():
        rows, _ = all_gather_with_grad(local[None].to(collective_device()))
    # The rare second pass (overflowing squares) reads all rows on every process.
    return finish(Moments.pooled(rows.cpu().numpy()), ChannelBlocks(X, layout, chunk))


def data_fingerprint(X) -> dict:
    """Shape, dtype and a SHA-256 of every value of ``X``, read in blocks.

    The bytes of each block are hashed in C order, so a memory map, a view
    or a dataset gives the same digest as the same values in memory.
    """
    digest = hashlib.sha256()
    step = rows_per_block(X.shape[1:])
    for start in range(0, int(X.shape[0]), step):
        digest.update(np.ascontiguousarray(np.asarray(X[start : start + step])).data)
    return {"n_samples": int(X.shape[0]), "sample_shape": [int(s) for s in X.shape[1:]],
            "dtype": str(np.dtype(X.dtype)), "sha256": digest.hexdigest()}
