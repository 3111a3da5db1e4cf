"""Priors for adversarial prior matching (paper section 3.3, eq. 7).

Each prior is a pair: a sampler and the map applied to the code ``Y`` before
the discriminator sees it. ``Y`` itself stays linear; the map is used only
inside the prior term.

* ``"uniform"``: uniform on ``[0, 1]^d``, matched by ``sigmoid(Y)`` (the
  paper's choice, which it found best).
* ``"gaussian"``: standard normal, matched by ``Y``.
* ``"unit_ball"``: uniform in the unit ball, matched by ``Y``.
* ``"unit_sphere"``: uniform on the unit sphere, matched by ``Y / ||Y||``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PRIORS",
    "sample_prior",
    "prior_transform",
    "prior_loss",
    "discriminator_loss",
    "gradient_penalty",
]

PRIORS: tuple[str, ...] = ("uniform", "gaussian", "unit_ball", "unit_sphere")


def _gaussian(n: int, d: int, g: torch.Generator) -> Tensor:
    return torch.randn(n, d, generator=g)


def _uniform(n: int, d: int, g: torch.Generator) -> Tensor:
    return torch.rand(n, d, generator=g)


def _unit_sphere(n: int, d: int, g: torch.Generator) -> Tensor:
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def _unit_ball(n: int, d: int, g: torch.Generator) -> Tensor:
    # The radius of a uniform point in the d-ball has CDF r**d.
    radius = torch.rand(n, 1, generator=g) ** (1.0 / d)
    return _unit_sphere(n, d, g) * radius


_SAMPLERS: dict[str, Callable[[int, int, torch.Generator], Tensor]] = {
    "uniform": _uniform,
    "gaussian": _gaussian,
    "unit_ball": _unit_ball,
    "unit_sphere": _unit_sphere,
}


def _check(name: str) -> None:
    if name not in _SAMPLERS:
        raise ValueError(f"Unknown prior {name!r}; expected one of {PRIORS}.")


def sample_prior(
    name: str, n: int, d: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> Tensor:
    """Draw ``n`` samples of dimension ``d`` from the named prior.

    Sampling happens on the CPU generator so results do not depend on the
    device, then moves to ``device``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.priors import sample_prior
    >>> v = sample_prior("unit_sphere", 5, 3, torch.Generator().manual_seed(0))
    >>> tuple(v.shape), bool(torch.allclose(v.norm(dim=1), torch.ones(5)))
    ((5, 3), True)
    >>> u = sample_prior("uniform", 100, 2, torch.Generator().manual_seed(0))
    >>> bool(((u >= 0) & (u <= 1)).all())
    True
    """
    _check(name)
    return _SAMPLERS[name](n, d, generator).to(device)


def prior_transform(name: str, code: Tensor) -> Tensor:
    """Map a code ``Y`` into the prior's support before the discriminator.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.priors import prior_transform
    >>> prior_transform("uniform", torch.tensor([[0.0, 100.0]])).tolist()  # sigmoid
    [[0.5, 1.0]]
    >>> y = prior_transform("unit_sphere", torch.tensor([[3.0, 4.0]]))
    >>> [round(v, 4) for v in y[0].tolist()]
    [0.6, 0.8]
    """
    _check(name)
    if name == "uniform":
        return torch.sigmoid(code)
    if name == "unit_sphere":
        return F.normalize(code, dim=1)
    return code


def discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Binary cross-entropy of the discriminator: prior samples are "real".

    ``-E_V[log sigmoid(D(v))] - E_Y[log(1 - sigmoid(D(y)))]``, written with
    ``softplus`` for stability.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.priors import discriminator_loss
    >>> zeros = torch.zeros(4, 1)  # a discriminator that cannot tell: 2 log 2
    >>> round(float(discriminator_loss(zeros, zeros)), 4)
    1.3863
    >>> real, fake = torch.full((4, 1), 20.0), torch.full((4, 1), -20.0)
    >>> round(float(discriminator_loss(real, fake)), 4)  # a perfect discriminator
    0.0
    """
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def prior_loss(fake_scores: Tensor) -> Tensor:
    """The encoder's side of eq. 7: make the discriminator call codes real.

    The non-saturating form ``-E_Y[log sigmoid(D(y))]``: the encoder's
    gradient does not vanish when the discriminator wins early. It is minimised
    by the encoder only; the discriminator takes its own, opposite step.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.priors import prior_loss
    >>> round(float(prior_loss(torch.zeros(4, 1))), 4)  # log 2
    0.6931
    >>> round(float(prior_loss(torch.full((4, 1), 20.0))), 4)  # codes called real
    0.0
    """
    return F.softplus(-fake_scores).mean()


def gradient_penalty(discriminator: Callable[[Tensor], Tensor], samples: Tensor) -> Tensor:
    """Mean squared gradient norm of the discriminator over the whole batch.

    The official release penalises the discriminator's input gradient but,
    by a bug, only at the last sample; this averages over every sample.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.priors import gradient_penalty
    >>> w = torch.tensor([3.0, 4.0])  # linear discriminator: gradient w everywhere
    >>> samples = torch.rand(5, 2, generator=torch.Generator().manual_seed(0))
    >>> float(gradient_penalty(lambda x: x @ w, samples))  # ||w||^2
    25.0
    """
    samples = samples.detach().requires_grad_(True)
    scores = discriminator(samples)
    (grad,) = torch.autograd.grad(scores.sum(), samples, create_graph=True)
    return grad.pow(2).sum(dim=1).mean()
