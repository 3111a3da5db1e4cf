"""Where the benchmarks find CIFAR-10: ``SKDIM_CIFAR10_NPZ``, else the project's data folder."""

from __future__ import annotations

import os
from pathlib import Path

NPZ_NAME = "cifar10_jpeg_bytes.npz"
_REPO = Path(__file__).resolve().parent.parent


def cifar10_path() -> Path | None:
    """The CIFAR-10 JPEG ``.npz``: ``$SKDIM_CIFAR10_NPZ``, else ``shared/data`` beside the checkout."""
    env = os.environ.get("SKDIM_CIFAR10_NPZ")
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd().parent, _REPO.parent):
        candidate = base / "shared" / "data" / NPZ_NAME
        if candidate.is_file():
            return candidate.resolve()
    return None
