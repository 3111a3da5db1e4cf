"""Learning-rate schedules over a training horizon: warm-up, then a cosine to zero.

Deep InfoMax's release trains at a constant Adam rate. A cosine that anneals
the rate to zero exactly when training ends (SGDR, Loshchilov & Hutter 2017,
without restarts) is what the contrastive peers use, and needs to know where
the end is. Here the end is the first of several horizons to run out: a
number of epochs, and any limits that can report how much of themselves is
used (a :class:`~skdim.nn.callbacks.TimeLimit` on wall or CPU time has a
``progress()``). The schedule then follows whichever budget actually stops
the run, so a fit cut by a time limit still ends at a small rate.

The factor is a pure function of the progress (:func:`cosine_factor`);
:class:`LearningRateSchedule` is the callback that applies it after every
step. Progress in epochs is computed from the trainer's counters, so a run
resumed from a checkpoint (``start_epoch=0``) follows the same rates as an
uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .callbacks import Callback
from .distributed import max_over_ranks

__all__ = ["LR_SCHEDULES", "WARMUP_FRACTION", "cosine_factor", "LearningRateSchedule"]

#: Names accepted by ``DeepInfoMax(learning_rate_schedule=...)``.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
# A short linear warm-up: Adam's second-moment estimates are noisy for the
# first steps, and the cosine starts at its largest rate.
WARMUP_FRACTION = 0.02


def cosine_factor(progress: float, warmup: float = WARMUP_FRACTION) -> float:
    """Multiplier of the base rate once ``progress`` (0 to 1) of training is done.

    Linear from 0.01 to 1 over the first ``warmup`` of training (never 0, so
    that the first step moves the weights), then
    ``(1 + cos(pi * t)) / 2`` over the rest, reaching 0 at ``progress = 1``.
    Progress outside ``[0, 1]`` is clipped.

    Parameters
    ----------
    progress : float
        Fraction of the horizon done.
    warmup : float, default=0.02
        Fraction of the horizon spent warming up, in ``[0, 1)``.

    Returns
    -------
    factor : float in [0, 1]

    Examples
    --------
    >>> from skdim.nn.schedules import cosine_factor
    >>> [round(cosine_factor(p, warmup=0.1), 3) for p in (0.0, 0.05, 0.1, 0.55, 1.0)]
    [0.01, 0.5, 1.0, 0.5, 0.0]
    """
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be in [0, 1); got {warmup!r}.")
    p = min(max(float(progress), 0.0), 1.0)
    if p < warmup:
        return max(p / warmup, 0.01)
    t = (p - warmup) / (1 - warmup)
    return 0.5 * (1 + math.cos(math.pi * t))


class LearningRateSchedule(Callback):
    """Anneal both optimizers' rates by :func:`cosine_factor` of the progress.

    The base rate is ``trainer.learning_rate``; after the fit the optimizers
    get it back, so a later fit (or ``state_dict``) starts from the base.

    Parameters
    ----------
    epochs : int, default=None
        Length of the run in epochs. Needs ``trainer.batches_per_epoch``
        (the batches have a length) for progress within an epoch; without
        one, progress moves at epoch ends only. None: no epoch horizon.
    start_epoch : int, default=None
        The epoch the run began at: 0 when resuming a run from its
        checkpoint, so the rates continue where it stopped; None takes the
        trainer's epoch at the start of this fit (a fresh or warm-started run).
    limits : sequence, default=()
        Other horizons: objects with a ``progress()`` method returning the
        fraction used (e.g. :class:`~skdim.nn.callbacks.TimeLimit`). Put
        them before this callback in the fit's list, so they start first.
    warmup : float, default=0.02
        Fraction of the horizon of linear warm-up.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.schedules import LearningRateSchedule
    >>> from skdim.nn.trainer import DIMTrainer
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8, learning_rate=1e-3)
    >>> schedule = LearningRateSchedule(epochs=2)
    >>> _ = trainer.fit([torch.randn(8, 1, 8, 8)] * 4, epochs=2, callbacks=[schedule])
    >>> [round(r / 1e-3, 2) for r in schedule.rates]  # 8 steps, as fractions of the base
    [0.01, 0.97, 0.87, 0.71, 0.52, 0.32, 0.15, 0.04]
    >>> trainer.optimizer.param_groups[0]["lr"]  # the base again
    0.001
    """

    def __init__(self, epochs: int | None = None, *, start_epoch: int | None = None,
                 limits: Sequence = (), warmup: float = WARMUP_FRACTION) -> None:
        if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1):
            raise ValueError(f"epochs must be an int >= 1 or None; got {epochs!r}.")
        if epochs is None and not limits:
            raise ValueError("A schedule needs a horizon: epochs, or limits with progress().")
        cosine_factor(0.0, warmup)  # validates warmup
        self.epochs = None if epochs is None else int(epochs)
        self.start_epoch = start_epoch
        self.limits = list(limits)
        self.warmup = float(warmup)
        #: The rate each step of the last fit used, in order.
        self.rates: list[float] = []
        self._rate = 0.0

    def progress(self, trainer, within_epoch: bool = True) -> float:
        """Fraction of the run done: the largest of the horizons' fractions."""
        done = 0.0
        if self.epochs is not None:
            epochs = trainer.epoch - self._origin
            per_epoch = trainer.batches_per_epoch
            if within_epoch and per_epoch:
                epochs += trainer.epoch_step / per_epoch
            done = epochs / self.epochs
        if self.limits:
            # Clocks differ between processes: all use the furthest one.
            done = max(done, max_over_ranks(max(float(limit.progress()) for limit in self.limits)))
        return done

    def _apply(self, trainer, factor: float) -> float:
        rate = trainer.learning_rate * factor
        for optimizer in (trainer.optimizer, trainer.d_optimizer):
            for group in optimizer.param_groups if optimizer is not None else ():
                group["lr"] = rate
        return rate

    def on_fit_begin(self, trainer) -> None:
        self._origin = trainer.epoch if self.start_epoch is None else int(self.start_epoch)
        self.rates = []
        self._rate = self._apply(trainer, cosine_factor(self.progress(trainer, False), self.warmup))

    def on_batch_end(self, trainer, logs: dict) -> None:
        self.rates.append(self._rate)
        self._rate = self._apply(trainer, cosine_factor(self.progress(trainer), self.warmup))

    def on_fit_end(self, trainer) -> None:
        self._apply(trainer, 1.0)
