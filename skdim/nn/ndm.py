"""NDM: per-column shuffling, the discriminator and the held-out KL.

The Neural Dependency Measure (Hjelm et al. 2019, section 4.1 and appendix
A.6) is ``KL(P_Z || prod_k P_{Z_k})``, the total correlation of the code: a
discriminator tells codes from codes whose every dimension was shuffled
independently across the batch (a sample of the product of the marginals),
and the KL is read off with the Donsker-Varadhan bound. The all-pairs trick
of MINE has no analogue here (a negative is a recombination of ``d`` rows,
not a pair), so each training batch gets fresh shuffles and the held-out
partition term averages over several independent shuffles of the held-out
rows.

This module works on tensors only;
:func:`skdim.metrics.neural_dependency_measure` validates and standardises
arrays and calls it.

Examples
--------
>>> import torch
>>> from skdim.nn.ndm import NDMDiscriminator, held_out_kl, train_discriminator
>>> from skdim.nn.seeding import build_seeded
>>> g = torch.Generator().manual_seed(0)
>>> a = torch.randn(4000, 1, generator=g)
>>> z = torch.cat([a, a + torch.randn(4000, 1, generator=g)], dim=1)  # TC = 0.35 nats
>>> disc = build_seeded(0, lambda: NDMDiscriminator(2, (64, 32)))
>>> train_discriminator(disc, z[:3000], n_steps=200, batch_size=256, generator=g)
200
>>> tc, se = held_out_kl(disc, z[3000:], n_shuffles=10, generator=g, return_std=True)
>>> bool(0.2 < tc < 0.5), bool(0 < se < 0.1)
(True, True)
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .bounds import MineMovingAverage, dv_mi
from .critic_training import EarlyStopping, critic_loss, make_optimizer, optimizer_step
from .mine import mlp
from .sampling import BatchStream

__all__ = [
    "NDM_BOUNDS",
    "column_permutations",
    "shuffle_columns",
    "NDMDiscriminator",
    "train_discriminator",
    "held_out_kl",
]

NDM_BOUNDS: tuple[str, ...] = ("dv", "jsd")


def column_permutations(n: int, d: int, generator: torch.Generator) -> Tensor:
    """One random permutation of ``range(n)`` per column, none equal to column 0's.

    A shuffle that moves whole rows together (the same permutation in every
    column, which would leave the joint distribution intact) cannot happen:
    when a column draws the permutation of column 0, it is rotated by one
    position, which changes it whenever ``n >= 2``. That only alters draws of
    probability ``1/n!``.

    Parameters
    ----------
    n, d : int
        Rows and columns.
    generator : torch.Generator
        Source of the permutations (CPU).

    Returns
    -------
    Tensor of shape (n, d), dtype int64
        Column ``k`` is a permutation of ``range(n)``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.ndm import column_permutations
    >>> perms = column_permutations(4, 3, torch.Generator().manual_seed(0))
    >>> [sorted(perms[:, k].tolist()) for k in range(3)]
    [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    """
    perms = torch.rand(n, d, generator=generator).argsort(dim=0)
    if n >= 2 and d >= 2:
        same = (perms[:, 1:] == perms[:, :1]).all(dim=0)
        if bool(same.any()):
            cols = torch.nonzero(same).flatten() + 1
            perms[:, cols] = perms[:, cols].roll(1, dims=0)
    return perms


def shuffle_columns(z: Tensor, generator: torch.Generator) -> Tensor:
    """Permute each column of ``z`` with its own random permutation.

    Every column keeps exactly its values (its marginal); the dependence
    between columns is destroyed. Whole rows are never moved together (see
    :func:`column_permutations`).

    Parameters
    ----------
    z : Tensor of shape (n, d)
    generator : torch.Generator
        Source of the permutations (CPU).

    Returns
    -------
    Tensor of shape (n, d)
        ``out[i, k] = z[perm_k[i], k]``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.ndm import shuffle_columns
    >>> z = torch.tensor([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    >>> out = shuffle_columns(z, torch.Generator().manual_seed(0))
    >>> out[:, 0].sort().values.tolist(), out[:, 1].sort().values.tolist()
    ([0.0, 1.0, 2.0], [10.0, 11.0, 12.0])
    """
    perms = column_permutations(z.shape[0], z.shape[1], generator)
    return torch.gather(z, 0, perms.to(z.device))


class NDMDiscriminator(nn.Module):
    """MLP ``d -> hidden -> 1`` (official sizes ``(1000, 200)``), one logit per row.

    Parameters
    ----------
    n_features : int
    hidden : tuple of int, default=(1000, 200)

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.ndm import NDMDiscriminator
    >>> NDMDiscriminator(4, (16,))(torch.zeros(3, 4)).shape
    torch.Size([3])
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (1000, 200)) -> None:
        super().__init__()
        self.net = mlp(n_features, hidden, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)


def train_discriminator(
    disc: NDMDiscriminator,
    z: Tensor,
    *,
    bound: str = "dv",
    n_steps: int = 300,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    ema_rate: float = 0.01,
    generator: torch.Generator | None = None,
    validate: Callable[[], float] | None = None,
    patience: int | None = 5,
    n_checks: int = 20,
    verbose: int = 0,
) -> int:
    """Train on batches of rows against a fresh per-column shuffle of each batch.

    ``"dv"`` maximises DV with MINE's moving-average gradient correction;
    ``"jsd"`` trains a plain binary discriminator (Jensen-Shannon objective),
    whose logit also converges to the log density ratio. With ``validate``,
    training stops early and the best weights are kept
    (:class:`~skdim.nn.critic_training.EarlyStopping`).

    Parameters
    ----------
    disc : NDMDiscriminator
    z : Tensor of shape (n, d)
        Training rows.
    bound : {"dv", "jsd"}, default="dv"
    n_steps : int, default=300
        Maximum number of steps; the learning rate decays to 0 over them.
    batch_size : int, default=256
        At most ``n``.
    learning_rate : float, default=1e-3
    ema_rate : float, default=0.01
    generator : torch.Generator, default=None
        Draws the batches and the shuffles (CPU); ``None`` uses torch's
        global generator.
    validate : callable, default=None
        ``validate() -> float`` for early stopping.
    patience, n_checks : see :class:`~skdim.nn.critic_training.EarlyStopping`
    verbose : int, default=0

    Returns
    -------
    n_steps_run : int
        Steps actually taken.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.ndm import NDMDiscriminator, train_discriminator
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(300, 3, generator=g)
    >>> train_discriminator(NDMDiscriminator(3, (16,)), z, n_steps=5, batch_size=64, generator=g)
    5
    """
    if bound not in NDM_BOUNDS:
        raise ValueError(f"bound must be one of {NDM_BOUNDS}; got {bound!r}.")
    disc.train()
    stopper = EarlyStopping(disc, validate, n_steps, "NDM", verbose, n_checks, patience)
    opt, sched = make_optimizer(disc, learning_rate, n_steps)
    ema = MineMovingAverage(ema_rate)
    stream = BatchStream(z.shape[0], batch_size, generator)
    step = -1
    for step in range(n_steps):
        batch = z[stream.next().to(z.device)]
        logits = disc(torch.cat([batch, shuffle_columns(batch, generator)]))
        pos, neg = logits[: batch.shape[0]].unsqueeze(0), logits[batch.shape[0] :].unsqueeze(0)
        loss = critic_loss(bound, pos, neg, ema)
        optimizer_step(loss, opt, sched, "NDM", step, n_steps, verbose)
        if stopper.update(step):
            break
    stopper.restore()
    disc.eval()
    return step + 1


@torch.no_grad()
def held_out_kl(
    disc: NDMDiscriminator,
    z: Tensor,
    n_shuffles: int,
    generator: torch.Generator,
    *,
    return_std: bool = False,
) -> float | tuple[float, float]:
    """DV estimate of the KL on held-out rows (and its standard error).

    The positives are the ``n`` rows of ``z``; the negatives are
    ``n_shuffles`` independent per-column shuffles of them (``n * n_shuffles``
    rows). The estimate is ``mean(u(z_i)) - log mean(exp u(shuffled))``
    (:func:`~skdim.nn.bounds.dv_mi`).

    The standard error is first-order (delta method, Hoeffding projection)
    over the held-out rows for the trained discriminator: row ``k`` enters
    once as a positive and, through each of its ``d`` values, in
    ``n_shuffles`` shuffled rows per column; its influence is
    ``psi_k = (u(z_k) - mean) - (h_k - mean h)``, where ``h_k`` sums, over its
    ``d`` values, the mean of ``exp u`` of the shuffled rows that hold the
    value, relative to the overall mean. The standard error is
    ``sqrt(var(psi) / n + var_shuffle)``, where the part of ``var(psi)`` due
    to estimating each of those means from only ``n_shuffles`` shuffled rows
    is removed, and ``var_shuffle``, the noise of the shuffles themselves, is
    the variance of the mean relative weight between shuffles divided by
    ``n_shuffles``. With ``n_shuffles=1`` neither can be measured and the
    error is an overestimate.

    Parameters
    ----------
    disc : NDMDiscriminator
    z : Tensor of shape (n, d)
        Held-out rows.
    n_shuffles : int
    generator : torch.Generator
        Draws the shuffles (CPU).
    return_std : bool, default=False
        Also return the standard error.

    Returns
    -------
    estimate : float
        In nats.
    std_error : float
        Only with ``return_std=True``, in nats.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.ndm import NDMDiscriminator, held_out_kl
    >>> disc = NDMDiscriminator(3, (8,))
    >>> z = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    >>> g = torch.Generator().manual_seed(1)
    >>> kl, se = held_out_kl(disc, z, n_shuffles=5, generator=g, return_std=True)
    >>> abs(kl) < 0.1, se >= 0  # an untrained critic sees no dependence
    (True, True)
    """
    was_training = disc.training
    disc.eval()
    n, d = z.shape
    pos = disc(z).double()
    negs, perms = [], []
    for _ in range(n_shuffles):
        perm = column_permutations(n, d, generator).to(z.device)
        perms.append(perm)
        negs.append(disc(torch.gather(z, 0, perm)).double())
    disc.train(was_training)
    neg = torch.cat(negs)
    estimate = float(dv_mi(pos.unsqueeze(0), neg.unsqueeze(0)))
    if not return_std:
        return estimate
    # Weight of each shuffled row relative to the mean of exp u; value (k, c)
    # of the held-out rows is credited with the weights of the n_shuffles
    # shuffled rows that hold it.
    weight = torch.exp(neg - torch.logsumexp(neg, dim=0) + math.log(neg.numel()))
    total = torch.zeros(n, d, dtype=pos.dtype, device=pos.device)
    total_sq = torch.zeros_like(total)
    for k, perm in enumerate(perms):
        w = weight[k * n : (k + 1) * n].unsqueeze(1).expand(n, d)
        total.scatter_add_(0, perm, w)
        total_sq.scatter_add_(0, perm, w.square())
    mean_w = total / n_shuffles
    psi = pos - mean_w.sum(dim=1)
    variance = float((psi - psi.mean()).square().sum()) / (n - 1)
    if n_shuffles > 1:
        # mean_w estimates each conditional mean from n_shuffles draws; remove
        # the variance that this sampling noise adds to psi.
        noise = (total_sq / n_shuffles - mean_w.square()).sum(dim=1) / (n_shuffles - 1)
        variance = max(variance - float(noise.mean()), 0.0)
    # Second order: the randomness of the shuffles themselves, seen in how
    # much the mean weight differs from one shuffle to the next (the
    # variance of all n * n_shuffles weights when there is one shuffle).
    if n_shuffles > 1:
        second = float(weight.reshape(n_shuffles, n).mean(dim=1).var()) / n_shuffles
    else:
        second = float(weight.var()) / n
    return estimate, math.sqrt(variance / n + second)
