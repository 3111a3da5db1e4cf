"""Process-wide PyTorch settings a fit needs, set only inside a context that restores them.

Two settings of PyTorch are global to the process, not to a model:

* ``torch.backends.cuda.matmul.allow_tf32`` -- TF32 matrix products on
  CUDA, switched on for ``precision="tf32"``;
* ``torch.set_num_threads`` -- the intra-op thread pool, capped at the
  process's OpenMP budget (``OMP_NUM_THREADS``) when something else raised
  it, so that ``k`` joblib worker processes do not oversubscribe the cores.

:func:`training_settings` applies them for the duration of a fit and
restores the previous values afterwards, also when the fit raises. Fits
running at once in several threads share one setting: the first to enter
applies it, the last to leave restores it (a reference count under a lock),
so one fit finishing cannot switch the setting off under another.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterator

import torch

__all__ = ["training_settings", "omp_thread_budget", "native_bfloat16", "resolve_precision"]

_LOCK = threading.Lock()


class _SharedSetting:
    """A process-wide value set while at least one user holds it."""

    def __init__(self, get: Callable[[], object], set_: Callable[[object], None]) -> None:
        self.get, self.set = get, set_
        self.users = 0
        self.saved: object = None

    def acquire(self, value) -> None:
        with _LOCK:
            if self.users == 0:
                self.saved = self.get()
                self.set(value)
            self.users += 1

    def release(self) -> None:
        with _LOCK:
            self.users -= 1
            if self.users == 0:
                self.set(self.saved)


def _set_tf32(value) -> None:
    torch.backends.cuda.matmul.allow_tf32 = bool(value)


_TF32 = _SharedSetting(lambda: torch.backends.cuda.matmul.allow_tf32, _set_tf32)
_THREADS = _SharedSetting(torch.get_num_threads, lambda n: torch.set_num_threads(int(n)))


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively.

    CUDA devices of compute capability 8.0 and newer; CPUs with AVX512-BF16
    or AMX (read from ``/proc/cpuinfo``, so Linux only; elsewhere False).
    Without native support bfloat16 is emulated and slower than float32.

    Examples
    --------
    >>> from skdim.nn.runtime import native_bfloat16
    >>> isinstance(native_bfloat16("cpu"), bool)
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` -> ``"bfloat16"`` where :func:`native_bfloat16`, else ``"float32"``.

    Other values are returned unchanged.

    Examples
    --------
    >>> from skdim.nn.runtime import resolve_precision
    >>> resolve_precision("float32", "cpu")
    'float32'
    >>> resolve_precision("auto", "cpu") in ("bfloat16", "float32")
    True
    """
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16(device) else "float32"


def omp_thread_budget() -> int | None:
    """``OMP_NUM_THREADS`` as a positive int, or None when unset or invalid.

    Examples
    --------
    >>> import os
    >>> from skdim.nn.runtime import omp_thread_budget
    >>> omp_thread_budget() == (int(os.environ["OMP_NUM_THREADS"])
    ...                         if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None)
    True
    """
    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return limit if limit > 0 else None


@contextlib.contextmanager
def training_settings(*, tf32: bool = False) -> Iterator[None]:
    """Apply the process-wide settings of a fit, then restore them.

    Parameters
    ----------
    tf32 : bool, default=False
        Allow TF32 matrix products on CUDA while the context is open.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.runtime import training_settings
    >>> before = torch.backends.cuda.matmul.allow_tf32
    >>> with training_settings(tf32=True):
    ...     torch.backends.cuda.matmul.allow_tf32
    True
    >>> torch.backends.cuda.matmul.allow_tf32 == before
    True
    """
    held: list[_SharedSetting] = []
    try:
        if tf32:
            _TF32.acquire(True)
            held.append(_TF32)
        limit = omp_thread_budget()
        if limit is not None and limit < torch.get_num_threads():
            _THREADS.acquire(limit)
            held.append(_THREADS)
        yield
    finally:
        for setting in reversed(held):
            setting.release()
