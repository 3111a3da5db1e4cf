"""The Deep InfoMax objective: the encoder, its critics and the loss terms of one batch.

:class:`DIMObjective` bundles the encoder with its MI critics and computes
the MI terms of paper eq. 8 for one batch; :func:`build_model` builds it (and
the prior discriminator) from a description of the input, with seeded
initialisation. :class:`skdim.nn.trainer.DIMTrainer` trains it.

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
import numbers
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from .augment import AUGMENTATIONS
from .bounds import MI_ESTIMATORS, mi_lower_bound, subsample_negatives
from .coordinates import (
    CoordinatePredictor,
    absolute_coordinate_loss,
    relative_coordinate_loss,
    sample_sources,
)
from .critics import ConcatLocalCritic, DotLocalCritic, GlobalCritic, PriorDiscriminator
from .crops import CROPS_ENCODER, build_crop_encoder
from .encoders import (
    ENCODERS,
    EncoderOutput,
    build_encoder,
    feature_shapes,
    validate_encoder_output,
)
from .multiple_globals import check_block_grid, mask_blocks, sample_block_origins
from .occlusion import occlude, occlusion_mask
from .priors import PRIORS
from .seeding import build_seeded

__all__ = [
    "DIMConfig", "DIMObjective", "build_model", "build_discriminator", "frozen_batchnorm_stats",
    "autocast", "PRECISIONS", "LOCAL_CRITICS",
]

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "tf32")
LOCAL_CRITICS: tuple[str, ...] = ("dot", "concat")


@dataclass(frozen=True)
class DIMConfig:
    """Weights and choices of the objective (paper eq. 8).

    The extension fields: ``occlusion`` (global code from an occluded
    input), ``coordinate_weight`` / ``relative_coordinate_weight`` (weights
    of the coordinate cross-entropies, added to the loss),
    ``multiple_globals`` (3x3-block codes, their MI weighted by ``beta``),
    ``augment`` (``True`` or ``"crop_flip"``: random shift-crops and flips of
    each batch; ``"strong"``: resized crops and intensity jitter, see
    :mod:`skdim.nn.augment`) and ``cross_view`` (AMDIM's cross-view
    objective: the code of one augmented view of each input against the
    features of another; needs ``augment``). The modules
    that coordinates and multiple globals train must exist in the
    :class:`DIMObjective` (its ``coordinates``, ``relative_coordinates`` and
    ``multiple_globals`` arguments).

    Examples
    --------
    >>> from skdim.nn.objective import DIMConfig
    >>> DIMConfig().beta, DIMConfig(alpha=1.0, beta=0.0, gamma=1.0).alpha  # DIM(L), DIM(G)
    (1.0, 1.0)
    >>> DIMConfig(gamma=-1)
    Traceback (most recent call last):
    ...
    ValueError: gamma must be a finite number >= 0; got -1.
    """

    # The core's defaults are the paper's code (JSD, float32); DeepInfoMax's
    # differ where the defaults study measured a gain (see its Notes).
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
    augment: bool | str = False
    # Beyond the paper: AMDIM's views (Bachman et al. 2019).
    cross_view: bool = False

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma", "coordinate_weight", "relative_coordinate_weight"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
        if self.mi_estimator not in MI_ESTIMATORS:
            raise ValueError(f"mi_estimator must be one of {MI_ESTIMATORS}; got {self.mi_estimator!r}.")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}; got {self.prior!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}.")
        if not isinstance(self.augment, bool) and self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be a bool or one of {AUGMENTATIONS}; got {self.augment!r}.")
        if self.cross_view:
            if not self.augment:
                raise ValueError("cross_view=True scores two augmented views of each input "
                                 "against each other; it needs augment (True, 'crop_flip' or "
                                 "'strong').")
            clash = [n for n in ("occlusion", "coordinate_weight", "relative_coordinate_weight",
                                 "multiple_globals") if getattr(self, n)]
            if clash:
                raise ValueError(f"cross_view=True works with the local, global and prior terms "
                                 f"only; turn off {', '.join(clash)}.")

    @property
    def augmentation(self) -> str | None:
        """The :func:`~skdim.nn.augment.augment_batch` kind, or None without augmentation."""
        if not self.augment:
            return None
        return "crop_flip" if self.augment is True else self.augment

    def to_dict(self) -> dict:
        """Plain values, for a ``state_dict``."""
        return asdict(self)


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

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.encoders import build_encoder, feature_shapes
    >>> from skdim.nn.objective import DIMConfig, DIMObjective
    >>> encoder = build_encoder("conv", 1, (8, 8), n_components=4)
    >>> objective = DIMObjective(encoder, feature_shapes(encoder, 1, (8, 8)), 4,
    ...                          use_local=True, use_global=False, critic_units=8)
    >>> code, terms = objective(torch.randn(6, 1, 8, 8), DIMConfig())
    >>> tuple(code.shape), sorted(terms)
    ((6, 4), ['local_mi'])
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
            check_block_grid(grid)
            self.multi_global_critic = critic_cls(local_channels, n_components, critic_units)

    def forward(
        self, x: Tensor, config: DIMConfig, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Encode ``x`` and return ``(code, terms)``.

        ``code`` is the code of the full input (what ``transform`` returns and
        the prior matches). ``terms`` holds the MI estimates ``"local_mi"``,
        ``"global_mi"`` and ``"multiple_globals_mi"`` (nats, greater is
        better) and the coordinate cross-entropies ``"coordinate"`` and
        ``"relative_coordinate"`` (nats, lower is better) that are active.

        With ``config.cross_view``, ``x`` holds two views of ``B`` inputs,
        ``(2B, ...)``: first views, then second views in the same order. Both
        are encoded in one pass; each view's code is scored against the other
        view's features (negatives: the other inputs' features of that view)
        and the term is the mean of the two bounds; ``code`` holds all ``2B``
        codes.
        """
        if config.cross_view:
            return self._cross_view(x, config, generator)
        out = self.encoder(x)
        glob = out.y
        if config.occlusion:
            # Local features (and the prior's code) stay those of the full input.
            mask = occlusion_mask(x.shape[0], x.shape[2:], generator, device=x.device)
            with frozen_batchnorm_stats(self.encoder):
                glob = self.encoder(occlude(x, mask)).y
        terms: dict[str, Tensor] = {
            name: self._bound(critic, features, glob, config, generator)
            for name, critic, features in self._mi_terms(out)
        }
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

    def _cross_view(self, x: Tensor, config: DIMConfig, generator) -> tuple[Tensor, dict[str, Tensor]]:
        if x.shape[0] % 2:
            raise ValueError(f"cross_view needs a batch of two views per input; got {x.shape[0]} rows.")
        out = self.encoder(x)
        first, second = out.y.chunk(2)
        terms: dict[str, Tensor] = {}
        for name, critic, features in self._mi_terms(out):
            f1, f2 = features.chunk(2)
            terms[name] = 0.5 * (self._bound(critic, f2, first, config, generator)
                                 + self._bound(critic, f1, second, config, generator))
        return out.y, terms

    def _mi_terms(self, out: EncoderOutput) -> list[tuple[str, nn.Module, Tensor]]:
        """``(term, critic, features)`` of the local and global MI terms that are built."""
        return [(name, critic, features) for name, critic, features in (
            ("local_mi", self.local_critic, out.local),
            ("global_mi", self.global_critic, out.conv),
        ) if critic is not None]

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
                "it is built when the model is built (build_model), so build a new model "
                "with that term on."
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

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skdim.nn.objective import frozen_batchnorm_stats
    >>> bn = nn.BatchNorm1d(3)
    >>> with frozen_batchnorm_stats(bn):
    ...     _ = bn(torch.randn(8, 3) + 5)
    >>> bn.running_mean.tolist(), int(bn.num_batches_tracked)
    ([0.0, 0.0, 0.0], 0)
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
    """The prior discriminator of paper table 10 (``64-1000-200-1``).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.objective import build_discriminator
    >>> tuple(build_discriminator(64)(torch.rand(5, 64)).shape)
    (5,)
    """
    return PriorDiscriminator(n_components)


