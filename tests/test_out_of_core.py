"""Tests for skdim._data's sources: memory maps, array-likes and datasets read batch by batch.

Fitting on an out-of-core input must give exactly the model that fitting on
the same values in memory gives (same batches, same arithmetic), must never
materialise the whole input (checked with tracemalloc, which sees every NumPy
allocation), and must keep validate_data's error messages.
"""

from __future__ import annotations

import os
import pickle
import tracemalloc

import numpy as np
import pytest
import torch

import skdim._data._standardize as io
from skdim import DeepInfoMax
from skdim._data import (
    ArraySource,
    RowReader,
    SampleSource,
    check_input,
    is_out_of_core,
    resolve_layout,
    validate_source,
)

TINY = dict(n_components=4, critic_units=16, batch_size=32, max_epochs=1, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits(digits_images):
    return digits_images[:192].astype(np.float32)  # (192, 8, 8), values 0..16


def _memmap(path, array, mode="r"):
    mm = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
    mm[:] = array
    mm.flush()
    del mm
    return np.memmap(path, dtype=array.dtype, mode=mode, shape=array.shape)


def _weights(est):
    weights = {f"encoder.{k}": v.clone() for k, v in est.encoder_.state_dict().items()}
    weights.update({f"critics.{k}": v.clone() for k, v in est.critics_.state_dict().items()})
    return weights


def _assert_same_weights(a, b, atol=0.0):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=atol, msg=k)


class Indexable:
    """An h5py/zarr-like array: shape, dtype and NumPy indexing, nothing else.

    Records the largest number of rows any single read returned.
    """

    def __init__(self, data):
        self._data = data
        self.shape, self.dtype = data.shape, data.dtype
        self.max_rows = 0

    def __getitem__(self, key):
        out = self._data[key]
        self.max_rows = max(self.max_rows, out.shape[0] if out.ndim == self._data.ndim else 1)
        return out


# ---------------------------------------------------------------- routing


def test_routing():
    arr = np.zeros((4, 3))
    assert not is_out_of_core(arr)
    assert not is_out_of_core(arr.tolist())
    assert not is_out_of_core(torch.zeros(4, 3))
    assert is_out_of_core(Indexable(arr))
    assert is_out_of_core(torch.utils.data.TensorDataset(torch.zeros(4, 3)))


def test_memmap_is_not_copied_by_validation(tmp_path, digits):
    mm = _memmap(tmp_path / "x.dat", (digits * 10).astype(np.uint8))
    est = DeepInfoMax(**TINY)
    # The memmap itself comes back: no copy, not even a view.
    checked = check_input(est, mm, reset=True)
    assert checked.X is mm and checked.n_features_in == 8
    assert not hasattr(est, "n_features_in_")  # validation writes nothing


@pytest.mark.parametrize("bad, message", [(np.nan, "Input X contains NaN"),
                                          (np.inf, "Input X contains infinity")])
def test_float_memmap_non_finite_same_error_as_in_memory(tmp_path, digits, bad, message):
    data = digits.copy()
    data[-1, 3, 3] = bad  # in the last block: the whole map is scanned
    mm = _memmap(tmp_path / "x.dat", data)
    with pytest.raises(ValueError, match=message):
        DeepInfoMax(**TINY).fit(mm)
    with pytest.raises(ValueError, match=message):
        DeepInfoMax(**TINY).fit(data)


def test_validation_errors(tmp_path, digits):
    name = "DeepInfoMax"
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        validate_source(_memmap(tmp_path / "a.dat", np.zeros(5, np.float32)), name=name)
    with pytest.raises(ValueError, match="Found array with 0 feature"):
        validate_source(Indexable(np.zeros((5, 0))), name=name)
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        validate_source(Indexable(np.zeros((0, 5))), name=name)
    with pytest.raises(TypeError, match="must hold numbers"):
        validate_source(Indexable(np.array([["a"], ["b"]])), name=name)
    # Feature-count mismatch at transform: validate_data's own wording.
    flat = digits.reshape(len(digits), -1)
    est = DeepInfoMax(**TINY).fit(flat)
    with pytest.raises(ValueError, match="X has 63 features, but DeepInfoMax is expecting 64"):
        est.transform(_memmap(tmp_path / "b.dat", flat[:, :63].copy()))


