"""Training batches of an array: one sampler for the loop and the DataLoader.

:class:`BatchSampler` decides every epoch's batches: a permutation drawn
from the generator it is given (the trainer's, re-seeded at each epoch),
cut into batches of ``batch_size`` rows, each sorted (reads from a memory
map are then sequential) and, under ``torch.distributed``, cut again into
this process's share. :class:`ArrayBatches` reads those batches -- in the
training process, or ahead of it in ``DataLoader`` worker processes that
iterate the *same* sampler -- and standardises them, so the batches, and
therefore the model, do not depend on the number of workers or processes.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np
import torch

from ..nn.distributed import shard_positions, world
from ..nn.sampling import batch_indices, n_batches
from ._layout import Layout
from ._standardize import standardize


class BatchSampler(torch.utils.data.Sampler):
    """Row indices of each batch of one epoch, this process's share of each.

    The permutation is drawn from ``generator`` when iteration starts, so the
    owner of the generator (the trainer) decides the epoch's order by seeding
    it first.
    """

    def __init__(self, n_samples: int, batch_size: int, generator: torch.Generator,
                 shuffle: bool = True) -> None:
        self.n_samples, self.batch_size = int(n_samples), int(batch_size)
        self.generator, self.shuffle = generator, bool(shuffle)
        self.rank, self.world_size = world()

    def __iter__(self) -> Iterator[np.ndarray]:
        for rows in batch_indices(self.n_samples, self.batch_size, self.generator, self.shuffle):
            yield shard_positions(rows, self.rank, self.world_size)

    def __len__(self) -> int:
        return n_batches(self.n_samples, self.batch_size)


# ------------------------------------------------------------------ reading
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


class RowReader(torch.utils.data.Dataset):
    """``reader[rows]``: rows of ``X``, standardised, as a float32 tensor.

    A dataset over whole batches (the sampler yields index arrays). Pickles
    a memmap by file name and offset (workers started with "spawn" reopen
    it), never by value.
    """

    def __init__(self, X, layout: Layout, mean: np.ndarray, std: np.ndarray) -> None:
        self.X, self.layout, self.mean, self.std = X, layout, mean, std

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        return standardize(self.X[rows], self.layout, self.mean, self.std)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getstate__(self):
        state = dict(self.__dict__)
        if isinstance(self.X, np.memmap):
            spec = _memmap_spec(self.X)
            if spec is not None:
                state["X"], state["memmap"] = None, spec
        return state

    def __setstate__(self, state) -> None:
        spec = state.pop("memmap", None)
        self.__dict__.update(state)
        if spec is not None:
            self.X = _open_memmap(spec)


def _identity(batch):
    return batch


class ArrayBatches:
    """The standardised training batches of ``X``, re-iterable once per epoch.

    Parameters
    ----------
    X : ndarray, memmap or source
        Rows to train on.
    layout : Layout
    mean, std : ndarray
        Standardisation of each channel.
    batch_size : int
        The global batch (split over processes under ``torch.distributed``).
    generator : torch.Generator
        Draws each epoch's order when iteration starts.
    shuffle : bool, default=True
    num_workers : int, default=0
        ``DataLoader`` worker processes reading ahead.
    """

    def __init__(self, X, layout: Layout, mean, std, *, batch_size: int,
                 generator: torch.Generator, shuffle: bool = True, num_workers: int = 0) -> None:
        self.reader = RowReader(X, layout, mean, std)
        self.sampler = BatchSampler(X.shape[0], batch_size, generator, shuffle)
        self.num_workers = int(num_workers)
        world_size = self.sampler.world_size
        if world_size > 1 and batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} is the global batch, split over {world_size} "
                "processes; it must be a multiple of the number of processes."
            )

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.num_workers == 0:
            return (self.reader[rows] for rows in self.sampler)
        return iter(torch.utils.data.DataLoader(
            self.reader, sampler=self.sampler, batch_size=None, num_workers=self.num_workers,
            collate_fn=_identity,
        ))
