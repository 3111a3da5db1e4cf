"""Callbacks of :class:`~skdim.nn.trainer.DIMTrainer`: progress, time limits, checkpoints.

The protocol is small: a callback is any object with these methods (the
base class :class:`Callback` provides no-op versions), called by
:meth:`DIMTrainer.fit <skdim.nn.trainer.DIMTrainer.fit>` in this order:

``on_fit_begin(trainer)``
    Once, before the first epoch.
``on_epoch_begin(trainer)``
    Before each epoch; setting ``trainer.stop_training = True`` here skips it.
``on_batch_end(trainer, logs)``
    After each optimisation step. ``logs`` holds ``"batch_size"`` and the
    step's terms as 0-d tensors (``"loss"``, ``"local_mi"``, ...); calling
    ``float()`` on one waits for the GPU, so do it only when needed.
    Setting ``trainer.stop_training = True`` ends training after this batch
    (the epoch is then recorded with ``"stopped": True``).
``on_epoch_end(trainer, logs)``
    After each epoch, with its entry of ``trainer.history`` (floats).
``on_fit_end(trainer)``
    Always, also when training raised; ``trainer.error`` is the exception
    then (it propagates after the callbacks ran).

An early-stopping callback, for example, is a few lines::

    class EarlyStopping(Callback):
        def __init__(self, patience=3):
            self.patience, self.best, self.bad = patience, float("inf"), 0

        def on_epoch_end(self, trainer, logs):
            if logs["loss"] < self.best:
                self.best, self.bad = logs["loss"], 0
            else:
                self.bad += 1
                trainer.stop_training = self.bad >= self.patience
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from typing import Callable

from .checkpoint import FORMAT_VERSION, directory_lock, remove_orphans, write_checkpoint
from .distributed import max_over_ranks

__all__ = ["Callback", "ProgressBar", "EpochLogger", "TimeLimit", "Checkpoint",
           "RollbackOnError", "WarnOnExplodingLoss"]


class Callback:
    """Base class: every hook does nothing; override the ones you need.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.callbacks import Callback
    >>> from skdim.nn.trainer import DIMTrainer
    >>> class CountBatches(Callback):
    ...     def __init__(self):
    ...         self.n = 0
    ...     def on_batch_end(self, trainer, logs):
    ...         self.n += 1
    >>> counter = CountBatches()
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> _ = trainer.fit([torch.randn(8, 1, 8, 8)] * 3, epochs=2, callbacks=[counter])
    >>> counter.n
    6
    """

    def on_fit_begin(self, trainer) -> None:
        pass

    def on_epoch_begin(self, trainer) -> None:
        pass

    def on_batch_end(self, trainer, logs: dict) -> None:
        pass

    def on_epoch_end(self, trainer, logs: dict) -> None:
        pass

    def on_fit_end(self, trainer) -> None:
        pass


def _numbers(logs: dict) -> dict:
    """The loss terms of ``logs`` (not the epoch, batch size or flags)."""
    return {k: v for k, v in logs.items()
            if k not in ("epoch", "batch_size", "stopped") and not isinstance(v, (str, bool))}


def _terms(logs: dict) -> str:
    return "  ".join(f"{k} {float(v):.4g}" for k, v in _numbers(logs).items())


class EpochLogger(Callback):
    """One line per epoch, for logs: the epoch's mean terms, images/s and time.

    Parameters
    ----------
    file : file-like, default=sys.stderr
    name : str, default="DIM"
        Prefix of each line.

    Examples
    --------
    >>> import io, torch
    >>> from skdim.nn.callbacks import EpochLogger
    >>> from skdim.nn.trainer import DIMTrainer
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> out = io.StringIO()
    >>> _ = trainer.fit([torch.randn(16, 1, 8, 8)], epochs=1, callbacks=[EpochLogger(out)])
    >>> out.getvalue().startswith("DIM epoch 1/1")
    True
    """

    def __init__(self, file=None, name: str = "DIM") -> None:
        self.file, self.name = file, name

    def on_epoch_begin(self, trainer) -> None:
        self._start, self._images = time.perf_counter(), 0

    def on_batch_end(self, trainer, logs: dict) -> None:
        self._images += logs["batch_size"]

    def on_epoch_end(self, trainer, logs: dict) -> None:
        seconds = time.perf_counter() - self._start
        rate = self._images / seconds if seconds > 0 else float("nan")
        stopped = " (stopped)" if logs.get("stopped") else ""
        print(f"{self.name} epoch {logs['epoch']}/{trainer.target_epoch}{stopped}  {_terms(logs)}  "
              f"{rate:.0f} img/s  {seconds:.1f} s", file=self.file or sys.stderr, flush=True)


class ProgressBar(Callback):
    """A bar that moves with every batch, showing images/s and the running loss.

    Uses ``tqdm`` when it is installed (the ``progress`` extra); otherwise
    prints a line every ``interval`` seconds.

    Parameters
    ----------
    interval : float, default=2.0
        Seconds between plain-text lines without tqdm.
    file : file-like, default=sys.stderr
    name : str, default="DIM"

    Examples
    --------
    >>> import io, torch
    >>> from skdim.nn.callbacks import ProgressBar
    >>> from skdim.nn.trainer import DIMTrainer
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> out = io.StringIO()
    >>> _ = trainer.fit([torch.randn(8, 1, 8, 8)] * 2, epochs=1, callbacks=[ProgressBar(file=out)])
    >>> "DIM epoch 1/1" in out.getvalue()
    True
    """

    def __init__(self, interval: float = 2.0, file=None, name: str = "DIM") -> None:
        self.interval, self.file, self.name = interval, file, name

    def on_epoch_begin(self, trainer) -> None:
        self._start = self._last = time.perf_counter()
        self._images, self._loss, self._batches = 0, math.nan, 0
        desc = f"{self.name} epoch {trainer.epoch + 1}/{trainer.target_epoch}"
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._bar, self._desc = None, desc
            return
        self._bar = tqdm(total=trainer.batches_per_epoch, desc=desc, unit="batch",
                         file=self.file or sys.stderr, leave=True)

    def on_batch_end(self, trainer, logs: dict) -> None:
        now = time.perf_counter()
        self._images += logs["batch_size"]
        self._batches += 1
        due = now - self._last >= (0.5 if self._bar is not None else self.interval)
        if not due and self._batches > 1:
            if self._bar is not None:
                self._bar.update(1)
            return
        self._last = now
        loss = float(logs["loss"])  # one GPU synchronisation per refresh
        self._loss = loss if math.isnan(self._loss) else 0.9 * self._loss + 0.1 * loss
        rate = self._images / max(now - self._start, 1e-9)
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss={self._loss:.4g}, {rate:.0f} img/s", refresh=False)
            self._bar.update(1)
        else:
            total = trainer.batches_per_epoch or "?"
            print(f"{self._desc} batch {self._batches}/{total}  loss {self._loss:.4g}  "
                  f"{rate:.0f} img/s", file=self.file or sys.stderr, flush=True)

    def on_epoch_end(self, trainer, logs: dict) -> None:
        if self._bar is not None:
            rate = self._images / max(time.perf_counter() - self._start, 1e-9)
            self._bar.set_postfix_str(f"loss={logs['loss']:.4g}, {rate:.0f} img/s", refresh=True)
            self._bar.close()
            self._bar = None

    def on_fit_end(self, trainer) -> None:
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.close()
            self._bar = None


class TimeLimit(Callback):
    """Stop training once ``seconds`` of wall time have passed since ``on_fit_begin``.

    Checked after every batch, so training ends within one step of the
    limit; the last epoch is then shorter (``"stopped": True`` in its
    history entry) and the model is as usable, and checkpointable, as after
    any epoch. Every fit trains at least one step, however small the limit:
    a fit that stopped before its first step would return untrained weights.

    Parameters
    ----------
    seconds : float
    clock : callable, default=time.monotonic

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.callbacks import TimeLimit
    >>> from skdim.nn.trainer import DIMTrainer
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> ticks = iter(range(100))  # a fake clock: one second per call
    >>> limit = TimeLimit(2.5, clock=lambda: float(next(ticks)))
    >>> _ = trainer.fit([torch.randn(8, 1, 8, 8)] * 5, epochs=10, callbacks=[limit])
    >>> trainer.epoch, trainer.step, trainer.history[-1]["stopped"]
    (1, 3, True)
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0; got {seconds!r}.")
        self.seconds, self.clock = float(seconds), clock

    def on_fit_begin(self, trainer) -> None:
        self._deadline = self.clock() + self.seconds
        self._first_step = trainer.step

    def progress(self) -> float:
        """Fraction of the limit used in the current fit (0 before it starts).

        A learning-rate schedule (:mod:`skdim.nn.schedules`) uses it as its
        horizon.
        """
        deadline = getattr(self, "_deadline", None)
        if deadline is None:
            return 0.0
        return 1.0 - (deadline - self.clock()) / self.seconds

    def _check(self, trainer) -> None:
        # Under torch.distributed all processes stop together, at the first
        # one whose clock ran out.
        if trainer.step > self._first_step and max_over_ranks(self.progress()) >= 1.0:
            trainer.stop_training = True

    def on_epoch_begin(self, trainer) -> None:
        self._check(trainer)

    def on_batch_end(self, trainer, logs: dict) -> None:
        self._check(trainer)


