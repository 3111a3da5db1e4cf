"""Runtime helpers shared by the estimator and the metrics: devices, seeds, progress."""

from __future__ import annotations

import sys

import numpy as np
import torch
from sklearn.utils import check_random_state


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings are checked."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0'; got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return dev


def _seed_from(random_state) -> int:
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def epoch_progress(n_epochs: int):
    """A progress bar over epochs: tqdm when installed, else one line per epoch."""
    if n_epochs == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PrintProgress(n_epochs)
    return tqdm(total=n_epochs, desc="DeepInfoMax", unit="epoch", file=sys.stderr)


class _PrintProgress:
    """Minimal stand-in for tqdm when it is not installed."""

    def __init__(self, total: int) -> None:
        self.total, self.n = total, 0

    def update(self, k: int) -> None:
        self.n += k

    def set_postfix(self, **kwargs) -> None:
        text = " ".join(f"{k}={v}" for k, v in kwargs.items())
        print(f"DeepInfoMax epoch {self.n}/{self.total} {text}", file=sys.stderr)

    def close(self) -> None:
        pass
