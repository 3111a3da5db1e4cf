"""Atomic training checkpoints of :class:`~skdim.DeepInfoMax`.

A checkpoint is one file, ``skdim_checkpoint.pt`` in ``checkpoint_dir``,
written at the end of every epoch: the weights of the encoder, critics and
prior discriminator, both optimizers' states, the seed and the state of the
sample stream's random generator, the epoch count, the history, the input
standardisation, and a description of the parameters and data it belongs to.

Writing is atomic: the state goes to a temporary file in the same directory,
is flushed to disk, then renamed over the previous checkpoint
(``os.replace``), so a crash, a full disk or a Ctrl-C while writing leaves
the previous checkpoint intact. Reading uses ``torch.load(weights_only=True)``:
a checkpoint holds tensors and plain Python values only, and loading one
cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ._distributed import broadcast_object, world

CHECKPOINT_NAME = "skdim_checkpoint.pt"
FORMAT_VERSION = 1
# Parameters that do not change what training computes: a run may be resumed
# with other values (e.g. more epochs, another device, another verbosity).
RESUMABLE_PARAMS = frozenset(
    {"verbose", "max_epochs", "checkpoint_dir", "device", "warm_start", "num_workers"}
)


class CheckpointError(OSError):
    """A checkpoint could not be written or read."""


def checkpoint_path(directory) -> Path:
    return Path(os.fspath(directory)) / CHECKPOINT_NAME


def write_checkpoint(directory, state: dict) -> Path:
    """Write ``state`` to ``directory/skdim_checkpoint.pt`` atomically.

    Raises
    ------
    CheckpointError
        If the directory cannot be created or the file cannot be written
        (no permission, disk full ...). The previous checkpoint is unchanged
        and no temporary file is left behind.
    """
    path = checkpoint_path(directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CHECKPOINT_NAME}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(
            f"Cannot write a checkpoint in {str(path.parent)!r}: {exc}. Choose a writable "
            "checkpoint_dir."
        ) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception):
            raise CheckpointError(
                f"Writing the checkpoint {str(path)!r} failed: {exc}. The previous "
                "checkpoint, if any, is unchanged."
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
    """The checkpoint in ``directory``, or ``None`` when there is none."""
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{str(path)!r} is not a readable skdim checkpoint ({exc}). Delete it to "
            "start training from scratch."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} was not written by this version of skdim; delete it to start "
            "training from scratch."
        )
    return state


# ----------------------------------------------------------- the estimator side
def _describe(value) -> str:
    """A comparable text for a parameter value."""
    if isinstance(value, np.random.RandomState):
        return "RandomState"  # its seed was drawn once and is in the checkpoint
    if callable(value) and not isinstance(value, type):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def params_fingerprint(estimator) -> dict[str, str]:
    return {
        k: _describe(v)
        for k, v in sorted(estimator.get_params(deep=False).items())
        if k not in RESUMABLE_PARAMS
    }


def data_fingerprint(X) -> dict:
    """Shape, dtype and a hash of the first and last rows (cheap, catches
    most accidental changes of data; not a full content hash)."""
    n = int(X.shape[0])
    k = min(8, n)
    digest = hashlib.sha1()
    for block in (X[:k], X[n - k :]):
        digest.update(np.ascontiguousarray(np.asarray(block)).tobytes())
    return {"n_samples": n, "sample_shape": [int(s) for s in X.shape[1:]],
            "dtype": str(np.dtype(X.dtype)), "edge_rows_sha1": digest.hexdigest()}


def save_estimator_checkpoint(estimator, X, objective, discriminator, optimizers) -> None:
    """Write the estimator's training state (rank 0 only under DDP)."""
    if world()[0] != 0:
        return
    from ._state import _state_to_cpu

    def cpu(module):
        return None if module is None else {
            k: v.detach().cpu() for k, v in module.state_dict().items()
        }

    stream = getattr(estimator, "_stream_rng", None)
    state = {
        "format": FORMAT_VERSION,
        "params": params_fingerprint(estimator),
        "data": data_fingerprint(X),
        "seed": int(estimator._seed),
        "n_iter": int(estimator.n_iter_),
        "history": [dict(h) for h in estimator.history_],
        "channel_mean": torch.as_tensor(estimator.channel_mean_),
        "channel_std": torch.as_tensor(estimator.channel_std_),
        "objective": cpu(objective),
        "discriminator": cpu(discriminator),
        "optimizers": _state_to_cpu(*optimizers),
        "stream_rng": None if stream is None else stream.clone(),
    }
    write_checkpoint(estimator.checkpoint_dir, state)


def load_estimator_checkpoint(estimator, X, same_rows: bool = True) -> dict | None:
    """The checkpoint to resume from, checked against the parameters and data.

    ``same_rows=False`` (``partial_fit``, whose chunks differ) compares the
    per-sample shape and dtype only.

    Under DDP, rank 0 reads it and sends it to the others (nodes need not
    share a file system).

    Raises
    ------
    ValueError
        If the checkpoint was written with other parameters or other data.
    """
    state = read_checkpoint(estimator.checkpoint_dir) if world()[0] == 0 else None
    state = broadcast_object(state)
    if state is None:
        return None
    where = str(checkpoint_path(estimator.checkpoint_dir))
    current = params_fingerprint(estimator)
    saved = state["params"]
    differ = sorted(k for k in set(current) | set(saved) if current.get(k) != saved.get(k))
    if differ:
        detail = ", ".join(f"{k}={saved.get(k, '<unset>')} (now {current.get(k, '<unset>')})"
                           for k in differ)
        raise ValueError(
            f"The checkpoint {where!r} was written with other parameters: {detail}. "
            "Resume with the same parameters, or use another checkpoint_dir (or delete "
            "the file) to start over."
        )
    saved_data, data = dict(state["data"]), data_fingerprint(X)
    if not same_rows:  # partial_fit: every chunk differs
        for key in ("n_samples", "edge_rows_sha1"):
            saved_data.pop(key, None)
            data.pop(key, None)
    if saved_data != data:
        raise ValueError(
            f"The checkpoint {where!r} was written for data {saved_data}, but X is "
            f"{data}. Resume on the same data, or use another checkpoint_dir."
        )
    return state


def restore_estimator(estimator, X, state: dict) -> None:
    """Rebuild the estimator's fitted state from a checkpoint."""
    stats = (state["channel_mean"].numpy(), state["channel_std"].numpy())
    estimator._initialize(X, seed=state["seed"], stats=stats)
    estimator._objective.load_state_dict(state["objective"])
    if estimator._discriminator is not None:
        estimator._discriminator.load_state_dict(state["discriminator"])
    estimator._optimizer_state = state["optimizers"]
    estimator._stream_rng = state["stream_rng"]
    estimator.history_ = [dict(h) for h in state["history"]]
    estimator.n_iter_ = int(state["n_iter"])
    estimator._publish()
