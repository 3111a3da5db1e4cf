"""Shared fixtures and data helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

_NPZ_NAME = "cifar10_jpeg_bytes.npz"
_REPO = Path(__file__).resolve().parent.parent


def cifar10_path() -> Path | None:
    """The CIFAR-10 JPEG ``.npz`` file of this workplace, if there is one.

    ``SKDIM_CIFAR10_NPZ`` names it; otherwise ``shared/data`` beside the
    checkout (the layout of the project's machines and CI) is searched.
    """
    env = os.environ.get("SKDIM_CIFAR10_NPZ")
    if env and Path(env).expanduser().is_file():
        return Path(env).expanduser()
    for base in (Path.cwd().parent, _REPO.parent):
        candidate = base / "shared" / "data" / _NPZ_NAME
        if candidate.is_file():
            return candidate.resolve()
    return None


def load_cifar10(n_train: int, n_test: int):
    """The first rows of the CIFAR-10 file, or skip the test when it is absent."""
    from skdim.datasets import load_cifar10_jpeg_npz

    path = cifar10_path()
    if path is None:
        pytest.skip(f"CIFAR-10 file {_NPZ_NAME} not found (set SKDIM_CIFAR10_NPZ)")
    return load_cifar10_jpeg_npz(path, n_train=n_train, n_test=n_test)


@pytest.fixture(scope="session")
def digits_images() -> np.ndarray:
    """All 1,797 digit images (8x8, values 0..16) as float64 ``(n, 8, 8)``."""
    return load_digits().images


@pytest.fixture(scope="session")
def digits_xy():
    """Digits as flat rows ``(n, 64)`` and labels."""
    return load_digits(return_X_y=True)
