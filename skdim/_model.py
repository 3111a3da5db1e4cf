"""The fitted model behind DeepInfoMax: its architecture, its parts, and encoding with it.

The estimator keeps a :class:`ModelSpec` (what the architecture is built
from) and a :class:`~skdim.nn.trainer.DIMTrainer` (the trained state). The
spec rebuilds the same modules when an estimator is unpickled, so pickles,
checkpoints and rollbacks all carry one format: the trainer's
``state_dict``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch
from torch import nn

from ._data import Layout, standardize
from .nn.encoders import feature_shapes
from .nn.objective import DIMConfig, build_model
from .nn.trainer import DIMTrainer

# Encoding batches hold at most this many float32 input values (~64 MiB).
_ENCODE_VALUES = 16 << 20
_ENCODE_ROWS = 256


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of a DIM model: input shape and the estimator's model parameters."""

    in_channels: int
    input_shape: tuple[int, ...]
    n_components: int
    encoder: str | Callable
    local_layer: int | None
    local_critic: str
    critic_units: int
    config: tuple  # DIMConfig fields at build time: which critics exist

    @classmethod
    def of(cls, estimator, layout: Layout, config: DIMConfig) -> "ModelSpec":
        return cls(layout.in_channels, tuple(layout.spatial), int(estimator.n_components),
                   estimator.encoder, estimator.local_layer, estimator.local_critic,
                   int(estimator.critic_units), tuple(sorted(config.to_dict().items())))

    def changed(self, other: "ModelSpec") -> list[str]:
        """Names of the architecture fields (not the objective's weights) that differ."""
        return [f.name for f in fields(self)
                if f.name != "config" and getattr(self, f.name) != getattr(other, f.name)]

    def build(self, seed: int, config: DIMConfig | None = None):
        """``(objective, discriminator)`` as built for ``config`` (default: the spec's)."""
        return build_model(
            self.in_channels, self.input_shape, n_components=self.n_components,
            encoder=self.encoder, local_layer=self.local_layer,
            config=DIMConfig(**dict(self.config)) if config is None else config,
            local_critic=self.local_critic, critic_units=self.critic_units, seed=seed,
        )

    def trainer(self, seed: int, learning_rate: float) -> DIMTrainer:
        objective, disc = self.build(seed)
        return DIMTrainer(objective, disc, DIMConfig(**dict(self.config)),
                          learning_rate=learning_rate, seed=seed)

    def encoder_only(self) -> nn.Module:
        """The encoder alone (no critics), to receive saved weights."""
        return self.build(0, DIMConfig(alpha=0.0, beta=0.0, gamma=0.0))[0].encoder

    def feature_sizes(self, encoder: nn.Module) -> dict[str, int]:
        shapes = feature_shapes(encoder, self.in_channels, self.input_shape)
        return {"y": int(shapes.y[1]), "fc": int(shapes.fc[1]), "conv": int(np.prod(shapes.conv[1:]))}


def fitted_modules(trainer: DIMTrainer | None, encoder: nn.Module, spec: ModelSpec,
                   sizes: dict | None = None) -> dict:
    """The fitted attributes that hold modules, all in eval mode."""
    critics = nn.ModuleDict()
    if trainer is not None:
        for name, module in (("local", trainer.objective.local_critic),
                             ("global", trainer.objective.global_critic),
                             ("prior", trainer.discriminator)):
            if module is not None:
                critics[name] = module
    return {"_trainer": trainer, "_spec": spec,
            "_feature_sizes": spec.feature_sizes(encoder) if sizes is None else sizes,
            "encoder_": encoder.eval(), "critics_": critics.eval()}


def lean_copy(encoder: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}


def encode(encoder: nn.Module, X, layout: Layout, mean, std, layer: str, n_out: int,
           device: torch.device, min_batch: int) -> np.ndarray:
    """``layer`` features of every row of ``X``, batch by batch, read-only.

    The encoder must be in eval mode; it is never modified (a non-CPU device
    gets a private copy), so concurrent calls are safe.
    """
    if device.type != "cpu":
        encoder = copy.deepcopy(encoder).to(device)
    row_values = max(1, int(np.prod(X.shape[1:])))
    batch = max(min_batch, min(_ENCODE_ROWS, _ENCODE_VALUES // row_values))
    out = np.empty((X.shape[0], n_out), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch):
            xb = standardize(X[start : start + batch], layout, mean, std, device)
            out[start : start + batch] = getattr(encoder(xb), layer).flatten(1).float().cpu().numpy()
    if not np.isfinite(out).all():
        raise FloatingPointError(
            "The encoder produced non-finite features; the input is far outside "
            "the range seen during fit or the model diverged."
        )
    return out
