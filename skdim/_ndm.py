"""NDM internals: per-column shuffling, the discriminator and the held-out KL.

The Neural Dependency Measure (Hjelm et al. 2019, section 4.1 and appendix
A.6) is ``KL(P_Z || prod_k P_{Z_k})``, the total correlation of the code: a
discriminator tells codes from codes whose every dimension was shuffled
independently across the batch (a sample of the product of the marginals),
and the KL is read off with the Donsker-Varadhan bound. The all-pairs trick
of MINE has no analogue here (a negative is a recombination of ``d`` rows,
not a pair), so each training batch gets fresh shuffles and the held-out
partition term averages over several independent shuffles of the held-out
rows.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ._mine import BatchStream, BestCheckpoint, make_optimizer, mlp, optimizer_step
from .nn.bounds import MineMovingAverage, dv_mi, jsd_mi

NDM_BOUNDS: tuple[str, ...] = ("dv", "jsd")


def shuffle_columns(z: Tensor, generator: torch.Generator) -> Tensor:
    """Permute each column of ``z`` with its own random permutation.

    Every column keeps exactly its values (its marginal); the dependence
    between columns is destroyed. A shuffle that moves whole rows together
    (the same permutation in every column, which would leave the joint
    distribution intact) cannot happen: when a column draws the permutation of
    column 0, it is rotated by one position, which changes it whenever
    ``n >= 2``. That only alters draws of probability ``1/n!``.

    Parameters
    ----------
    z : Tensor of shape (n, d)
    generator : torch.Generator
        Source of the permutations (CPU).

    Returns
    -------
    Tensor of shape (n, d)
        ``out[i, k] = z[perm_k[i], k]``.
    """
    n, d = z.shape
    perms = torch.rand(n, d, generator=generator).argsort(dim=0)
    if n >= 2 and d >= 2:
        same = (perms[:, 1:] == perms[:, :1]).all(dim=0)
        if bool(same.any()):
            cols = torch.nonzero(same).flatten() + 1
            perms[:, cols] = perms[:, cols].roll(1, dims=0)
    return torch.gather(z, 0, perms.to(z.device))


class NDMDiscriminator(nn.Module):
    """MLP ``d -> hidden -> 1`` (official sizes ``(1000, 200)``), one logit per row."""

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (1000, 200)) -> None:
        super().__init__()
        self.net = mlp(n_features, hidden, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)


def train_discriminator(
    disc: NDMDiscriminator,
    z: Tensor,
    *,
    bound: str,
    n_steps: int,
    batch_size: int,
    learning_rate: float,
    ema_rate: float,
    generator: torch.Generator,
    validate: Callable[[], float] | None = None,
    verbose: int = 0,
) -> None:
    """Train on batches of rows against a fresh per-column shuffle of each batch.

    ``"dv"`` maximises DV with MINE's moving-average gradient correction;
    ``"jsd"`` trains a plain binary discriminator (Jensen-Shannon objective),
    whose logit also converges to the log density ratio. With ``validate``,
    the weights that scored best on it are kept.
    """
    disc.train()
    best = BestCheckpoint(disc, validate, n_steps, "NDM", verbose)
    opt, sched = make_optimizer(disc, learning_rate, n_steps)
    ema = MineMovingAverage(ema_rate)
    stream = BatchStream(z.shape[0], batch_size, generator)
    for step in range(n_steps):
        batch = z[stream.next().to(z.device)]
        logits = disc(torch.cat([batch, shuffle_columns(batch, generator)]))
        pos, neg = logits[: batch.shape[0]].unsqueeze(0), logits[batch.shape[0] :].unsqueeze(0)
        loss = ema.loss(pos, neg) if bound == "dv" else -jsd_mi(pos, neg)
        optimizer_step(loss, opt, sched, best, "NDM", step, n_steps, verbose)
    best.restore()


@torch.no_grad()
def held_out_kl(
    disc: NDMDiscriminator, z: Tensor, n_shuffles: int, generator: torch.Generator
) -> float:
    """DV estimate of the KL on held-out rows, ``n_shuffles`` shuffles for the partition term."""
    disc.eval()
    pos = disc(z).double()
    neg = torch.cat([disc(shuffle_columns(z, generator)).double() for _ in range(n_shuffles)])
    return float(dv_mi(pos.unsqueeze(0), neg.unsqueeze(0)))

