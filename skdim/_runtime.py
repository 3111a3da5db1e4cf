"""Devices and seeds: the one helper of each for the scikit-learn side of skdim."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state


def resolve_device(device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other values are checked.

    Raises
    ------
    ValueError
        For a string that names no device, or CUDA when it is not available.
    """
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda:0'; got {device!r}.")
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


def seed_from(random_state) -> int:
    """An integer seed from a scikit-learn ``random_state``.

    Follows scikit-learn: an int always gives the same seed, a
    ``RandomState`` instance is advanced by one draw, and ``None`` draws from
    NumPy's global ``RandomState`` (advancing it), so that ``np.random.seed``
    makes ``random_state=None`` runs repeatable as elsewhere in
    scikit-learn.
    """
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
