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

:class:`BatchFeeder` turns any of these into the ``get_batch`` function of
the training loop, optionally reading ahead in ``DataLoader`` worker
processes and, under ``torch.distributed``, reading only this process's
share of each global batch.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ._data import Layout, batch_to_tensor, channel_stats
from ._distributed import all_gather_with_grad, collective_device, shard_positions, world
from ._training import batch_indices, seeded_generator

# Blocks of rows read at once by validation and statistics (bytes of float64).
BLOCK_BYTES = 64 * 2**20


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
            _check_finite_block(out, "X")
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


def _check_finite_block(block: np.ndarray, name: str) -> None:
    if np.isfinite(block).all():
        return
    if np.isnan(block).any():
        raise ValueError(
            f"Input {name} contains NaN. DeepInfoMax does not accept missing values "
            "encoded as NaN."
        )
    raise ValueError(f"Input {name} contains infinity or a value too large for {block.dtype!r}.")


def rows_per_block(sample_shape: tuple[int, ...]) -> int:
    """Rows per block so that a float64 copy of a block stays near 64 MiB."""
    return max(1, BLOCK_BYTES // (8 * max(1, int(np.prod(sample_shape)))))


def validate_source(estimator, X, *, reset: bool):
    """Checks of ``validate_data`` for out-of-core ``X``, block by block.

    Returns ``X`` itself for a memmap, else an :class:`ArraySource` or
    :class:`SampleSource` view. Sets (``reset=True``) or checks
    ``n_features_in_`` like ``validate_data``.
    """
    name = type(estimator).__name__
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
            _check_finite_block(np.asarray(source[start : start + step]), "X")
    if reset:
        estimator.n_features_in_ = int(shape[1])
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif hasattr(estimator, "n_features_in_") and shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return source


def dataset_channel_stats(X, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``X``, in blocks of bounded memory.

    Under ``torch.distributed`` each process reads a contiguous share of the
    rows and the shares are pooled (exactly, with the parallel-variance
    formula), so the data are read once in total, not once per process.
    """
    chunk = rows_per_block(X.shape[1:])
    rank, size = world()
    if size == 1:
        return channel_stats(X, layout, chunk=chunk)
    n = X.shape[0]
    bounds = np.linspace(0, n, size + 1).astype(int)
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    c = layout.in_channels
    if hi > lo:
        mean, std = channel_stats(RowView(X, lo, hi), layout, chunk=chunk)
    else:
        mean, std = np.zeros(c, np.float32), np.ones(c, np.float32)
    local = torch.tensor(
        np.concatenate([[float(hi - lo)], mean, std.astype(np.float64) ** 2]), dtype=torch.float64
    )
    with torch.no_grad():
        rows, _ = all_gather_with_grad(local[None].to(collective_device()))
    rows = rows.cpu()
    counts, means, variances = rows[:, :1], rows[:, 1 : 1 + c], rows[:, 1 + c :]
    total = counts.sum()
    pooled_mean = (counts * means).sum(0) / total
    pooled_var = (counts * (variances + (means - pooled_mean) ** 2)).sum(0) / total
    pooled_std = pooled_var.sqrt().numpy()
    pooled_mean = pooled_mean.numpy()
    # Same rule as channel_stats: a constant channel gets a unit std.
    pooled_std[pooled_std < 1e-8 * np.maximum(1.0, np.abs(pooled_mean))] = 1.0
    return pooled_mean.astype(np.float32), pooled_std.astype(np.float32)


# ------------------------------------------------------------------ pickling
def _memmap_spec(X: np.memmap) -> dict | None:
    """How to reopen ``X`` (possibly a strided view) from its file, or None."""
    mm = getattr(X, "_mmap", None)
    if mm is None or X.filename is None or X.size == 0:
        return None
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    map_start = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY
    dims = list(zip(X.shape, X.strides))
    low = sum((n - 1) * st for n, st in dims if st < 0)  # lowest byte touched, relative
    high = sum((n - 1) * st for n, st in dims if st > 0)
    return {
        "filename": X.filename,
        "byte_offset": map_start + (X.ctypes.data - base) + low,
        "extent": high - low + X.dtype.itemsize,
        "start": -low,
        "shape": X.shape,
        "strides": X.strides,
        "dtype": X.dtype.str,
    }


def _open_memmap(spec: dict) -> np.ndarray:
    raw = np.memmap(spec["filename"], dtype=np.uint8, mode="r", offset=spec["byte_offset"],
                    shape=(spec["extent"],))
    return np.ndarray(spec["shape"], dtype=spec["dtype"], buffer=raw, offset=spec["start"],
                      strides=spec["strides"])


class _RowReader(torch.utils.data.Dataset):
    """Dataset over whole batches: ``reader[rows]`` is ``X[rows]`` as a tensor.

    Pickles a memmap by file name and offset (workers started with "spawn"
    reopen it), never by value.
    """

    def __init__(self, X) -> None:
        self.X = X

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.X[rows]))

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getstate__(self):
        if isinstance(self.X, np.memmap):
            spec = _memmap_spec(self.X)
            if spec is not None:
                return {"memmap": spec}
        return {"X": self.X}

    def __setstate__(self, state) -> None:
        self.X = _open_memmap(state["memmap"]) if "memmap" in state else state["X"]


def _identity(batch):
    return batch


# ------------------------------------------------------------------ feeding
@dataclass
class EpochPlan:
    """What :func:`skdim._training.train_epoch` is called with for one epoch."""

    n_samples: int
    get_batch: Callable[[np.ndarray], torch.Tensor]
    generator: torch.Generator
    shuffle: bool


class BatchFeeder:
    """Reads training batches of ``X`` for the training loop.

    With one process and no workers it is the plain ``X[idx]`` reader and
    leaves the loop's own shuffling alone. Otherwise it shuffles itself: the
    loop is run with ``shuffle=False`` (batches are consecutive positions),
    and position ``p`` is row ``order[p]`` of a permutation drawn from the
    epoch's generator exactly as the loop would draw it, so every process --
    and a run with any number of processes -- sees the same global batches.
    Each process then reads its share (:func:`shard_positions`); rank 0 keeps
    the epoch generator for in-step randomness, other ranks get their own so
    that their prior samples differ.
    """

    def __init__(self, X, layout: Layout, mean, std, device, *, batch_size: int,
                 num_workers: int = 0) -> None:
        self.X, self.layout, self.mean, self.std, self.device = X, layout, mean, std, device
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.rank, self.world_size = world()
        if self.world_size > 1 and self.batch_size % self.world_size:
            raise ValueError(
                f"batch_size={self.batch_size} is the global batch, split over "
                f"{self.world_size} processes; it must be a multiple of the number of "
                "processes."
            )
        self._loader = None
        self.n_prefetched = 0  # batches that came from DataLoader workers

    def _tensor(self, batch: np.ndarray) -> torch.Tensor:
        return batch_to_tensor(batch, self.layout, self.mean, self.std, self.device)

    def epoch(self, generator: torch.Generator, shuffle: bool, epoch_seed: int) -> EpochPlan:
        n = int(self.X.shape[0])
        if self.world_size == 1 and self.num_workers == 0:
            return EpochPlan(n, lambda idx: self._tensor(self.X[idx]), generator, shuffle)
        order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
        if self.rank > 0:
            generator = seeded_generator(epoch_seed + 104729 * self.rank)

        def rows_of(positions: np.ndarray) -> np.ndarray:
            return shard_positions(np.sort(order[positions]), self.rank, self.world_size)

        if self.num_workers == 0:
            return EpochPlan(n, lambda idx: self._tensor(self.X[rows_of(idx)]), generator, False)

        expected = list(batch_indices(n, self.batch_size, None, shuffle=False))
        self._loader = iter(
            torch.utils.data.DataLoader(
                _RowReader(self.X), sampler=[rows_of(p) for p in expected], batch_size=None,
                num_workers=self.num_workers, collate_fn=_identity,
            )
        )
        step = iter(range(len(expected)))

        def get_batch(idx: np.ndarray) -> torch.Tensor:
            k = next(step, None)
            if k is None or not np.array_equal(idx, expected[k]):
                # The loop asked for another order than predicted: stay
                # correct and read this batch directly.
                return self._tensor(self.X[rows_of(idx)])
            self.n_prefetched += 1
            return self._tensor(next(self._loader).numpy())

        return EpochPlan(n, get_batch, generator, False)

    def close(self) -> None:
        # Dropping the iterator stops its worker processes.
        self._loader = None
