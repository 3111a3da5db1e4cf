"""Mini-batches of row indices: the one batching rule of skdim.

Every loop that draws mini-batches -- DIM training over an array, the
probes and fine-tuning of :mod:`skdim.evaluation`, the MINE and NDM critics
-- takes them from :func:`batch_indices`: a permutation drawn from an
explicit generator, cut into batches of ``batch_size`` rows, each sorted
(reads from a memory map are then sequential; the order within a batch does
not change any loss). A last batch of a single row cannot train a
contrastive bound or BatchNorm: it is merged into the previous batch, or
dropped with ``last="drop"`` (batches of exactly ``batch_size`` rows, for
the critics' endless :class:`BatchStream`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["batch_indices", "n_batches", "BatchStream"]


def batch_indices(
    n_samples: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    *,
    last: str = "merge",
) -> Iterator[np.ndarray]:
    """Yield sorted index arrays of the mini-batches of one pass over ``n_samples`` rows.

    Parameters
    ----------
    n_samples, batch_size : int
    generator : torch.Generator, default=None
        Draws the permutation (``shuffle=True``).
    shuffle : bool, default=True
        ``False`` takes consecutive rows.
    last : {"merge", "drop", "full"}, default="merge"
        What happens to a short last batch: ``"merge"`` merges a batch of one
        row into the previous batch, ``"drop"`` drops any batch shorter than
        ``batch_size``, ``"full"`` keeps it.

    Examples
    --------
    >>> from skdim.nn.sampling import batch_indices
    >>> [b.tolist() for b in batch_indices(7, 3, shuffle=False)]
    [[0, 1, 2], [3, 4, 5, 6]]
    >>> [b.tolist() for b in batch_indices(7, 3, shuffle=False, last="drop")]
    [[0, 1, 2], [3, 4, 5]]
    """
    if last not in ("merge", "drop", "full"):
        raise ValueError(f"last must be 'merge', 'drop' or 'full'; got {last!r}.")
    order = torch.randperm(n_samples, generator=generator) if shuffle else torch.arange(n_samples)
    order = order.numpy()
    starts = list(range(0, n_samples, batch_size))
    tail = n_samples - starts[-1] if starts else 0
    if len(starts) > 1 and ((last == "merge" and tail == 1) or (last == "drop" and tail < batch_size)):
        starts.pop()
        if last == "drop":
            n_samples = starts[-1] + batch_size
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else n_samples
        yield np.sort(order[start:stop])


def n_batches(n_samples: int, batch_size: int, last: str = "merge") -> int:
    """How many batches :func:`batch_indices` yields.

    Examples
    --------
    >>> from skdim.nn.sampling import n_batches
    >>> n_batches(7, 3), n_batches(7, 3, last="drop"), n_batches(7, 3, last="full")
    (2, 2, 3)
    """
    k = -(-n_samples // batch_size)
    tail = n_samples - (k - 1) * batch_size
    if k > 1 and ((last == "merge" and tail == 1) or (last == "drop" and tail < batch_size)):
        return k - 1
    return k


class BatchStream:
    """Endless mini-batches of exactly ``batch_size`` rows, epoch after epoch.

    Each epoch is a fresh permutation (:func:`batch_indices` with
    ``last="drop"``); sampling without replacement within an epoch keeps a
    row from being paired with its own copy as a "negative" in a batch.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.sampling import BatchStream
    >>> stream = BatchStream(5, 2, torch.Generator().manual_seed(0))
    >>> [len(stream.next()) for _ in range(4)]
    [2, 2, 2, 2]
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} is larger than the {n} rows.")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self._batches: Iterator[np.ndarray] = iter(())

    def next(self) -> torch.Tensor:
        batch = next(self._batches, None)
        if batch is None:
            self._batches = batch_indices(self.n, self.batch_size, self.generator, last="drop")
            batch = next(self._batches)
        return torch.from_numpy(batch)
