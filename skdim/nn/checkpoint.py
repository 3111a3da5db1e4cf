"""Checkpoint files: atomic, verified, and owned by one fit at a time.

A checkpoint is one file, ``skdim_checkpoint.pt``, in a directory:

* **Atomic.** The state goes to a temporary file in the same directory, is
  flushed to disk, then renamed over the previous checkpoint
  (``os.replace``), so a crash, a full disk or a Ctrl-C while writing leaves
  the previous checkpoint intact. A temporary file left by a process killed
  mid-write is removed by the next fit that takes the directory.
* **Verified.** The file starts with a header holding the SHA-256 of the
  payload; reading recomputes it, so flipped or truncated bytes raise
  :class:`CheckpointError` instead of resuming from damaged weights. The
  payload is read with ``torch.load(weights_only=True)``: tensors and plain
  Python values only, so loading a checkpoint cannot run code.
* **Owned.** :func:`directory_lock` takes an exclusive lock on the
  directory (``fcntl.flock`` where available), so a second fit writing into
  the same directory -- another process or another thread -- gets a clear
  error instead of silently overwriting the first one's checkpoints. The
  lock disappears with the process that holds it, also when it is killed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch

__all__ = ["CheckpointError", "CHECKPOINT_NAME", "FORMAT_VERSION", "checkpoint_path",
           "write_checkpoint", "read_checkpoint", "directory_lock", "remove_orphans"]

CHECKPOINT_NAME = "skdim_checkpoint.pt"
LOCK_NAME = ".skdim.lock"
FORMAT_VERSION = 2
_MAGIC = b"SKDIM-CHECKPOINT-2\nsha256:"
_HEADER = len(_MAGIC) + 64 + 1  # magic, hex digest, newline


class CheckpointError(OSError):
    """A checkpoint could not be written, read, or used.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skdim.nn.checkpoint import CheckpointError, read_checkpoint
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "skdim_checkpoint.pt").write_bytes(b"not a checkpoint")
    >>> try:
    ...     read_checkpoint(folder)
    ... except CheckpointError as exc:
    ...     print("not a readable skdim checkpoint" in str(exc))
    True
    """


def _unwritable(folder, exc: OSError) -> CheckpointError:
    return CheckpointError(
        f"Cannot write a checkpoint in {str(folder)!r}: {exc}. Choose a writable checkpoint_dir."
    )


def checkpoint_path(directory) -> Path:
    """The checkpoint file in ``directory``.

    Examples
    --------
    >>> from skdim.nn.checkpoint import checkpoint_path
    >>> checkpoint_path("runs/a").name
    'skdim_checkpoint.pt'
    """
    return Path(os.fspath(directory)) / CHECKPOINT_NAME


def _tmp_prefix() -> str:
    return f".{CHECKPOINT_NAME}."


def write_checkpoint(directory, state: dict) -> Path:
    """Write ``state`` to ``directory/skdim_checkpoint.pt`` atomically, with its digest.

    Raises
    ------
    CheckpointError
        If the directory cannot be created or the file cannot be written
        (no permission, disk full ...). The previous checkpoint is intact
        and no temporary file is left behind.

    Examples
    --------
    >>> import tempfile, torch
    >>> from skdim.nn.checkpoint import FORMAT_VERSION, read_checkpoint, write_checkpoint
    >>> folder = tempfile.mkdtemp()
    >>> path = write_checkpoint(folder, {"format": FORMAT_VERSION, "w": torch.ones(2)})
    >>> read_checkpoint(folder)["w"].tolist()
    [1.0, 1.0]
    """
    path = checkpoint_path(directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path.parent, exc) from exc
    try:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getbuffer()
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception):
            full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
            raise CheckpointError(
                f"Writing the checkpoint {str(path)!r} failed: {exc}."
                + (" No space left on device: free some space, or choose another "
                   "checkpoint_dir." if full else "")
                + " The previous checkpoint, if any, is intact."
            ) from exc
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (Windows).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_checkpoint(directory) -> dict | None:
    """The checkpoint in ``directory``, or ``None`` when there is none.

    Raises
    ------
    CheckpointError
        If the file is not a checkpoint of this version of skdim, or its
        bytes do not match the digest written with them.

    Examples
    --------
    >>> import tempfile
    >>> from skdim.nn.checkpoint import read_checkpoint
    >>> read_checkpoint(tempfile.mkdtemp()) is None  # no checkpoint yet
    True
    """
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"Cannot read the checkpoint {where!r}: {exc}.") from exc
    if not data.startswith(_MAGIC) or len(data) < _HEADER:
        raise CheckpointError(
            f"{where!r} is not a readable skdim checkpoint: it was not written by this version "
            "of skdim. Delete it to start training from scratch."
        )
    digest, payload = data[len(_MAGIC) : _HEADER - 1].decode("ascii", "replace"), data[_HEADER:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(
            f"{where!r} is damaged: its digest does not match its contents (bytes changed or "
            "missing after it was written). Delete it to start training from scratch."
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{where!r} is not a readable skdim checkpoint ({exc}). Delete it to start "
            "training from scratch."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{where!r} was not written by this version of skdim; delete it to start "
            "training from scratch."
        )
    return state


def remove_orphans(directory) -> list[Path]:
    """Delete temporary files that a write killed mid-way left in ``directory``.

    Only safe while holding :func:`directory_lock` (no write can be running).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skdim.nn.checkpoint import directory_lock, remove_orphans
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / ".skdim_checkpoint.pt.x1.tmp").write_bytes(b"half")  # a killed write
    >>> with directory_lock(folder):
    ...     [p.name for p in remove_orphans(folder)]
    ['.skdim_checkpoint.pt.x1.tmp']
    """
    removed = []
    folder = Path(os.fspath(directory))
    for tmp in folder.glob(_tmp_prefix() + "*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def directory_lock(directory) -> Iterator[Path]:
    """Hold an exclusive lock on a checkpoint directory (created if needed).

    Taking the lock also proves the directory writable, before any training.

    Raises
    ------
    CheckpointError
        If the directory cannot be created or written, or another fit (in
        this or another process) holds the lock.

    Examples
    --------
    >>> import tempfile
    >>> from skdim.nn.checkpoint import CheckpointError, directory_lock
    >>> folder = tempfile.mkdtemp()
    >>> with directory_lock(folder):
    ...     try:
    ...         with directory_lock(folder):
    ...             pass
    ...     except CheckpointError as exc:
    ...         print("in use by another fit" in str(exc))
    True
    """
    folder = Path(os.fspath(directory))
    lock_path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _unwritable(folder, exc) from exc
    try:
        if not _try_lock(fd):
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise CheckpointError(
                f"checkpoint_dir {str(folder)!r} is in use by another fit (pid {owner}); two "
                "fits must not write into one directory. Wait for it, or use another "
                "checkpoint_dir."
            )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            raise _unwritable(folder, exc) from exc
        yield folder
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte instead
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
