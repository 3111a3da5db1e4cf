"""MINE internals: the statistics network, its training and the held-out bound.

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

The functions here are shared with :mod:`skdim._ndm` and used by
:mod:`skdim.metrics`, which validates input.
"""

from __future__ import annotations

import math
import sys
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from ._data import Layout
from .nn.bounds import MineMovingAverage, dv_mi, infonce_mi, jsd_mi, split_pair_scores

MINE_BOUNDS: tuple[str, ...] = ("dv", "jsd", "infonce")
# Anchor rows per block when scoring all held-out pairs: keeps memory at
# block * n_eval scores however large the held-out set is.
EVAL_BLOCK = 1024

RowGetter = Callable[[np.ndarray], Tensor]


# ----------------------------------------------------------------- networks
def mlp(in_features: int, hidden: tuple[int, ...], out_features: int) -> nn.Sequential:
    """``Linear -> GELU`` per hidden size, then a linear output.

    GELU rather than ReLU: the log density ratios these critics fit are
    smooth (quadratic for Gaussians), and on the accuracy cases of the tests
    GELU critics came within 3-5% of the truth where ReLU critics of equal
    size and steps stayed 6-8% short and over-fitted more.
    """
    layers: list[nn.Module] = []
    for units in hidden:
        layers += [nn.Linear(in_features, units), nn.GELU()]
        in_features = units
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class ConvFeatures(nn.Module):
    """Small convolutional branch for image inputs.

    A 3x3 convolution, then stride-2 4x4 convolutions (at most ``max_down``)
    until the map is at most 4x4, all with ``channels`` channels and GELU;
    the map is flattened. Tiny images (e.g. 8x8 digits) keep most of their
    resolution; 32x32 images cost about 6 MFLOP per image.
    """

    def __init__(
        self, in_channels: int, spatial: tuple[int, int], channels: int = 32, max_down: int = 3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.GELU()]
        h, w = spatial
        for _ in range(max_down):
            if min(h, w) <= 4:
                break
            layers += [nn.Conv2d(channels, channels, 4, stride=2, padding=1), nn.GELU()]
            h, w = h // 2, w // 2
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = channels * h * w

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_branch(
    in_features: int, hidden: tuple[int, ...], embedding_dim: int, layout: Layout | None = None
) -> nn.Module:
    """One side of the statistics network: input -> ``embedding_dim + 1`` outputs."""
    if layout is not None and layout.is_image:
        conv = ConvFeatures(layout.in_channels, layout.spatial)
        return nn.Sequential(conv, mlp(conv.out_features, hidden, embedding_dim + 1))
    return mlp(in_features, hidden, embedding_dim + 1)


def pair_scores(ex: Tensor, ez: Tensor) -> Tensor:
    """``T(x_i, z_j)`` for all pairs: ``(n_x, n_z)`` from embeddings ``(n, k + 1)``.

    The last column of each embedding is the additive term ``a(x)`` or
    ``b(z)``; DV is not invariant to such terms (infoNCE is to ``a(x)``), and
    the Gaussian log ratio needs them.
    """
    return ex[:, :-1] @ ez[:, :-1].T + ex[:, -1:] + ez[:, -1].unsqueeze(0)


class StatisticsNetwork(nn.Module):
    """``T(x, z) = <f(x), g(z)> + a(x) + b(z)``, all pairs in one matmul."""

    def __init__(self, x_branch: nn.Module, z_branch: nn.Module) -> None:
        super().__init__()
        self.x_branch = x_branch
        self.z_branch = z_branch

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return pair_scores(self.x_branch(x), self.z_branch(z))


# ---------------------------------------------------------- data and loops
def standardize_columns(
    a: np.ndarray, fit_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per column over ``fit_rows``, in float64.

    Float64 makes the estimate invariant to per-column scales of 1e-3 to 1e6
    and large offsets. A constant column gets std 1, so it becomes all zeros
    and carries no information (it is kept, not an error).
    """
    block = np.asarray(a[fit_rows], dtype=np.float64)
    mean = block.mean(axis=0)
    std = block.std(axis=0)
    std[~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0
    return mean, std


def to_tensor(a: np.ndarray, mean: np.ndarray, std: np.ndarray, device) -> Tensor:
    out = (np.asarray(a, dtype=np.float64) - mean) / std
    return torch.from_numpy(out.astype(np.float32)).to(device)


def split_rows(n: int, held_out_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train_rows, eval_rows)``, both sorted, drawn from ``seed`` only."""
    n_eval = int(round(held_out_fraction * n))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])


class BatchStream:
    """Endless mini-batches of row positions, epoch by epoch without replacement.

    Sampling without replacement keeps a row from being paired with its own
    copy as a "negative" inside a batch.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> Tensor:
        if self._pos + self.batch_size > self._order.numel():
            self._order = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def make_optimizer(
    module: nn.Module, learning_rate: float, n_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam with a cosine decay to zero over ``n_steps``.

    A decaying rate reduces the seed-to-seed variance of the final critic
    (the paper notes the same for its MINE runs, appendix A.4).
    """
    opt = torch.optim.Adam(module.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, n_steps) / n_steps))
    )
    return opt, sched


