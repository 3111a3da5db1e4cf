"""MINE: the statistics network, its training and the held-out bound.

The statistics network scores a pair ``(x, z)`` as

    T(x, z) = <f(x), g(z)> + a(x) + b(z)

where ``[f, a]`` and ``[g, b]`` are the outputs of two small networks, one
per variable (an MLP, or a few convolutions and an MLP when ``x`` holds
images). The pair enters only through the first, bilinear layer of the joint
score, so the scores of *all* ``B x B`` pairs of a batch are one matrix
product: every positive pair ``(x_i, z_i)`` is contrasted with all
``B (B - 1)`` negatives ``(x_i, z_j)``, for DV and infoNCE alike. A joint head
with a non-linearity after a broadcast add ``relu(W_x x + W_z z)`` costs
``B^2 * units`` memory traffic per layer instead; measured on two CPU cores it
was about 30 times slower for the same accuracy on correlated Gaussians. The
bilinear form is exact for them (the log density ratio is a quadratic form),
and with the MLP embeddings it approximates any continuous log ratio.

The bounds themselves are those of DIM training, :mod:`skdim.nn.bounds`.
This module works on tensors only; :func:`skdim.metrics.mine_mutual_information`
validates and standardises arrays and calls it.

Examples
--------
>>> import torch
>>> from skdim.nn.mine import StatisticsNetwork, held_out_bound, make_branch
>>> from skdim.nn.mine import train_statistics_network
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(2000, 2, generator=g)
>>> z = 0.8 * x + 0.6 * torch.randn(2000, 2, generator=g)  # I(X; Z) = 1.02 nats
>>> from skdim.nn.seeding import build_seeded
>>> net = build_seeded(0, lambda: StatisticsNetwork(make_branch(2, (64,), 16),
...                                                 make_branch(2, (64,), 16)))
>>> steps = train_statistics_network(net, x[:1400], z[:1400], bound="infonce",
...                                  n_steps=200, batch_size=256, generator=g)
>>> mi, se = held_out_bound(net, x[1400:], z[1400:], "infonce", return_std=True)
>>> bool(0.7 < mi < 1.2), bool(0 < se < 0.1)
(True, True)
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
import torch
from torch import Tensor, nn

from .bounds import MineMovingAverage, dv_mi, infonce_mi, split_pair_scores
from .critic_training import (EarlyStopping, critic_loss, make_optimizer, optimizer_step,
                              std_error)
from .sampling import BatchStream
from .seeding import seeded_generator

__all__ = [
    "MINE_BOUNDS",
    "EVAL_BLOCK",
    "mlp",
    "ConvFeatures",
    "make_branch",
    "pair_scores",
    "StatisticsNetwork",
    "train_statistics_network",
    "held_out_bound",
]

MINE_BOUNDS: tuple[str, ...] = ("dv", "jsd", "infonce")
# Rows per block of negatives in held_out_bound: every held-out row is
# contrasted with the other rows of its block, so scoring n rows costs
# n * EVAL_BLOCK pair scores and EVAL_BLOCK**2 memory, never n**2.
EVAL_BLOCK = 1024

RowGetter = Callable[[np.ndarray], Tensor]
Rows = Union[Tensor, RowGetter]


# ----------------------------------------------------------------- networks
def mlp(in_features: int, hidden: tuple[int, ...], out_features: int) -> nn.Sequential:
    """``Linear -> GELU`` per hidden size, then a linear output.

    GELU rather than ReLU: the log density ratios these critics fit are
    smooth (quadratic for Gaussians), and on the accuracy cases of the tests
    GELU critics came within 3-5% of the truth where ReLU critics of equal
    size and steps stayed 6-8% short and over-fitted more.

    Parameters
    ----------
    in_features, out_features : int
    hidden : tuple of int
        Hidden layer sizes (may be empty: one linear layer).

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> from skdim.nn.mine import mlp
    >>> mlp(3, (8, 4), 1)
    Sequential(
      (0): Linear(in_features=3, out_features=8, bias=True)
      (1): GELU(approximate='none')
      (2): Linear(in_features=8, out_features=4, bias=True)
      (3): GELU(approximate='none')
      (4): Linear(in_features=4, out_features=1, bias=True)
    )
    """
    layers: list[nn.Module] = []
    for units in hidden:
        layers += [nn.Linear(in_features, units), nn.GELU()]
        in_features = units
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class ConvFeatures(nn.Module):
    """Small convolutional branch for image inputs.

    Images larger than 8x8 are first reduced by stride-2 4x4 convolutions
    until the map is at most 8x8 (32x32: two of them); then a 3x3
    convolution and at most one more stride-2 4x4 convolution bring it to at
    most 4x4. All layers have ``channels`` channels and GELU; the map is
    flattened. Tiny images (8x8 digits) keep their resolution in the first
    layer; a 32x32 image costs about 0.7 M multiply-adds with the default 16
    channels.

    Parameters
    ----------
    in_channels : int
    spatial : tuple of int
        ``(height, width)`` of the images.
    channels : int, default=16
        Channels of every convolution.

    Attributes
    ----------
    out_features : int
        Length of the flattened output.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.mine import ConvFeatures
    >>> conv = ConvFeatures(3, (32, 32))
    >>> conv(torch.zeros(5, 3, 32, 32)).shape, conv.out_features
    (torch.Size([5, 256]), 256)
    >>> ConvFeatures(1, (8, 8)).out_features  # 8x8 -> 4x4
    256
    """

    def __init__(self, in_channels: int, spatial: tuple[int, int], channels: int = 16) -> None:
        super().__init__()
        h, w = (int(s) for s in spatial)
        layers: list[nn.Module] = []
        c = int(in_channels)
        while min(h, w) > 8:
            layers += [nn.Conv2d(c, channels, 4, stride=2, padding=1), nn.GELU()]
            c, h, w = channels, h // 2, w // 2
        layers += [nn.Conv2d(c, channels, 3, padding=1), nn.GELU()]
        if min(h, w) > 4:
            layers += [nn.Conv2d(channels, channels, 4, stride=2, padding=1), nn.GELU()]
            h, w = h // 2, w // 2
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = channels * h * w

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_branch(
    in_features: int,
    hidden: tuple[int, ...],
    embedding_dim: int,
    *,
    image: tuple[int, tuple[int, int]] | None = None,
) -> nn.Module:
    """One side of the statistics network: input -> ``embedding_dim + 1`` outputs.

    Parameters
    ----------
    in_features : int
        Length of a vector input (ignored with ``image``).
    hidden : tuple of int
        Hidden layers of the MLP.
    embedding_dim : int
        Size of the embedding whose inner product scores a pair; one more
        output is the additive term ``a(x)`` (or ``b(z)``).
    image : (in_channels, (height, width)), default=None
        Inputs are images ``(n, C, H, W)``: a :class:`ConvFeatures` branch
        precedes the MLP.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.mine import make_branch
    >>> make_branch(5, (32,), 8)(torch.zeros(4, 5)).shape
    torch.Size([4, 9])
    >>> make_branch(0, (32,), 8, image=(1, (8, 8)))(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4, 9])
    """
    if image is not None:
        in_channels, spatial = image
        conv = ConvFeatures(in_channels, spatial)
        return nn.Sequential(conv, mlp(conv.out_features, hidden, embedding_dim + 1))
    return mlp(in_features, hidden, embedding_dim + 1)


def pair_scores(ex: Tensor, ez: Tensor) -> Tensor:
    """``T(x_i, z_j)`` for all pairs: ``(n_x, n_z)`` from embeddings ``(n, k + 1)``.

    The last column of each embedding is the additive term ``a(x)`` or
    ``b(z)``; DV is not invariant to such terms (infoNCE is to ``a(x)``), and
    the Gaussian log ratio needs them.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.mine import pair_scores
    >>> ex = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    >>> ez = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 1.0]])
    >>> pair_scores(ex, ez)
    tensor([[2.5000, 1.5000],
            [0.0000, 4.0000]])
    """
    return ex[:, :-1] @ ez[:, :-1].T + ex[:, -1:] + ez[:, -1].unsqueeze(0)


def _paired_scores(ex: Tensor, ez: Tensor) -> Tensor:
    """``T(x_i, z_i)`` row by row: the diagonal of :func:`pair_scores`, in O(n)."""
    return (ex[:, :-1] * ez[:, :-1]).sum(dim=1) + ex[:, -1] + ez[:, -1]


class StatisticsNetwork(nn.Module):
    """``T(x, z) = <f(x), g(z)> + a(x) + b(z)``, all pairs in one matmul.

    Parameters
    ----------
    x_branch, z_branch : torch.nn.Module
        Map a batch of ``x`` (``z``) to ``(n, k + 1)``: the embedding ``f(x)``
        and the additive term ``a(x)`` (see :func:`make_branch`).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.mine import StatisticsNetwork, make_branch
    >>> net = StatisticsNetwork(make_branch(3, (16,), 4), make_branch(2, (16,), 4))
    >>> net(torch.zeros(5, 3), torch.zeros(7, 2)).shape  # all 5 x 7 pairs
    torch.Size([5, 7])
    """

    def __init__(self, x_branch: nn.Module, z_branch: nn.Module) -> None:
        super().__init__()
        self.x_branch = x_branch
        self.z_branch = z_branch

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return pair_scores(self.x_branch(x), self.z_branch(z))


# ------------------------------------------------------------ training loop
def _row_getter(x: Rows) -> RowGetter:
    """A callable ``rows (ndarray) -> Tensor`` from a tensor or such a callable."""
    if callable(x) and not isinstance(x, Tensor):
        return x
    return lambda idx: x[torch.as_tensor(idx, device=x.device)]


# --------------------------------------------------------------------- MINE
def train_statistics_network(
    net: StatisticsNetwork,
    x: Rows,
    z: Tensor,
    *,
    bound: str = "dv",
    n_steps: int = 500,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    ema_rate: float = 0.01,
    generator: torch.Generator | None = None,
    validate: Callable[[], float] | None = None,
    patience: int | None = 5,
    n_checks: int = 20,
    verbose: int = 0,
) -> int:
    """Maximise the chosen bound on mini-batches of the training rows.

    ``"dv"``: MINE's bias-corrected DV gradient (moving average of the
    partition term). ``"jsd"``: the Jensen-Shannon objective. ``"infonce"``:
    infoNCE. Every batch scores all of its pairs. With ``validate``, training
    stops early and the best weights are kept (see :class:`EarlyStopping`).

    Parameters
    ----------
    net : StatisticsNetwork
    x : Tensor or callable
        The training rows of ``x``, or ``rows (ndarray) -> Tensor`` returning
        them (e.g. images standardised batch by batch).
    z : Tensor of shape (n, d)
        The training rows of ``z``, on the network's device.
    bound : {"dv", "jsd", "infonce"}, default="dv"
    n_steps : int, default=500
        Maximum number of steps; the learning rate decays to 0 over them.
    batch_size : int, default=256
        At most the number of rows.
    learning_rate : float, default=1e-3
    ema_rate : float, default=0.01
        Rate of MINE's moving average (``"dv"``).
    generator : torch.Generator, default=None
        Draws the batches; ``None`` uses torch's global generator.
    validate : callable, default=None
        ``validate() -> float`` for early stopping.
    patience, n_checks : see :class:`EarlyStopping`
    verbose : int, default=0

    Returns
    -------
    n_steps_run : int
        Steps actually taken.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.mine import StatisticsNetwork, make_branch, train_statistics_network
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(300, 2, generator=g)
    >>> net = StatisticsNetwork(make_branch(2, (16,), 4), make_branch(2, (16,), 4))
    >>> train_statistics_network(net, x, x + 0.1, n_steps=5, batch_size=64, generator=g)
    5
    """
    if bound not in MINE_BOUNDS:
        raise ValueError(f"bound must be one of {MINE_BOUNDS}; got {bound!r}.")
    get_x = _row_getter(x)
    net.train()
    stopper = EarlyStopping(net, validate, n_steps, "MINE", verbose, n_checks, patience)
    opt, sched = make_optimizer(net, learning_rate, n_steps)
    ema = MineMovingAverage(ema_rate)
    stream = BatchStream(z.shape[0], batch_size, generator)
    step = -1
    for step in range(n_steps):
        idx = stream.next()
        pos, neg = split_pair_scores(net(get_x(idx.numpy()), z[idx.to(z.device)]))
        loss = critic_loss(bound, pos, neg, ema)
        optimizer_step(loss, opt, sched, "MINE", step, n_steps, verbose)
        if stopper.update(step):
            break
    stopper.restore()
    net.eval()
    return step + 1


def _blocks(n: int, block: int, seed: int) -> list[Tensor]:
    """Row groups of at most ``block`` rows: all rows, or a seeded random partition.

    The groups of a partition differ in size by at most one row.
    """
    n_blocks = -(-n // block)
    if n_blocks == 1:
        return [torch.arange(n)]
    order = torch.randperm(n, generator=seeded_generator(seed))
    return list(torch.tensor_split(order, n_blocks))


@torch.no_grad()
def held_out_bound(
    net: StatisticsNetwork,
    x: Rows,
    z: Tensor,
    bound: str = "dv",
    *,
    block: int = EVAL_BLOCK,
    seed: int = 0,
    return_std: bool = False,
) -> float | tuple[float, float]:
    """The bound on held-out rows (and its standard error), in O(n) memory.

    What is computed, for ``n`` held-out rows:

    * positives: ``T(x_i, z_i)`` for every row, computed row by row;
    * negatives: the rows are split into blocks of at most ``block`` rows
      (a random partition drawn from ``seed`` when ``n > block``; blocks
      differ in size by at most one row), and every pair ``(x_i, z_j)``,
      ``i != j``, of the same block is a negative. A held-out set of at most
      ``block`` rows is one block: every pair is used, and the estimate does
      not depend on ``seed``. Larger sets cost ``n * block`` pair scores and
      ``block**2`` memory.

    ``"infonce"`` is evaluated by infoNCE: each row is classified among the
    ``m`` rows of its block, so the value can never exceed ``log m`` (``log n``
    for one block). ``"dv"`` and ``"jsd"`` critics are evaluated by DV: the
    mean positive score minus the log of the mean of ``exp T`` over all
    negatives of all blocks. Both use :mod:`skdim.nn.bounds`.

    The standard error is the first-order (delta-method, Hoeffding
    projection) error of that estimate over the held-out rows, for the
    trained network: each row ``k`` enters as a positive pair, as the anchor
    of its negatives and as the item of the other anchors' negatives, and its
    influence is ``psi_k = (T_kk - mean) - (r_k - 1) - (c_k - 1)`` for DV
    (``r_k``, ``c_k``: the mean of ``exp T`` over row ``k``'s and column
    ``k``'s negatives, relative to the overall mean), and the analogue for
    infoNCE (the row's log-softmax term and its weight in the other rows'
    denominators). The standard error is ``std(psi) / sqrt(n)``; for DV the
    second-order term ``var(exp T / mean) / n_negatives`` is added (it
    matters when blocks limit the negatives and ``exp T`` is heavy-tailed).
    It measures the noise of the held-out sample, not that of training
    (seed, split).

    Parameters
    ----------
    net : StatisticsNetwork
    x : Tensor or callable
        The held-out rows of ``x``, or ``rows (ndarray) -> Tensor``.
    z : Tensor of shape (n, d)
        The held-out rows of ``z``; ``n >= 2``.
    bound : {"dv", "jsd", "infonce"}, default="dv"
    block : int, default=EVAL_BLOCK
        Rows per block of negatives.
    seed : int, default=0
        Seeds the partition into blocks (used only when ``n > block``).
    return_std : bool, default=False
        Also return the standard error (for DV this costs two more passes
        over each block's scores).

    Returns
    -------
    estimate : float
        In nats.
    std_error : float
        Only with ``return_std=True``, in nats.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.mine import StatisticsNetwork, held_out_bound, make_branch
    >>> net = StatisticsNetwork(make_branch(2, (8,), 4), make_branch(2, (8,), 4))
    >>> x = torch.randn(3000, 2, generator=torch.Generator().manual_seed(0))
    >>> mi, se = held_out_bound(net, x, x, "infonce", block=1000, return_std=True)
    >>> bool(mi <= torch.log(torch.tensor(1000.0))), se > 0  # blocks of 1,000 rows
    (True, True)
    >>> held_out_bound(net, x, x, "infonce", block=1000) == mi
    True
    """
    if bound not in MINE_BOUNDS:
        raise ValueError(f"bound must be one of {MINE_BOUNDS}; got {bound!r}.")
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"held_out_bound needs at least 2 rows; got {n}.")
    get_x = _row_getter(x)
    was_training = net.training
    net.eval()
    chunks = range(0, n, block)
    ex = torch.cat([net.x_branch(get_x(np.arange(s, min(s + block, n)))).double() for s in chunks])
    ez = torch.cat([net.z_branch(z[s : s + block]).double() for s in chunks])
    net.train(was_training)
    pos = _paired_scores(ex, ez)  # (n,)
    groups = _blocks(n, block, seed)

    if bound == "infonce":
        total, terms, weights = 0.0, torch.empty_like(pos), torch.empty_like(pos)
        for idx in groups:
            idx = idx.to(ex.device)
            m = idx.numel()
            s = pair_scores(ex[idx], ez[idx])
            p, neg = split_pair_scores(s)  # (m, 1) view of the diagonal, (m, m - 1) copy
            total += float(infonce_mi(p, neg)) * m
            # Per row: the log-softmax term; per column: its weight in the
            # denominators of the other rows (for the standard error).
            if return_std:
                log_den = torch.logaddexp(p[:, 0], torch.logsumexp(neg, dim=1))
                terms[idx] = p[:, 0] - log_den + math.log(m)
                del neg
                s.diagonal().fill_(-math.inf)
                weights[idx] = torch.exp(s - log_den[:, None]).sum(dim=0) * (m / (m - 1))
        if not return_std:
            return total / n
        return total / n, std_error(terms - weights)

    row_lse, col_lse, n_neg = torch.empty_like(pos), torch.empty_like(pos), torch.empty_like(pos)
    row_lse2 = torch.empty_like(pos)
    for idx in groups:
        idx = idx.to(ex.device)
        s = pair_scores(ex[idx], ez[idx])
        s.diagonal().fill_(-math.inf)
        row_lse[idx] = torch.logsumexp(s, dim=1)
        n_neg[idx] = idx.numel() - 1
        if return_std:
            col_lse[idx] = torch.logsumexp(s, dim=0)
            row_lse2[idx] = torch.logsumexp(2.0 * s, dim=1)
    log_total_neg = math.log(float(n_neg.sum()))
    # dv_mi takes the log-mean-exp over its negatives; feed it one entry per
    # row (the log-sum-exp of that row's negatives), shifted so that this
    # equals the log-mean-exp over all negatives of all blocks.
    summary = row_lse + math.log(n) - log_total_neg
    estimate = float(dv_mi(pos.unsqueeze(0), summary.unsqueeze(0)))
    if not return_std:
        return estimate
    log_mean = float(torch.logsumexp(row_lse, dim=0)) - log_total_neg
    r = torch.exp(row_lse - n_neg.log() - log_mean)
    c = torch.exp(col_lse - n_neg.log() - log_mean)
    # Second-order term: the variance of exp(T) / mean over the negatives,
    # divided by their number (it matters when blocks limit the negatives and
    # exp(T) is heavy-tailed).
    n_total = float(n_neg.sum())
    var_w = math.exp(float(torch.logsumexp(row_lse2, dim=0)) - 2.0 * log_mean - log_total_neg) - 1.0
    se = math.sqrt(std_error(pos - r - c) ** 2 + max(var_w, 0.0) / n_total)
    return estimate, se
