"""The Deep InfoMax objective and its training loop (pure PyTorch).

:class:`DIMObjective` bundles the encoder with its MI critics and computes
the loss terms of paper eq. 8 for one batch; :func:`train_epoch` runs one
pass over an array with the two-player prior game. Nothing here imports
scikit-learn; the estimator in :mod:`skdim._estimator` drives it.

The paper's extensions (section 4.3, table 3) are switched on by
:class:`DIMConfig` fields and, where they have parameters, by modules that
:class:`DIMObjective` builds only when asked: input occlusion for the global
feature, absolute and relative coordinate prediction, multiple globals, and
random crop/flip augmentation. With all of them off, a step draws the same
random numbers and computes exactly what the plain method does.

Occlusion runs the encoder twice, on the full and on the occluded batch,
rather than once on their concatenation: a joint pass would normalise both
halves with shared BatchNorm statistics, so the local features of the full
images (and the running statistics used by ``transform``) would depend on the
occluded ones. The second pass uses its own batch statistics and leaves the
running averages untouched; the encoder is a small part of a step's cost
(the local critic dominates), so the extra pass costs little.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from .nn.augment import augment_batch
from .nn.bounds import mi_lower_bound, subsample_negatives
from .nn.coordinates import (
    CoordinatePredictor,
    absolute_coordinate_loss,
    relative_coordinate_loss,
    sample_sources,
)
from .nn.critics import ConcatLocalCritic, DotLocalCritic, GlobalCritic, PriorDiscriminator
from .nn.encoders import EncoderOutput, validate_encoder_output
from .nn.multiple_globals import mask_blocks, sample_block_origins
from .nn.occlusion import occlude, occlusion_mask
from .nn.priors import (
    discriminator_loss,
    gradient_penalty,
    prior_loss,
    prior_transform,
    sample_prior,
)

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "tf32")
# Weight of the discriminator's input-gradient penalty. At 1.0 the
# discriminator stays near chance and gamma=0.1 barely moves the codes; 0.1
# keeps it stable (0.01 was not) while the prior measurably shapes sigmoid(Y)
# (mean KS distance to uniform on digits: 0.21 without the prior term,
# 0.15-0.17 at gamma=0.1, 0.12 at gamma=1).
PRIOR_GRADIENT_PENALTY = 0.1
ADAM_BETAS = (0.5, 0.999)


@dataclass(frozen=True)
class DIMConfig:
    """Weights and choices of the objective (paper eq. 8).

    The extension fields: ``occlusion`` (global code from an occluded
    input), ``coordinate_weight`` / ``relative_coordinate_weight`` (weights
    of the coordinate cross-entropies, added to the loss),
    ``multiple_globals`` (3x3-block codes, their MI weighted by ``beta``) and
    ``augment`` (random shift-crops and flips of each batch). The modules
    that coordinates and multiple globals train must exist in the
    :class:`DIMObjective` (its ``coordinates``, ``relative_coordinates`` and
    ``multiple_globals`` arguments).
    """

    alpha: float = 0.0
    beta: float = 1.0
    gamma: float = 0.1
    mi_estimator: str = "jsd"
    prior: str = "uniform"
    n_negatives: int | None = None
    precision: str = "float32"
    # Extensions (paper section 4.3, table 3); the defaults are the plain method.
    occlusion: bool = False
    coordinate_weight: float = 0.0
    relative_coordinate_weight: float = 0.0
    multiple_globals: bool = False
    augment: bool = False


class DIMObjective(nn.Module):
    """Encoder plus the critics and predictors that the active terms need.

    A critic whose weight is zero is not built, so it costs nothing.

    Parameters
    ----------
    encoder : nn.Module
        Returns an :class:`~skdim.nn.encoders.EncoderOutput`.
    shapes : EncoderOutput of torch.Size
        The encoder's output shapes (:func:`~skdim.nn.encoders.feature_shapes`).
    n_components : int
        Size of the code ``Y``.
    use_local, use_global : bool
        Build the local / global MI critic.
    local_critic : {"dot", "concat"}, default="dot"
    critic_units : int, default=512
    coordinates : bool, default=False
        Build the absolute coordinate predictor.
    relative_coordinates : bool, default=False
        Build the relative coordinate predictor.
    multiple_globals : bool, default=False
        Build the critic shared by all 3x3-block codes. The encoder (or the
        module it wraps, as ``encoder.module``) must have a
        ``summarize(local_map)`` method, as the ``"crops"`` encoder has.
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
        coordinates: bool = False,
        relative_coordinates: bool = False,
        multiple_globals: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.local_critic: nn.Module | None = None
        self.global_critic: nn.Module | None = None
        local_channels = shapes.local[1]
        critic_cls = DotLocalCritic if local_critic == "dot" else ConcatLocalCritic
        if use_local:
            self.local_critic = critic_cls(local_channels, n_components, critic_units)
        if use_global:
            conv_features = math.prod(shapes.conv[1:])
            self.global_critic = GlobalCritic(conv_features, n_components, critic_units)
        # Built after the plain critics, so that their seeded initialisation
        # does not depend on which extensions are on.
        grid = tuple(int(s) for s in shapes.local[2:])
        self.coordinate_predictor: CoordinatePredictor | None = None
        self.relative_predictor: CoordinatePredictor | None = None
        self.multi_global_critic: nn.Module | None = None
        if coordinates:
            self.coordinate_predictor = CoordinatePredictor((n_components, local_channels), grid)
        if relative_coordinates:
            self.relative_predictor = CoordinatePredictor(
                (n_components, local_channels, local_channels), [2 * g - 1 for g in grid]
            )
        if multiple_globals:
            if _summarizer(encoder) is None:
                raise ValueError(
                    "multiple_globals=True needs an encoder that can recompute the code from a "
                    "masked local map (a summarize(local_map) method), such as encoder='crops'."
                )
            sample_block_origins(1, grid)  # validates the grid size
            self.multi_global_critic = critic_cls(local_channels, n_components, critic_units)

    def mi_terms(
        self, x: Tensor, config: DIMConfig, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Encode ``x`` and return ``(code, terms)``.

        ``code`` is the code of the full input (what ``transform`` returns and
        the prior matches). ``terms`` holds the MI estimates ``"local_mi"``,
        ``"global_mi"`` and ``"multiple_globals_mi"`` (nats, greater is
        better) and the coordinate cross-entropies ``"coordinate"`` and
        ``"relative_coordinate"`` (nats, lower is better) that are active.
        """
        out = self.encoder(x)
        glob = out.y
        if config.occlusion:
            # Local features (and the prior's code) stay those of the full input.
            mask = occlusion_mask(x.shape[0], x.shape[2:], generator, device=x.device)
            with frozen_batchnorm_stats(self.encoder):
                glob = self.encoder(occlude(x, mask)).y
        terms: dict[str, Tensor] = {}
        for name, critic, features in (
            ("local_mi", self.local_critic, out.local),
            ("global_mi", self.global_critic, out.conv),
        ):
            if critic is None:
                continue
            terms[name] = self._bound(critic, features, glob, config, generator)
        if config.multiple_globals:
            terms["multiple_globals_mi"] = self._multiple_globals(out, config, generator)
        if config.coordinate_weight > 0:
            predictor = self._require(self.coordinate_predictor, "coordinate_weight")
            terms["coordinate"] = absolute_coordinate_loss(predictor, out.local, glob)
        if config.relative_coordinate_weight > 0:
            predictor = self._require(self.relative_predictor, "relative_coordinate_weight")
            n_locations = math.prod(out.local.shape[2:])
            source = sample_sources(x.shape[0], n_locations, generator, x.device)
            terms["relative_coordinate"] = relative_coordinate_loss(predictor, out.local, glob, source)
        return out.y, terms

    @staticmethod
    def _bound(critic, features, code, config, generator) -> Tensor:
        pos, neg = critic(features, code)
        neg = subsample_negatives(neg, config.n_negatives, generator)
        # Bounds in float32: logsumexp over thousands of bf16 scores loses digits.
        return mi_lower_bound(pos.float(), neg.float(), config.mi_estimator)

    def _multiple_globals(self, out: EncoderOutput, config: DIMConfig, generator) -> Tensor:
        critic = self._require(self.multi_global_critic, "multiple_globals")
        local = out.local
        origins = sample_block_origins(local.shape[0], local.shape[2:], generator, device=local.device)
        with frozen_batchnorm_stats(self.encoder):
            block = _summarizer(self.encoder)(mask_blocks(local, origins))
        block = validate_encoder_output(block, local.shape[0])
        # Every block code is scored against the full local map.
        return self._bound(critic, local, block.y, config, generator)

    @staticmethod
    def _require(module: nn.Module | None, parameter: str) -> nn.Module:
        if module is None:
            raise ValueError(
                f"{parameter} is on, but this model was built without the module it trains; "
                "it is built when the model is initialised, so refit without warm_start "
                "(or partial_fit on a fresh estimator)."
            )
        return module


def _summarizer(encoder: nn.Module) -> Callable[[Tensor], object] | None:
    """The encoder's ``summarize`` (also through a wrapper's ``.module``)."""
    for module in (encoder, getattr(encoder, "module", None)):
        fn = getattr(module, "summarize", None)
        if callable(fn):
            return fn
    return None


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Run extra forward passes without touching BatchNorm running statistics.

    In training mode BatchNorm still normalises with the batch's own
    statistics, but the running averages (used by ``transform``) and the
    batch counters are neither updated nor saved for backward, so they
    describe full inputs only. (Updating and then restoring them in place
    would break the backward pass of the first forward, which saved them.)
    """
    norms = [
        m for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def build_discriminator(n_components: int) -> PriorDiscriminator:
    return PriorDiscriminator(n_components)


def make_optimizers(
    objective: DIMObjective, discriminator: nn.Module | None, learning_rate: float
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam for the encoder and critics, and a separate Adam for the discriminator.

    The fused Adam kernel updates all parameters in one pass instead of a
    dozen elementwise ops per tensor: with the 18M parameters of the paper's
    CIFAR-10 model that is measurable on CPU too.
    """

    def adam(params):
        return torch.optim.Adam(params, lr=learning_rate, betas=ADAM_BETAS, fused=True)

    main = adam(objective.parameters())
    disc = None if discriminator is None else adam(discriminator.parameters())
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
            f"{', '.join(bad)} term(s) became non-finite (NaN or inf). DeepInfoMax "
            "keeps the weights of the last completed epoch. Try a lower learning_rate, "
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
    forward: Callable[..., tuple[Tensor, dict[str, Tensor]]] | None = None,
) -> dict[str, Tensor]:
    """One update of the encoder and critics, and one of the discriminator.

    ``forward`` replaces ``objective.mi_terms`` (same signature), e.g. by
    its ``torch.compile``-d version.

    The prior game takes two separate steps on opposite objectives: the
    discriminator learns to tell prior samples from (detached) codes, then the
    encoder is updated to fool the frozen discriminator. With
    ``config.augment`` the batch is first randomly shift-cropped and flipped
    (:func:`skdim.nn.augment.augment_batch`), on its device.
    """
    device = x.device
    if config.augment:
        x = augment_batch(x, generator)
    if x.dim() == 4:
        # oneDNN (CPU) and cuDNN run NHWC convolutions faster, and the local
        # critic wants its map channels-last anyway (benchmarks/bench_fit.py).
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, config.precision):
        code, terms = (forward or objective.mi_terms)(x, config, generator)
    loss = torch.zeros((), device=device)
    if "local_mi" in terms:
        loss = loss - config.beta * terms["local_mi"]
    if "global_mi" in terms:
        loss = loss - config.alpha * terms["global_mi"]
    # Block codes are a local objective: they share beta with local DIM.
    if "multiple_globals_mi" in terms:
        loss = loss - config.beta * terms["multiple_globals_mi"]
    if "coordinate" in terms:
        loss = loss + config.coordinate_weight * terms["coordinate"]
    if "relative_coordinate" in terms:
        loss = loss + config.relative_coordinate_weight * terms["relative_coordinate"]

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
    forward: Callable[..., tuple[Tensor, dict[str, Tensor]]] | None = None,
) -> dict[str, float]:
    """One pass over the data; returns the mean of every term over batches.

    ``forward`` is passed on to :func:`train_step`.
    """
    objective.train()
    if discriminator is not None:
        discriminator.train()
    sums: dict[str, Tensor] = {}
    n_batches = 0
    for step, idx in enumerate(batch_indices(n_samples, batch_size, generator, shuffle)):
        terms = train_step(
            objective, discriminator, optimizer, d_optimizer, get_batch(idx), config,
            generator, epoch=epoch, step=step, forward=forward,
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