def report(name: str, step: int, n_steps: int, value: float, verbose: int) -> None:
    """Progress line every tenth of the run (every step when ``verbose > 1``)."""
    if not verbose:
        return
    every = 1 if verbose > 1 else max(1, n_steps // 10)
    if (step + 1) % every == 0 or step + 1 == n_steps:
        print(f"{name} step {step + 1}/{n_steps}: train estimate {value:.4f} nats", file=sys.stderr)


def check_finite_loss(loss: Tensor, name: str, step: int) -> None:
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(
            f"{name} diverged at step {step + 1}: the training objective became "
            "non-finite. Try a lower learning_rate."
        )


def optimizer_step(
    loss: Tensor, opt, sched, best: "BestCheckpoint", name: str, step: int, n_steps: int,
    verbose: int,
) -> None:
    """One update of a critic: finiteness check, step, schedule, progress, checkpoint."""
    check_finite_loss(loss, name, step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    if verbose:
        report(name, step, n_steps, -loss.item(), verbose)
    best.update(step)


class BestCheckpoint:
    """Keep the weights whose estimate on validation rows was highest.

    Early stopping without stopping: ``validate`` (a bound on rows used
    neither for training nor for the reported estimate) is called
    ``n_checks`` times over the run, and :meth:`restore` loads the best
    weights. A critic that over-fits its training rows is heavily penalised
    by a held-out DV bound (its partition term is dominated by the few pairs
    it is over-confident on): with 64-pixel inputs and 2,800 rows the held-out
    estimate fell from 0.6 to -2.2 nats between 300 and 600 steps. Selecting
    on separate validation rows keeps the reported estimate unbiased by the
    selection.
    """

    def __init__(
        self,
        module: nn.Module,
        validate: Callable[[], float] | None,
        n_steps: int,
        name: str,
        verbose: int = 0,
        n_checks: int = 10,
    ) -> None:
        self.module, self.validate, self.n_steps = module, validate, n_steps
        self.name, self.verbose = name, verbose
        self.every = max(1, n_steps // n_checks)
        self.best = -math.inf
        self.state: dict[str, Tensor] | None = None

    def update(self, step: int) -> None:
        if self.validate is None:
            return
        if (step + 1) % self.every and step + 1 != self.n_steps:
            return
        value = self.validate()
        self.module.train()
        if self.verbose:
            print(f"{self.name} step {step + 1}: validation estimate {value:.4f} nats", file=sys.stderr)
        if math.isfinite(value) and value > self.best:
            self.best = value
            self.state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def restore(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)


# --------------------------------------------------------------------- MINE
def train_statistics_network(
    net: StatisticsNetwork,
    get_x: RowGetter,
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
    """Maximise the chosen bound on mini-batches of the training rows.

    ``"dv"``: MINE's bias-corrected DV gradient (moving average of the
    partition term). ``"jsd"``: the Jensen-Shannon objective. ``"infonce"``:
    infoNCE. Every batch scores all of its pairs. With ``validate``, the
    weights that scored best on it are kept (see :class:`BestCheckpoint`).
    """
    net.train()
    best = BestCheckpoint(net, validate, n_steps, "MINE", verbose)
    opt, sched = make_optimizer(net, learning_rate, n_steps)
    ema = MineMovingAverage(ema_rate)
    stream = BatchStream(z.shape[0], batch_size, generator)
    for step in range(n_steps):
        idx = stream.next()
        pos, neg = split_pair_scores(net(get_x(idx.numpy()), z[idx.to(z.device)]))
        if bound == "dv":
            loss = ema.loss(pos, neg)
        elif bound == "jsd":
            loss = -jsd_mi(pos, neg)
        else:
            loss = -infonce_mi(pos, neg)
        optimizer_step(loss, opt, sched, best, "MINE", step, n_steps, verbose)
    best.restore()


@torch.no_grad()
def held_out_bound(
    net: StatisticsNetwork, get_x: RowGetter, z: Tensor, bound: str, block: int = EVAL_BLOCK
) -> float:
    """The bound on the held-out rows, every pair ``(x_i, z_j)``, ``i != j``, negative.

    ``"infonce"`` is evaluated by infoNCE (at most ``log n_eval``); ``"dv"``
    and ``"jsd"`` critics by DV. Anchor rows are scored in blocks; the blocks
    are combined exactly (infoNCE is a mean over rows; DV's partition term is
    a log-sum-exp, so per-block log-sum-exps are merged).
    """
    net.eval()
    n = z.shape[0]
    ex = torch.cat([net.x_branch(get_x(np.arange(s, min(s + block, n)))) for s in range(0, n, block)])
    ez = torch.cat([net.z_branch(z[s : s + block]) for s in range(0, n, block)])
    ex, ez = ex.double(), ez.double()
    positives, block_lse, infonce_sum = [], [], 0.0
    for start in range(0, n, block):
        stop = min(start + block, n)
        # Anchor start + i owns item start + i: pos (b, 1), neg (b, n - 1).
        pos, neg = split_pair_scores(pair_scores(ex[start:stop], ez), offset=start)
        if bound == "infonce":
            infonce_sum += float(infonce_mi(pos, neg)) * (stop - start)
        else:
            positives.append(pos)
            block_lse.append(torch.logsumexp(neg.reshape(-1), dim=0))
    if bound == "infonce":
        return infonce_sum / n
    # dv_mi takes log-mean-exp over its negatives; feed it one entry per block,
    # shifted so that this equals the log-mean-exp over all n (n - 1) pairs.
    n_blocks = len(block_lse)
    summary = torch.stack(block_lse) - math.log(n * (n - 1)) + math.log(n_blocks)
    return float(dv_mi(torch.cat(positives), summary.unsqueeze(0)))