class Checkpoint(Callback):
    """Write the trainer's state to ``directory`` after every epoch (atomically).

    The file holds ``{"format": FORMAT_VERSION, "trainer": trainer.state_dict(),
    **extra()}`` (see :mod:`skdim.nn.checkpoint`). Resume with
    ``trainer.load_state_dict(read_checkpoint(directory)["trainer"])``.

    Parameters
    ----------
    directory : str or path-like
    extra : callable, default=None
        Returns more entries to store (plain values and tensors).
    lock : bool, default=True
        Hold :func:`~skdim.nn.checkpoint.directory_lock` during the fit (and
        remove orphaned temporary files). Pass False when the caller holds it.

    Examples
    --------
    >>> import tempfile, torch
    >>> from skdim.nn.callbacks import Checkpoint
    >>> from skdim.nn.checkpoint import read_checkpoint
    >>> from skdim.nn.trainer import DIMTrainer
    >>> folder = tempfile.mkdtemp()
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> _ = trainer.fit([torch.randn(8, 1, 8, 8)], epochs=2, callbacks=[Checkpoint(folder)])
    >>> resumed = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> resumed.load_state_dict(read_checkpoint(folder)["trainer"])
    >>> resumed.epoch
    2
    """

    def __init__(self, directory, extra: Callable[[], dict] | None = None, lock: bool = True) -> None:
        self.directory, self.extra, self.lock = directory, extra, lock
        self._held = None

    def on_fit_begin(self, trainer) -> None:
        if self.lock:
            self._held = directory_lock(self.directory)
            self._held.__enter__()
            remove_orphans(self.directory)

    def on_epoch_end(self, trainer, logs: dict) -> None:
        state = {"format": FORMAT_VERSION, "trainer": trainer.state_dict()}
        if self.extra is not None:
            state.update(self.extra())
        write_checkpoint(self.directory, state)

    def on_fit_end(self, trainer) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)


