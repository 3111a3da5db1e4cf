"""Loaders for data sets a user already has on disk.

Nothing here downloads: point the loaders at files you have.

* :func:`load_cifar10` reads the standard ``cifar-10-batches-py`` folder
  (Krizhevsky, 2009).
* :func:`make_waveforms` generates a labelled 1-D signal task (no file).
* :func:`load_cifar10_jpeg_npz` reads CIFAR-10 stored as JPEG bytes in one
  ``.npz`` file. Where that file lives is for the caller to say (the
  project's tests and benchmarks look in ``SKDIM_CIFAR10_NPZ``).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_cifar10", "load_cifar10_jpeg_npz", "make_waveforms"]

_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_FILES = (*_CIFAR10_TRAIN, "test_batch", "batches.meta")
_NPZ_NAME = "cifar10_jpeg_bytes.npz"
_NPZ_KEYS = ("train_jpeg", "train_offsets", "y_train", "test_jpeg", "test_offsets",
             "y_test", "class_names")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        # The batches are Python 2 pickles: keys and strings come back as bytes.
        return pickle.load(f, encoding="bytes")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        data, labels = batch[b"data"], batch[b"labels"]
    except KeyError as exc:
        raise ValueError(f"{path} is not a CIFAR-10 batch: it lacks the key {exc}.") from exc
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: data has shape {data.shape}, expected (n, 3072) uint8 rows."
        )
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


def load_cifar10(path) -> Bunch:
    """Load CIFAR-10 from the standard ``cifar-10-batches-py`` folder.

    The folder holds the Python pickles ``data_batch_1`` ... ``data_batch_5``,
    ``test_batch`` and ``batches.meta`` of the official CIFAR-10 release.
    Only open files you trust: pickles can run code when loaded.

    Parameters
    ----------
    path : str or path-like
        The ``cifar-10-batches-py`` folder or the folder that contains it.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train`` (uint8, (50000, 32, 32, 3), channels last),
        ``y_train`` (int64, (50000,)), ``X_test`` (uint8, (10000, 32, 32, 3)),
        ``y_test`` (int64, (10000,)) and ``class_names`` (ndarray of str).

    Raises
    ------
    FileNotFoundError
        When a batch file is missing; the message lists which.

    Examples
    --------
    >>> from skdim.datasets import load_cifar10
    >>> data = load_cifar10("~/data")                    # doctest: +SKIP
    >>> data.X_train.shape, data.class_names[0]          # doctest: +SKIP
    ((50000, 32, 32, 3), 'airplane')
    """
    root = Path(path).expanduser()
    folder = root
    if not (root / "batches.meta").is_file() and (root / _CIFAR10_FOLDER).is_dir():
        folder = root / _CIFAR10_FOLDER  # we were given the parent
    missing = [name for name in _CIFAR10_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 files missing from {folder}: {', '.join(missing)}. Pass the "
            f"'{_CIFAR10_FOLDER}' folder of the official python release (or its "
            "parent)."
        )
    train = [_cifar_batch(folder / name) for name in _CIFAR10_TRAIN]
    X_test, y_test = _cifar_batch(folder / "test_batch")
    meta = _unpickle(folder / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in meta.get(b"label_names", [])]
    return Bunch(
        X_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        X_test=X_test,
        y_test=y_test,
        class_names=np.asarray(names, dtype=str),
    )


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, n: int, split: str) -> np.ndarray:
    from PIL import Image

    if n == 0:
        return np.zeros((0, 32, 32, 3), dtype=np.uint8)
    images = []
    for i in range(n):
        raw = blob[offsets[i]:offsets[i + 1]].tobytes()
        with Image.open(io.BytesIO(raw)) as img:
            images.append(np.asarray(img.convert("RGB")))
        if images[-1].shape != images[0].shape:
            raise ValueError(
                f"{split} image {i} is {images[-1].shape[:2]} pixels but image 0 is "
                f"{images[0].shape[:2]}; all images must have one size."
            )
    return np.stack(images)


def _check_n(n, total: int, name: str) -> int:
    if n is None:
        return total
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= total:
        raise ValueError(f"{name}={n!r} must be None or an integer in [0, {total}].")
    return int(n)


def load_cifar10_jpeg_npz(path, *, n_train=None, n_test=None) -> Bunch:
    """Load CIFAR-10 stored as JPEG bytes in one ``.npz`` file.

    The file holds ``train_jpeg`` and ``test_jpeg`` (uint8, every image's
    JPEG bytes concatenated), ``train_offsets`` and ``test_offsets`` (int64,
    ``n + 1`` boundaries: image ``i`` is ``jpeg[offsets[i]:offsets[i + 1]]``),
    ``y_train``, ``y_test`` (int64) and ``class_names``. Images are decoded
    with Pillow to RGB. JPEG is lossy, so pixels differ slightly from the
    original CIFAR-10.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    n_train : int, default=None
        Decode only the first ``n_train`` training images; None decodes all.
    n_test : int, default=None
        Decode only the first ``n_test`` test images; None decodes all.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train`` (uint8, (n_train, H, W, 3), channels last), ``y_train``
        (int64), ``X_test``, ``y_test`` and ``class_names`` (ndarray of str),
        the same fields as :func:`load_cifar10`.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ImportError
        When Pillow is not installed.

    Examples
    --------
    >>> from skdim.datasets import load_cifar10_jpeg_npz
    >>> data = load_cifar10_jpeg_npz("cifar10_jpeg_bytes.npz", n_train=1000,
    ...                              n_test=100)         # doctest: +SKIP
    >>> data.X_train.shape                               # doctest: +SKIP
    (1000, 32, 32, 3)
    """
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "load_cifar10_jpeg_npz needs Pillow to decode JPEG: pip install pillow"
        ) from exc
    if path is None:
        raise FileNotFoundError(
            f"No CIFAR-10 npz path given; pass the path of {_NPZ_NAME}."
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 npz file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in _NPZ_KEYS if k not in npz.files]
        if missing:
            raise ValueError(
                f"{path} lacks the keys {', '.join(missing)}; expected {', '.join(_NPZ_KEYS)}."
            )
        out = {"class_names": np.asarray(npz["class_names"], dtype=str)}
        for split, n in (("train", n_train), ("test", n_test)):
            offsets = np.asarray(npz[f"{split}_offsets"], dtype=np.int64)
            labels = np.asarray(npz[f"y_{split}"], dtype=np.int64)
            if len(offsets) != len(labels) + 1 or np.any(np.diff(offsets) < 0):
                raise ValueError(
                    f"{path}: {split}_offsets must be {len(labels) + 1} non-decreasing "
                    f"boundaries for {len(labels)} labels."
                )
            n = _check_n(n, len(labels), f"n_{split}")
            out[f"X_{split}"] = _decode_jpegs(npz[f"{split}_jpeg"], offsets, n, split)
            out[f"y_{split}"] = labels[:n].copy()
    return Bunch(X_train=out["X_train"], y_train=out["y_train"], X_test=out["X_test"],
                 y_test=out["y_test"], class_names=out["class_names"])


def make_waveforms(n_samples: int = 900, length: int = 128, *, noise: float = 0.3,
                   random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine (class 0), square (1) and sawtooth (2) waves: a 1-D signal task.

    Each signal has a random frequency (2 to 6 periods), phase and amplitude
    (0.5 to 1.5), plus Gaussian noise. The same shape shifted in time is a
    different vector, so a linear model on the raw samples struggles while a
    convolutional code that summarises the whole signal does well.

    Parameters
    ----------
    n_samples : int, default=900
    length : int, default=128
        Samples per signal.
    noise : float, default=0.3
        Standard deviation of the added noise.
    random_state : int, default=0
        Seed of a private NumPy generator (the global state is not used).

    Returns
    -------
    X : ndarray of shape (n_samples, length), float32
    y : ndarray of shape (n_samples,), int64

    Examples
    --------
    >>> from skdim.datasets import make_waveforms
    >>> X, y = make_waveforms(6, length=32)
    >>> X.shape, X.dtype, sorted(set(y.tolist())) <= [0, 1, 2]
    ((6, 32), dtype('float32'), True)
    """
    rng = np.random.default_rng(random_state)
    t = np.arange(length) / length
    y = rng.integers(0, 3, size=n_samples)
    freq = rng.uniform(2.0, 6.0, size=(n_samples, 1))
    phase = rng.uniform(0.0, 1.0, size=(n_samples, 1))
    cycles = freq * t + phase
    waves = np.stack([np.sin(2 * np.pi * cycles), np.sign(np.sin(2 * np.pi * cycles)),
                      2 * (cycles % 1.0) - 1])  # (3, n, length)
    X = waves[y, np.arange(n_samples)] * rng.uniform(0.5, 1.5, size=(n_samples, 1))
    X += rng.normal(scale=noise, size=X.shape)
    return X.astype(np.float32), y.astype(np.int64)
