"""Lower bounds on mutual information, as pure functions of critic scores.

Every bound here takes the critic's scores already split into *positive*
pairs (samples from the joint) and *negative* pairs (samples from the product
of marginals):

``pos`` : Tensor of shape ``(B, P)``
    Row ``i`` holds the ``P`` positive scores that belong to anchor ``i`` (for
    local DIM: the scores of global feature ``i`` with each of the ``P = M*M``
    locations of its own local map).
``neg`` : Tensor of shape ``(B, N)``
    Row ``i`` holds the ``N`` negative scores of anchor ``i`` (for local DIM:
    global feature ``i`` with every location of every *other* image).

JSD and DV only use the two sets as a whole; infoNCE uses the row structure:
each positive of row ``i`` competes against itself plus the ``N`` negatives of
row ``i``, so the log-sum-exp over the negatives is computed once per row and
never materialised per positive.

All functions return the *estimate* (greater is better; nats for DV and infoNCE, a Jensen-Shannon score for JSD); training
minimises its negation. All are stable for scores of any magnitude: they use
``softplus`` and ``logsumexp``, never a bare ``exp``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MIEstimator",
    "MI_ESTIMATORS",
    "jsd_mi",
    "dv_mi",
    "infonce_mi",
    "mi_lower_bound",
    "split_pair_scores",
    "subsample_negatives",
    "MineMovingAverage",
]

MIEstimator = Literal["jsd", "infonce", "dv"]
MI_ESTIMATORS: tuple[str, ...] = ("jsd", "infonce", "dv")


def jsd_mi(pos: Tensor, neg: Tensor) -> Tensor:
    """Jensen-Shannon MI estimate (Hjelm et al. 2019, eq. 4).

    ``E_pos[-softplus(-u)] - E_neg[softplus(u)]``. It equals ``-2 log 2`` for
    a critic that cannot tell the pairs apart (all scores equal to 0) and
    tends to 0 from below for a perfect critic.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import jsd_mi
    >>> round(float(jsd_mi(torch.zeros(4, 2), torch.zeros(4, 6))), 4)  # -2 log 2
    -1.3863
    >>> pos, neg = torch.full((4, 2), 10.0), torch.full((4, 6), -10.0)
    >>> round(float(jsd_mi(pos, neg)), 4)  # a confident critic: close to 0
    -0.0001
    """
    return -F.softplus(-pos).mean() - F.softplus(neg).mean()


def _log_mean_exp(x: Tensor) -> Tensor:
    x = x.reshape(-1)
    return torch.logsumexp(x, dim=0) - math.log(x.numel())


def dv_mi(pos: Tensor, neg: Tensor) -> Tensor:
    """Donsker-Varadhan MI estimate (eq. 2): ``E_pos[u] - log E_neg[exp(u)]``.

    The log-mean-exp is computed with a max-shifted ``logsumexp`` so large
    scores neither overflow nor return NaN.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import dv_mi
    >>> abs(float(dv_mi(torch.zeros(4, 2), torch.zeros(4, 6)))) < 1e-6  # chance: 0
    True
    >>> pos, neg = torch.full((4, 2), 1000.0), torch.full((4, 6), 1000.0)
    >>> abs(float(dv_mi(pos, neg))) < 1e-3  # huge scores: no overflow, no NaN
    True
    """
    return pos.mean() - _log_mean_exp(neg)


def infonce_mi(pos: Tensor, neg: Tensor) -> Tensor:
    """infoNCE MI estimate (eq. 5) with negatives shared within each row.

    Each positive ``pos[i, p]`` is classified among ``1 + N`` candidates:
    itself and the ``N`` negatives ``neg[i, :]``. The estimate is
    ``log(1 + N) + mean_{i,p} log softmax(pos[i, p] | candidates)`` and so can
    never exceed ``log(1 + N)``.

    Examples
    --------
    >>> import math, torch
    >>> from skdim.nn.bounds import infonce_mi
    >>> abs(float(infonce_mi(torch.zeros(4, 2), torch.zeros(4, 7)))) < 1e-6  # chance: 0
    True
    >>> pos, neg = torch.full((4, 2), 10.0), torch.full((4, 7), -10.0)
    >>> est = infonce_mi(pos, neg)  # N = 7 negatives per row
    >>> round(float(est), 4), bool(est <= math.log(1 + 7))
    (2.0794, True)
    """
    if pos.dim() != 2 or neg.dim() != 2 or pos.shape[0] != neg.shape[0]:
        raise ValueError(
            "infonce_mi expects pos of shape (B, P) and neg of shape (B, N) "
            f"with the same B; got {tuple(pos.shape)} and {tuple(neg.shape)}."
        )
    n_neg = neg.shape[1]
    # One logsumexp per row over the shared negatives: O(B*N) memory, not O(B*P*N).
    neg_lse = torch.logsumexp(neg, dim=1, keepdim=True)
    log_softmax_pos = pos - torch.logaddexp(pos, neg_lse)
    return log_softmax_pos.mean() + math.log(1 + n_neg)


_BOUNDS = {"jsd": jsd_mi, "dv": dv_mi, "infonce": infonce_mi}


def mi_lower_bound(pos: Tensor, neg: Tensor, estimator: str = "jsd") -> Tensor:
    """Dispatch to :func:`jsd_mi`, :func:`dv_mi` or :func:`infonce_mi` by name.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import jsd_mi, mi_lower_bound
    >>> pos, neg = torch.zeros(4, 2), torch.zeros(4, 6)
    >>> bool(mi_lower_bound(pos, neg, "jsd") == jsd_mi(pos, neg))
    True
    >>> mi_lower_bound(pos, neg, estimator="nce")
    Traceback (most recent call last):
    ...
    ValueError: Unknown MI estimator 'nce'; expected one of ('jsd', 'infonce', 'dv').
    """
    try:
        fn = _BOUNDS[estimator]
    except KeyError:
        raise ValueError(
            f"Unknown MI estimator {estimator!r}; expected one of {MI_ESTIMATORS}."
        ) from None
    return fn(pos, neg)


def split_pair_scores(scores: Tensor, offset: int | None = None) -> tuple[Tensor, Tensor]:
    """Split an all-pairs score tensor into positives and negatives.

    Parameters
    ----------
    scores : Tensor of shape (B, B) or (B, B, L), or (B, M, L) with ``offset``
        ``scores[i, j, l]`` scores anchor ``i`` (e.g. a global feature)
        against item ``j`` at location ``l`` (e.g. a local feature).
    offset : int, default=None
        ``None``: square scores, positives on the diagonal. An integer:
        anchor ``i``'s own item is ``offset + i`` among ``M >= B`` items
        (this process's rows among items gathered from all processes).

    Returns
    -------
    pos : Tensor of shape (B, L)
        ``scores[i, offset + i, :]``.
    neg : Tensor of shape (B, (M - 1) * L)
        ``scores[i, j, :]`` for every ``j != offset + i``: positives are
        excluded from the negatives (paper, appendix A.3), and other
        locations of the same item are neither positives nor negatives.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import split_pair_scores
    >>> pos, neg = split_pair_scores(torch.arange(9.0).reshape(3, 3))
    >>> pos.flatten().tolist(), neg.tolist()
    ([0.0, 4.0, 8.0], [[1.0, 2.0], [3.0, 5.0], [6.0, 7.0]])
    >>> pos, neg = split_pair_scores(torch.zeros(2, 4, 5), offset=2)  # B=2, M=4, L=5
    >>> tuple(pos.shape), tuple(neg.shape)
    ((2, 5), (2, 15))
    """
    if scores.dim() == 2:
        scores = scores.unsqueeze(-1)
    if offset is None:
        if scores.dim() != 3 or scores.shape[0] != scores.shape[1]:
            raise ValueError(
                f"scores must have shape (B, B) or (B, B, L); got {tuple(scores.shape)}."
            )
        offset = 0
    elif scores.dim() != 3 or not 0 <= offset <= scores.shape[1] - scores.shape[0]:
        raise ValueError(
            "With an offset, scores must have shape (B, M) or (B, M, L) with "
            f"0 <= offset <= M - B; got {tuple(scores.shape)} and offset={offset}."
        )
    b, m = scores.shape[:2]
    if m < 2:
        raise ValueError(f"At least 2 items are needed to form negative pairs; got B={m}.")
    pos = torch.diagonal(scores, offset=offset, dim1=0, dim2=1).transpose(0, 1)
    items = torch.arange(m, device=scores.device)
    own = torch.arange(b, device=scores.device) + offset
    neg = scores[items[None, :] != own[:, None]].reshape(b, -1)
    return pos, neg


def subsample_negatives(
    neg: Tensor, n_negatives: int | None, generator: torch.Generator | None = None
) -> Tensor:
    """Keep ``n_negatives`` randomly chosen negatives per row (all when None).

    Each row gets its own random subset (without replacement), so the bounds
    can be studied as a function of the number of negatives (paper, figure 9).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import subsample_negatives
    >>> neg = torch.arange(12.0).reshape(2, 6)
    >>> sub = subsample_negatives(neg, 3, generator=torch.Generator().manual_seed(0))
    >>> tuple(sub.shape), all(set(s.tolist()) <= set(r.tolist()) for s, r in zip(sub, neg))
    ((2, 3), True)
    >>> subsample_negatives(neg, None) is neg  # None keeps every negative
    True
    """
    if n_negatives is None or n_negatives >= neg.shape[1]:
        return neg
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1 or None; got {n_negatives}.")
    keys = torch.rand(neg.shape, generator=generator, device="cpu").to(neg.device)
    idx = keys.argsort(dim=1)[:, :n_negatives]
    return torch.gather(neg, 1, idx)


class MineMovingAverage:
    """Bias-corrected DV gradient of MINE (Belghazi et al., 2018, section 3.2).

    The gradient of ``log E_neg[exp(u)]`` estimated on a mini-batch is biased;
    MINE divides ``grad E_neg[exp(u)]`` by a moving average of
    ``E_neg[exp(u)]`` instead of by the batch mean. :meth:`loss` returns a
    surrogate whose gradient is that corrected gradient and whose *value* is
    the plain DV estimate (negated), so it can be logged as usual.

    The moving average is kept in log space for stability.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.bounds import MineMovingAverage, dv_mi
    >>> mine = MineMovingAverage(rate=0.1)
    >>> pos, neg = torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, -1.0, 1.0]])
    >>> loss = mine.loss(pos, neg)  # value: the negated DV estimate
    >>> round(float(loss), 4), round(float(-dv_mi(pos, neg)), 4)
    (-1.191, -1.191)
    """

    def __init__(self, rate: float = 0.01) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1]; got {rate}.")
        self.rate = rate
        self.log_ema: Tensor | None = None

    def loss(self, pos: Tensor, neg: Tensor) -> Tensor:
        log_mean_exp = _log_mean_exp(neg)
        batch = log_mean_exp.detach()
        if self.log_ema is None:
            self.log_ema = batch
        else:
            self.log_ema = torch.logaddexp(
                # rate=1 keeps no history: log(1 - rate) = -inf drops the old average.
                self.log_ema + (math.log1p(-self.rate) if self.rate < 1.0 else -math.inf),
                batch + math.log(self.rate),
            )
        # d/dθ exp(lme - log_ema) = exp(lme) / ema * d lme/dθ = grad(E exp u) / ema.
        corrected = torch.exp(log_mean_exp - self.log_ema)
        surrogate = corrected - corrected.detach() + log_mean_exp.detach()
        return -(pos.mean() - surrogate)