def test_float_check_reads_block_by_block(tmp_path, monkeypatch):
    """The finiteness check of a float memmap never holds more than a block."""
    data = np.random.default_rng(0).random((4096, 16, 16), dtype=np.float32)  # 4 MiB
    mm = _memmap(tmp_path / "x.dat", data)
    monkeypatch.setattr(io, "BLOCK_BYTES", 64 * 1024)
    tracemalloc.start()
    try:
        validate_source(mm, name="DeepInfoMax")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A 64 KiB float64 block is 32 rows: at most ~32 KiB of float32 rows and
    # their mask, far from the 4 MiB a whole-array check allocates.
    assert peak < 512 * 1024, peak


# ---------------------------------------------------------------- fitting


def test_fit_on_memmap_equals_in_memory_and_never_copies(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(2048, 16, 16), dtype=np.uint8)  # 0.5 MiB
    mm = _memmap(tmp_path / "x.dat", data)
    monkeypatch.setattr(io, "BLOCK_BYTES", 64 * 1024)
    params = dict(TINY, batch_size=256, encoder="conv")
    # Warm up lazy imports, so that the trace below sees fit's own allocations.
    DeepInfoMax(**params).fit(data[:512]).transform(data[:300])
    tracemalloc.start()
    try:
        on_disk = DeepInfoMax(**params).fit(mm)
        codes_disk = on_disk.transform(mm)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A float32 copy of X would be 2 MiB (float64: 4 MiB); the measured peak
    # is about 0.6 MiB: a batch of 256 rows (0.25 MiB as float32), the codes
    # and Python objects of the model.
    assert peak < 1.5 * 2**20, peak
    in_memory = DeepInfoMax(**params).fit(data)
    _assert_same_weights(on_disk, in_memory)
    np.testing.assert_array_equal(codes_disk, in_memory.transform(data))


def test_fit_on_dataset_and_indexable_equal_in_memory(digits, monkeypatch):
    monkeypatch.setattr(io, "BLOCK_BYTES", 8 * 64 * 16)  # statistics in blocks of 16 rows
    ref = DeepInfoMax(**TINY).fit(digits)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(digits), torch.zeros(len(digits)))
    from_dataset = DeepInfoMax(**TINY).fit(dataset)
    _assert_same_weights(ref, from_dataset)
    np.testing.assert_array_equal(ref.transform(digits), from_dataset.transform(dataset))

    indexable = Indexable(digits)
    from_indexable = DeepInfoMax(**TINY).fit(indexable)
    # Rows are read a batch (or a statistics block) at a time, never all at once.
    assert indexable.max_rows == TINY["batch_size"]
    _assert_same_weights(ref, from_indexable)

    samples = [torch.from_numpy(x) for x in digits]  # a plain sequence of tensors
    assert is_out_of_core(_Seq(samples))
    _assert_same_weights(ref, DeepInfoMax(**TINY).fit(_Seq(samples)))


