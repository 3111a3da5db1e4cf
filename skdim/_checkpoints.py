"""The estimator's side of checkpoints: which run a checkpoint belongs to.

A checkpoint (:mod:`skdim.nn.checkpoint`) holds the trainer's state (the
same ``state_dict`` that pickling uses) and, under ``"estimator"``, what
identifies the run: the parameters that change what training computes, a
fingerprint of all of the data (SHA-256 of every value, read in blocks), and
the input standardisation. A fit resumes only from a checkpoint of the same
run; anything else is a clear error, never a silent resume.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ._data import data_fingerprint
from .nn.callbacks import Checkpoint
from .nn.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_path,
    directory_lock,
    read_checkpoint,
    remove_orphans,
)
from .nn.distributed import broadcast_object, world

# Parameters that do not change what training computes: a run may be resumed
# with other values (more epochs, another device, verbosity, a time limit).
RESUMABLE_PARAMS = frozenset(
    {"verbose", "max_epochs", "checkpoint_dir", "device", "warm_start", "num_workers", "max_time",
     "callbacks"}
)


def _describe(value) -> str:
    """A comparable text for a parameter value."""
    if isinstance(value, np.random.RandomState):
        return "RandomState"  # its seed was drawn once and is in the checkpoint
    if callable(value) and not isinstance(value, type):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def params_fingerprint(estimator) -> dict[str, str]:
    resumable = RESUMABLE_PARAMS
    if getattr(estimator, "learning_rate_schedule", "constant") != "constant":
        # The schedule's horizon: other max_epochs would bend the curve mid-run.
        resumable = resumable - {"max_epochs"}
    return {
        k: _describe(v)
        for k, v in sorted(estimator.get_params(deep=False).items())
        if k not in resumable
    }


class Store:
    """The checkpoint directory of one fit of ``estimator`` on ``X``.

    ``same_rows=False`` (``partial_fit``, whose chunks differ) identifies the
    data by per-sample shape and dtype only.
    """

    def __init__(self, estimator, X, *, same_rows: bool) -> None:
        self.estimator = estimator
        self.directory = estimator.checkpoint_dir
        self.same_rows = same_rows
        self.is_writer = world()[0] == 0
        if same_rows:
            self.data = data_fingerprint(X)
        else:
            self.data = {"sample_shape": [int(s) for s in X.shape[1:]], "dtype": str(np.dtype(X.dtype))}
        self.params = params_fingerprint(estimator)

    def lock(self):
        """Hold the directory for this fit (rank 0 under DDP) and clear orphaned files."""
        if not self.is_writer:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(directory_lock(self.directory))
        remove_orphans(self.directory)
        return stack

    def callback(self, stats) -> Checkpoint:
        """The callback that writes this run's checkpoint after every epoch."""
        mean, std = (torch.as_tensor(np.asarray(s, np.float64)) for s in stats)
        extra = {"estimator": {"params": self.params, "data": self.data,
                               "channel_mean": mean, "channel_std": std}}
        if not self.is_writer:
            return _NoWrite()
        return Checkpoint(self.directory, extra=lambda: extra, lock=False)

    def resume(self, build):
        """``(trainer, stats)`` from the checkpoint, or None when there is none.

        ``build(seed)`` makes an untrained trainer of this run's architecture.

        Raises
        ------
        ValueError
            If the checkpoint belongs to other parameters or data, or holds
            more epochs than ``max_epochs``.
        CheckpointError
            If the file is damaged or its state does not fit the model.
        """
        state = read_checkpoint(self.directory) if self.is_writer else None
        state = broadcast_object(state)
        if state is None:
            return None
        where = str(checkpoint_path(self.directory))
        try:
            saved, trainer_state = state["estimator"], state["trainer"]
            saved_params, saved_data = saved["params"], dict(saved["data"])
            stats = (saved["channel_mean"].double().numpy(), saved["channel_std"].double().numpy())
            seed, epochs = int(trainer_state["seed"]), int(trainer_state["epoch"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{where!r} lacks {exc}: it is incomplete or was not written by DeepInfoMax. "
                "Delete it to start training from scratch."
            ) from exc
        differ = sorted(k for k in set(self.params) | set(saved_params)
                        if self.params.get(k) != saved_params.get(k))
        if differ:
            detail = ", ".join(f"{k}={saved_params.get(k, '<unset>')} (now "
                               f"{self.params.get(k, '<unset>')})" for k in differ)
            raise ValueError(
                f"The checkpoint {where!r} was written with other parameters: {detail}. "
                "Resume with the same parameters, or use another checkpoint_dir (or delete "
                "the file) to start over."
            )
        if not self.same_rows:
            saved_data = {k: saved_data.get(k) for k in self.data}
        if saved_data != self.data:
            raise ValueError(
                f"The checkpoint {where!r} was written for data {saved_data}, but X is "
                f"{self.data}. Resume on the same data, or use another checkpoint_dir."
            )
        max_epochs = int(self.estimator.max_epochs)
        if self.same_rows and epochs > max_epochs:
            raise ValueError(
                f"The checkpoint {where!r} holds {epochs} epochs, more than max_epochs="
                f"{max_epochs}. Set max_epochs >= {epochs} to use it, or use another "
                "checkpoint_dir to train a shorter run."
            )
        trainer = build(seed)
        try:
            trainer.load_state_dict(trainer_state)
        except ValueError as exc:
            raise CheckpointError(
                f"{where!r} does not fit this model ({exc}). Delete it to start training "
                "from scratch."
            ) from exc
        return trainer, stats


class _NoWrite(Checkpoint):
    """Processes other than rank 0 write no checkpoint."""

    def __init__(self) -> None:
        super().__init__(None, lock=False)

    def on_epoch_end(self, trainer, logs: dict) -> None:
        pass


__all__ = ["Store", "params_fingerprint", "CheckpointError", "FORMAT_VERSION"]