class RollbackOnError(Callback):
    """After a failed epoch, put the trainer back to the state it began with.

    A divergence, a bad batch or Ctrl-C in the middle of an epoch leaves
    weights changed by part of it; this callback restores the state of the
    epoch's start, so the trainer always matches its ``epoch`` count and
    ``history``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.callbacks import RollbackOnError
    >>> from skdim.nn.trainer import DIMTrainer, DivergenceError
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> bad = torch.full((8, 1, 8, 8), float("nan"))
    >>> try:
    ...     trainer.fit([torch.randn(8, 1, 8, 8), bad], epochs=1, callbacks=[RollbackOnError()])
    ... except DivergenceError:
    ...     pass
    >>> trainer.step  # the good step of the failed epoch was rolled back too
    0
    """

    def on_epoch_begin(self, trainer) -> None:
        self._state = copy.deepcopy(trainer.state_dict())

    def on_fit_end(self, trainer) -> None:
        state = getattr(self, "_state", None)
        if trainer.error is not None and state is not None:
            trainer.load_state_dict(state)
        self._state = None


class WarnOnExplodingLoss(Callback):
    """Warn when an epoch's mean term is enormous although finite.

    A learning rate far too high can drive the critic's scores and the
    codes to 1e10 and beyond without ever producing NaN; such a run learns
    nothing. A healthy DIM term stays within a few hundred nats.

    Parameters
    ----------
    threshold : float, default=1e4
        Largest acceptable magnitude of an epoch's mean term.
    category : type, default=RuntimeWarning
        Warning class (the estimator uses scikit-learn's ``ConvergenceWarning``).

    Examples
    --------
    >>> import warnings
    >>> from skdim.nn.callbacks import WarnOnExplodingLoss
    >>> from skdim.nn.trainer import DIMTrainer
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     WarnOnExplodingLoss().on_epoch_end(trainer, {"epoch": 1, "loss": 3e11})
    >>> "Lower the learning_rate" in str(caught[0].message)
    True
    """

    def __init__(self, threshold: float = 1e4, category: type = RuntimeWarning) -> None:
        self.threshold, self.category = float(threshold), category

    def on_epoch_end(self, trainer, logs: dict) -> None:
        big = {k: v for k, v in _numbers(logs).items() if abs(float(v)) > self.threshold}
        if big:
            detail = ", ".join(f"{k}={v:.3g}" for k, v in big.items())
            warnings.warn(
                f"Training is unstable: in epoch {logs['epoch']} the {detail} term(s) exceeded "
                f"{self.threshold:g} in magnitude. Lower the learning_rate (now "
                f"{trainer.learning_rate:g}).", self.category, stacklevel=2,
            )
