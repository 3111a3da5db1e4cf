"""Tests for skdim.datasets (on-disk CIFAR-10 loaders)."""

from __future__ import annotations

import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from skdim.datasets import load_cifar10, load_cifar10_jpeg_npz

from conftest import cifar10_path

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck"]


def _real_npz() -> Path | None:
    return cifar10_path()


# --------------------------------------------------------------------------
# load_cifar10: the official python batches
# --------------------------------------------------------------------------


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    # The official files are Python 2 pickles with bytes keys.
    batch = {b"batch_label": b"fixture", b"labels": labels, b"data": data,
             b"filenames": [b"x.png"] * len(labels)}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


@pytest.fixture
def cifar_folder(tmp_path):
    """A tiny cifar-10-batches-py: 2 images per training batch, 3 test images."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rows = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        n = 3 if name == "test_batch" else 2
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(k + i) % 10 for i in range(n)]
        _write_batch(folder / name, data, labels)
        rows[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CLASS_NAMES],
                     b"num_vis": 3072, b"num_cases_per_batch": 2}, f, protocol=2)
    return folder, rows


def test_load_cifar10_pixel_order_and_fields(cifar_folder):
    folder, rows = cifar_folder
    data = load_cifar10(folder)
    assert data.X_train.shape == (10, 32, 32, 3) and data.X_train.dtype == np.uint8
    assert data.X_test.shape == (3, 32, 32, 3)
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    assert list(data.class_names) == CLASS_NAMES
    expected_labels = sum((rows[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    np.testing.assert_array_equal(data.y_train, expected_labels)
    np.testing.assert_array_equal(data.y_test, rows["test_batch"][1])
    # Row layout of the release: 1024 red values, 1024 green, 1024 blue,
    # each plane row-major. Check every pixel with explicit indexing.
    raw = rows["data_batch_2"][0][1]  # second image of the second batch
    image = data.X_train[3]
    for c in range(3):
        for h in range(32):
            for w in range(32):
                assert image[h, w, c] == raw[c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(
        data.X_test[2, 5, 7], [rows["test_batch"][0][2][c * 1024 + 5 * 32 + 7] for c in range(3)]
    )


def test_load_cifar10_accepts_parent_folder(cifar_folder):
    folder, _ = cifar_folder
    a, b = load_cifar10(folder), load_cifar10(str(folder.parent))
    np.testing.assert_array_equal(a.X_train, b.X_train)


def test_load_cifar10_names_missing_files(cifar_folder, tmp_path):
    folder, _ = cifar_folder
    (folder / "data_batch_3").unlink()
    (folder / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3, batches.meta"):
        load_cifar10(folder)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path / "nowhere")


def test_load_cifar10_rejects_wrong_row_size(cifar_folder):
    folder, _ = cifar_folder
    _write_batch(folder / "test_batch", np.zeros((2, 100), dtype=np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(folder)


# --------------------------------------------------------------------------
# load_cifar10_jpeg_npz
# --------------------------------------------------------------------------


def _encode(images: np.ndarray, quality: int = 95) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    chunks = []
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
        chunks.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    return np.concatenate(chunks), offsets


@pytest.fixture
def tiny_npz(tmp_path):
    pytest.importorskip("PIL")
    # Flat-coloured images survive JPEG almost exactly, so pixels can be checked.
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [120, 120, 120]],
                       dtype=np.uint8)
    images = np.broadcast_to(colours[:, None, None, :], (4, 32, 32, 3)).copy()
    train_jpeg, train_offsets = _encode(images[:3])
    test_jpeg, test_offsets = _encode(images[3:])
    path = tmp_path / "tiny.npz"
    np.savez(path, train_jpeg=train_jpeg, train_offsets=train_offsets,
             y_train=np.array([2, 0, 1]), test_jpeg=test_jpeg, test_offsets=test_offsets,
             y_test=np.array([9]), class_names=np.array(CLASS_NAMES))
    return path, images


def test_load_cifar10_jpeg_npz_decodes_tiny_file(tiny_npz):
    path, images = tiny_npz
    data = load_cifar10_jpeg_npz(path)
    assert data.X_train.shape == (3, 32, 32, 3) and data.X_train.dtype == np.uint8
    assert data.X_test.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(data.y_train, [2, 0, 1])
    assert data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.y_test, [9])
    assert list(data.class_names) == CLASS_NAMES
    # JPEG of a flat colour: within a few levels of the original
    err = np.abs(data.X_train.astype(int) - images[:3]).max()
    assert err <= 3
    assert np.abs(data.X_test.astype(int) - images[3:]).max() <= 3


def test_load_cifar10_jpeg_npz_first_rows(tiny_npz):
    path, _ = tiny_npz
    full = load_cifar10_jpeg_npz(path)
    part = load_cifar10_jpeg_npz(path, n_train=2, n_test=0)
    np.testing.assert_array_equal(part.X_train, full.X_train[:2])
    np.testing.assert_array_equal(part.y_train, full.y_train[:2])
    assert part.X_test.shape == (0, 32, 32, 3) and part.y_test.shape == (0,)
    with pytest.raises(ValueError, match="n_train"):
        load_cifar10_jpeg_npz(path, n_train=4)
    with pytest.raises(ValueError, match="n_test"):
        load_cifar10_jpeg_npz(path, n_test=-1)


def test_load_cifar10_jpeg_npz_errors(tiny_npz, tmp_path, monkeypatch):
    path, _ = tiny_npz
    with pytest.raises(FileNotFoundError, match="not found"):
        load_cifar10_jpeg_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", y_train=np.arange(3))
    with pytest.raises(ValueError, match="train_jpeg"):
        load_cifar10_jpeg_npz(tmp_path / "bad.npz")
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install pillow"):
        load_cifar10_jpeg_npz(path)


def test_load_cifar10_jpeg_npz_real_file():
    path = _real_npz()
    if path is None:
        pytest.skip("CIFAR-10 npz not found (set SKDIM_CIFAR10_NPZ or place it in "
                    "../shared/data/cifar10_jpeg_bytes.npz)")
    pytest.importorskip("PIL")
    data = load_cifar10_jpeg_npz(path, n_train=20, n_test=20)
    assert data.X_train.shape == (20, 32, 32, 3) and data.X_train.dtype == np.uint8
    assert data.X_test.shape == (20, 32, 32, 3)
    for y in (data.y_train, data.y_test):
        assert y.dtype == np.int64 and y.shape == (20,)
        assert y.min() >= 0 and y.max() <= 9
    assert list(data.class_names) == CLASS_NAMES
    # real photographs: neither blank nor saturated
    assert 30 < data.X_train.mean() < 220 and data.X_train.std() > 20


# --------------------------------------------------------------------------
# make_waveforms
# --------------------------------------------------------------------------


def test_make_waveforms_is_seeded_balanced_and_separable_by_shape():
    from skdim.datasets import make_waveforms

    state = np.random.get_state()
    X, y = make_waveforms(600, length=64, random_state=3)
    assert X.shape == (600, 64) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(X, make_waveforms(600, length=64, random_state=3)[0])
    assert not np.array_equal(X, make_waveforms(600, length=64, random_state=4)[0])
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # global RNG untouched
    assert set(np.bincount(y)) and min(np.bincount(y)) > 150
    # Square waves are mostly at +-amplitude; sines and sawtooths are not.
    clean, labels = make_waveforms(300, length=64, noise=0.0, random_state=0)
    flatness = (np.abs(clean) / np.abs(clean).max(axis=1, keepdims=True) > 0.99).mean(axis=1)
    assert flatness[labels == 1].min() > 0.9 and flatness[labels != 1].max() < 0.5