class _Seq:
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_dataset_errors(digits):
    bad = digits.copy()
    bad[100, 0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        DeepInfoMax(**TINY).fit(torch.utils.data.TensorDataset(torch.from_numpy(bad)))
    ragged = _Seq([np.zeros((8, 8), np.float32)] * 3 + [np.zeros((8, 7), np.float32)])
    with pytest.raises(ValueError, match="Sample 3 has shape"):
        DeepInfoMax(**TINY).fit(ragged)


def test_dataloader_workers_give_the_same_model(tmp_path, digits, monkeypatch):
    log = tmp_path / "reads.log"
    real = RowReader.__getitem__

    def logged(self, rows):
        with open(log, "a") as f:  # workers are other processes: log through a file
            f.write(f"{os.getpid()}\n")
        return real(self, rows)

    monkeypatch.setattr(RowReader, "__getitem__", logged)
    mm = _memmap(tmp_path / "x.dat", digits)
    params = dict(TINY, max_epochs=2)
    ref = DeepInfoMax(**params).fit(digits)
    log.unlink()
    with_workers = DeepInfoMax(**params, num_workers=2).fit(mm)
    readers = log.read_text().split()
    # Every batch (2 epochs x 6) was read by a worker process, none directly.
    assert len(readers) == 12 and str(os.getpid()) not in readers
    _assert_same_weights(ref, with_workers)
    assert ref.history_ == with_workers.history_


def test_memmap_pickles_by_reference(tmp_path, digits):
    """DataLoader workers started with "spawn" get the file, not the data."""
    mm = _memmap(tmp_path / "x.dat", np.repeat(digits, 50, axis=0))  # 2.4 MB
    for view in (mm, mm[10:500], mm[::-3, 1:, ::-1]):
        layout = resolve_layout(view.shape[1:])
        blob = pickle.dumps(RowReader(view, layout, np.zeros(1), np.ones(1)))
        assert len(blob) < 2048
        np.testing.assert_array_equal(pickle.loads(blob).X, view)


def test_array_and_sample_sources_read_what_they_are_asked():
    data = np.arange(60, dtype=np.float32).reshape(10, 6)
    src = ArraySource(Indexable(data))
    np.testing.assert_array_equal(src[np.array([1, 4])], data[[1, 4]])
    np.testing.assert_array_equal(src[2:5], data[2:5])
    seq = SampleSource(_Seq([(row, 0) for row in data]))
    assert seq.shape == (10, 6) and seq.dtype == np.float32
    np.testing.assert_array_equal(seq[np.array([0, 9])], data[[0, 9]])
    np.testing.assert_array_equal(seq[3:6], data[3:6])
    # Callers that ask for everything in memory (np.asarray) get it.
    np.testing.assert_array_equal(np.asarray(src), data)
    np.testing.assert_array_equal(np.asarray(seq), data)


# ---------------------------------------------------------------- partial_fit


def test_partial_fit_chunks_equal_one_unshuffled_epoch(digits):
    """partial_fit over chunks == fit over their concatenation, one epoch.

    Standardisation is fixed by the first chunk in partial_fit and computed
    from all data in fit; the test data make them equal exactly (the second
    chunk is the first one mirrored, so every channel sum is the same; the
    pixels are small integers, so float64 sums are exact in any order) and
    the precondition is asserted, not assumed.
    """
    first = digits[:128]
    second = first[:, :, ::-1].copy()
    full = np.concatenate([first, second])
    params = dict(TINY, shuffle=False, gamma=0.1, alpha=0.5)  # prior and global terms on
    whole = DeepInfoMax(**params).fit(full)
    chunks = DeepInfoMax(**params).partial_fit(first)
    np.testing.assert_array_equal(chunks.channel_mean_, whole.channel_mean_)
    np.testing.assert_array_equal(chunks.channel_std_, whole.channel_std_)
    chunks.partial_fit(second)
    # Same batches, same random stream (prior samples), same arithmetic on
    # one CPU: any difference would be float reassociation, far below 1e-6.
    _assert_same_weights(whole, chunks, atol=1e-6)
    assert chunks.n_iter_ == 2 and whole.n_iter_ == 1

    # With a fresh random stream per call (what the stream replaces), the
    # prior samples differ and so do the weights: the comparison can fail.
    restarted = DeepInfoMax(**params).partial_fit(first)
    restarted._trainer.stream_state = None
    restarted.partial_fit(second)
    diff = max((a - b).abs().max().item()
               for a, b in zip(_weights(restarted).values(), _weights(whole).values()))
    assert diff > 1e-5