class _CheckedEncoder(nn.Module):
    """Wraps a user-supplied encoder so that it always returns EncoderOutput."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x):
        return validate_encoder_output(self.module(x), x.shape[0])


def build_model(
    in_channels: int,
    input_shape: tuple[int, ...],
    *,
    n_components: int = 64,
    encoder: str | Callable[[int, tuple[int, ...], int], nn.Module] = "auto",
    local_layer: int | None = None,
    config: DIMConfig = DIMConfig(),
    local_critic: str = "dot",
    critic_units: int = 512,
    seed: int = 0,
) -> tuple[DIMObjective, PriorDiscriminator | None]:
    """Build the encoder, the critics the active terms need and the prior discriminator.

    Initialisation draws from explicit generators seeded with ``seed``,
    ``seed + 1`` (critics) and ``seed + 2`` (discriminator); the global torch
    generator is not used (see :mod:`skdim.nn.seeding`).

    Parameters
    ----------
    in_channels : int
        Channels of one input.
    input_shape : tuple of int
        ``(H, W)`` for images, ``(L,)`` for signals.
    n_components : int, default=64
        Size of the code ``Y``.
    encoder : str or callable, default="auto"
        A name of :func:`~skdim.nn.encoders.build_encoder`, ``"crops"``
        (:func:`~skdim.nn.crops.build_crop_encoder`), or a factory
        ``factory(in_channels, input_shape, n_components) -> nn.Module`` whose
        module returns ``(local, conv, fc, y)``. ``"auto"`` with
        ``config.multiple_globals`` builds ``"crops"``.
    local_layer : int, default=None
        Block of the local feature map (built-in encoders only).
    config : DIMConfig, default=DIMConfig()
        Which terms are active: a critic whose weight is zero is not built.
    local_critic : {"dot", "concat"}, default="dot"
    critic_units : int, default=512
    seed : int, default=0

    Returns
    -------
    objective : DIMObjective
    discriminator : PriorDiscriminator or None
        None when ``config.gamma == 0``.

    Examples
    --------
    >>> from skdim.nn.objective import DIMConfig, build_model
    >>> objective, disc = build_model(1, (8, 8), n_components=16, critic_units=32)
    >>> objective.local_critic is not None, objective.global_critic is None, disc is not None
    (True, True, True)
    """
    if local_critic not in LOCAL_CRITICS:
        raise ValueError(f"local_critic must be one of {LOCAL_CRITICS}; got {local_critic!r}.")

    def make_encoder():
        if callable(encoder):
            return _CheckedEncoder(encoder(in_channels, input_shape, n_components))
        if encoder == CROPS_ENCODER or (config.multiple_globals and encoder == "auto"):
            return build_crop_encoder(in_channels, input_shape, n_components, local_layer)
        return build_encoder(encoder, in_channels, input_shape, n_components, local_layer)

    if not callable(encoder) and encoder not in ENCODERS + (CROPS_ENCODER,):
        raise ValueError(f"encoder must be one of {ENCODERS + (CROPS_ENCODER,)} or a callable; "
                         f"got {encoder!r}.")
    if config.multiple_globals and isinstance(encoder, str) and encoder not in ("auto", CROPS_ENCODER):
        raise ValueError(
            f"multiple_globals=True needs the strided-crop encoder (encoder='crops' or "
            f"'auto'); got encoder={encoder!r}."
        )
    module = build_seeded(seed, make_encoder)
    shapes = feature_shapes(module, in_channels, input_shape)
    if shapes.y[1] != n_components:
        raise ValueError(
            f"The encoder returns codes of size {shapes.y[1]}, but n_components={n_components}."
        )
    objective = build_seeded(
        seed + 1,
        lambda: DIMObjective(
            module, shapes, n_components,
            use_local=config.beta > 0,
            use_global=config.alpha > 0,
            local_critic=local_critic,
            critic_units=int(critic_units),
            coordinates=config.coordinate_weight > 0,
            relative_coordinates=config.relative_coordinate_weight > 0,
            multiple_globals=config.multiple_globals,
        ),
    )
    disc = build_seeded(seed + 2, lambda: build_discriminator(n_components)) if config.gamma > 0 else None
    return objective, disc


def autocast(device: torch.device, precision: str):
    """Mixed precision context: bf16 autocast keeps float32 master weights.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.objective import autocast
    >>> with autocast(torch.device("cpu"), "bfloat16"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
