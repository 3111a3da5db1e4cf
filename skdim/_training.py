"""The Deep InfoMax objective and its training loop (pure PyTorch).

:class:`DIMObjective` bundles the encoder with its MI critics and computes
the loss terms of paper eq. 8 for one batch; :func:`train_epoch` runs one
pass over an array with the two-player prior game. Nothing here imports
scikit-learn; the estimator in :mod:`skdim._estimator` drives it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from .nn.bounds import mi_lower_bound, subsample_negatives
from .nn.critics import ConcatLocalCritic, DotLocalCritic, GlobalCritic, PriorDiscriminator
from .nn.priors import (
    discriminator_loss,
    gradient_penalty,
    prior_loss,
    prior_transform,
    sample_prior,
)

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "tf32")
# Weight of the discriminator's gradient penalty (official release's setting).
PRIOR_GRADIENT_PENALTY = 1.0
ADAM_BETAS = (0.5, 0.999)


@dataclass(frozen=True)
class DIMConfig:
    """Weights and choices of the objective (paper eq. 8)."""

    alpha: float = 0.0
    beta: float = 1.0
    gamma: float = 0.1
    mi_estimator: str = "jsd"
    prior: str = "uniform"
    n_negatives: int | None = None
    precision: str = "float32"


class DIMObjective(nn.Module):
    """Encoder plus the critics that the active terms need.

    A critic whose weight is zero is not built, so it costs nothing.
    """

    def __init__(
        self,
        encoder: nn.Module,
        shapes,
        n_components: int,
        *,
        use_local: bool,
        use_global: bool,
        local_critic: str = "dot",
        critic_units: int = 512,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.local_critic: nn.Module | None = None
        self.global_critic: nn.Module | None = None
        if use_local:
            local_channels = shapes.local[1]
            if local_critic == "dot":
                self.local_critic = DotLocalCritic(local_channels, n_components, critic_units)
            else:
                self.local_critic = ConcatLocalCritic(local_channels, n_components, critic_units)
        if use_global:
            conv_features = math.prod(shapes.conv[1:])
            self.global_critic = GlobalCritic(conv_features, n_components, critic_units)

    def mi_terms(
        self, x: Tensor, config: DIMConfig, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Encode ``x`` and return ``(code, {"local_mi": ..., "global_mi": ...})``."""
        out = self.encoder(x)
        terms: dict[str, Tensor] = {}
        for name, critic, features in (
            ("local_mi", self.local_critic, out.local),
            ("global_mi", self.global_critic, out.conv),
        ):
            if critic is None:
                continue
            pos, neg = critic(features, out.y)
            neg = subsample_negatives(neg, config.n_negatives, generator)
            # Bounds in float32: logsumexp over thousands of bf16 scores loses digits.
            terms[name] = mi_lower_bound(pos.float(), neg.float(), config.mi_estimator)
        return out.y, terms


def build_discriminator(n_components: int) -> PriorDiscriminator:
    return PriorDiscriminator(n_components)


def make_optimizers(
    objective: DIMObjective, discriminator: nn.Module | None, learning_rate: float
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    main = torch.optim.Adam(objective.parameters(), lr=learning_rate, betas=ADAM_BETAS)
    disc = None
    if discriminator is not None:
        disc = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=ADAM_BETAS)
    return main, disc


def autocast(device: torch.device, precision: str):
    """Mixed precision context: bf16 autocast keeps float32 master weights."""
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_indices(
    n_samples: int, batch_size: int, generator: torch.Generator | None, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Yield sorted index arrays of mini-batches covering ``range(n_samples)``.

    A last batch of a single sample is merged into the previous one: the
    contrastive bounds need at least two images and BatchNorm needs two rows.
    Indices within a batch are sorted so that reads from a memory map are
    sequential; the order within a batch does not change any loss.
    """
    order = torch.randperm(n_samples, generator=generator) if shuffle else torch.arange(n_samples)
    order = order.numpy()
    starts = list(range(0, n_samples, batch_size))
    if len(starts) > 1 and n_samples - starts[-1] == 1:
        starts.pop()
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else n_samples
        yield np.sort(order[start:stop])


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights."""


def _check_finite(terms: dict[str, Tensor], epoch: int, step: int) -> None:
    bad = [k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())]
    if bad:
        raise DivergenceError(
            f"Training diverged at epoch {epoch + 1}, step {step + 1}: the "
            f"{', '.join(bad)} term(s) became non-finite (NaN or inf). The weights "
            "from before this step are kept. Try a lower learning_rate, "
            "precision='float32' or check the input scale."
        )


def train_step(
    objective: DIMObjective,
    discriminator: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer | None,
    x: Tensor,
    config: DIMConfig,
    generator: torch.Generator,
    *,
    epoch: int = 0,
    step: int = 0,
) -> dict[str, Tensor]:
    """One update of the encoder and critics, and one of the discriminator.

    The prior game takes two separate steps on opposite objectives: the
    discriminator learns to tell prior samples from (detached) codes, then the
    encoder is updated to fool the frozen discriminator.
    """
    device = x.device
    with autocast(device, config.precision):
        code, terms = objective.mi_terms(x, config, generator)
    loss = torch.zeros((), device=device)
    if "local_mi" in terms:
        loss = loss - config.beta * terms["local_mi"]
    if "global_mi" in terms:
        loss = loss - config.alpha * terms["global_mi"]

    if discriminator is not None and d_optimizer is not None:
        fake = prior_transform(config.prior, code.float())
        real = sample_prior(config.prior, code.shape[0], code.shape[1], generator, device)
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_total = d_loss + PRIOR_GRADIENT_PENALTY * gradient_penalty(discriminator, real)
        terms["discriminator"] = d_loss
        _check_finite({"discriminator": d_total}, epoch, step)
        d_optimizer.zero_grad(set_to_none=True)
        d_total.backward()
        d_optimizer.step()

        discriminator.requires_grad_(False)
        try:
            terms["prior"] = prior_loss(discriminator(fake))
        finally:
            discriminator.requires_grad_(True)
        loss = loss + config.gamma * terms["prior"]

    terms["loss"] = loss
    _check_finite(terms, epoch, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


def train_epoch(
    objective: DIMObjective,
    discriminator: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer | None,
    n_samples: int,
    get_batch: Callable[[np.ndarray], Tensor],
    config: DIMConfig,
    batch_size: int,
    generator: torch.Generator,
    *,
    epoch: int = 0,
    shuffle: bool = True,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """One pass over the data; returns the mean of every term over batches."""
    objective.train()
    if discriminator is not None:
        discriminator.train()
    sums: dict[str, Tensor] = {}
    n_batches = 0
    for step, idx in enumerate(batch_indices(n_samples, batch_size, generator, shuffle)):
        terms = train_step(
            objective, discriminator, optimizer, d_optimizer, get_batch(idx), config,
            generator, epoch=epoch, step=step,
        )
        for k, v in terms.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        n_batches += 1
        if progress is not None:
            progress({k: float(v) for k, v in terms.items()})
    for module in (objective, discriminator):
        if module is None:
            continue
        for p in module.parameters():
            if not bool(torch.isfinite(p).all()):
                raise DivergenceError(
                    f"Training diverged in epoch {epoch + 1}: weights became non-finite. "
                    "Try a lower learning_rate or precision='float32'."
                )
    return {k: float(v) / n_batches for k, v in sums.items()}


def seeded_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def build_seeded(seed: int, factory: Callable[[], nn.Module]) -> nn.Module:
    """Build modules with default initialisation drawn from ``seed``.

    PyTorch initialises parameters from the global generator; fork it so the
    caller's global RNG state is exactly as before.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return factory()
