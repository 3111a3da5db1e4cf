"""Shared fixtures and data helpers for the test suite."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

_BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))

from _cifar import NPZ_NAME as _NPZ_NAME  # noqa: E402
from _cifar import cifar10_path as _benchmark_cifar10_path  # noqa: E402


def cifar10_path() -> Path | None:
    """The CIFAR-10 JPEG ``.npz`` file of this workplace, if there is one.

    The search (``SKDIM_CIFAR10_NPZ``, else ``shared/data`` beside the
    checkout) is the benchmarks' own, so both find the same file.
    """
    path = _benchmark_cifar10_path()
    return path if path is not None and path.is_file() else None


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


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(epoch, step)``: Ctrl-C arrives at that step of that epoch (0-based).

    ``monkeypatch.undo()`` disarms it.
    """
    from skdim.nn.trainer import DIMTrainer

    real = DIMTrainer.train_step

    def arm(epoch: int, step: int) -> None:
        def train_step(self, x, generator=None):
            if self.epoch == epoch and self.epoch_step == step:
                raise KeyboardInterrupt
            return real(self, x, generator)

        monkeypatch.setattr(DIMTrainer, "train_step", train_step)

    return arm
