"""Private helpers shared by the evaluation tools: seeding without global
RNG state, seeded layers, minibatching and the image layout rule."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_scalar
from torch import Tensor, nn

LAYERS: tuple[str, ...] = ("conv", "fc", "y")


def seed_from(random_state) -> int:
    """An integer seed for ``random_state``, leaving global RNGs alone."""
    if random_state is None:
        # A fresh entropy source: ``check_random_state(None)`` would draw
        # from (and advance) NumPy's global RandomState.
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**32:
            raise ValueError(
                f"random_state={random_state} must be an integer in [0, 2**32 - 1], "
                "a numpy RandomState or None."
            )
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    # Let scikit-learn produce its usual error for anything else.
    return int(check_random_state(random_state).randint(2**31 - 1))


def as_device(device) -> torch.device:
    """``torch.device(device)`` with a ValueError naming what is accepted."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use e.g. 'cpu' or 'cuda'."
        ) from exc


def seeded_linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with PyTorch's default init drawn from ``generator``."""
    # skip_init builds the layer without drawing from the global RNG.
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out)
    bound = 1.0 / n_in**0.5  # == kaiming_uniform_(a=sqrt(5)), the default
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from a private generator."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A shuffled epoch of index batches; a trailing batch of one is dropped
    because BatchNorm cannot train on a single sample."""
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def check_training_params(epochs, batch_size, learning_rate) -> None:
    check_scalar(epochs, "epochs", numbers.Integral, min_val=1)
    check_scalar(batch_size, "batch_size", numbers.Integral, min_val=2)
    check_scalar(learning_rate, "learning_rate", numbers.Real, min_val=0.0,
                 include_boundaries="neither")



def images_to_nchw(images, name: str = "images") -> Tensor:
    """A float64 ``(n, C, H, W)`` tensor from a batch of images.

    The module's layout rule: 3-D is ``(n, H, W)`` grayscale; 4-D is
    ``(n, C, H, W)`` when ``shape[1] <= 4 < shape[-1]``, else ``(n, H, W, C)``.
    Values are taken as they are (no scaling).
    """
    if isinstance(images, Tensor):
        x = images.detach().cpu()
    else:
        arr = np.asarray(images)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.is_complex():
        raise TypeError(f"{name} must be real-valued, got {x.dtype}.")
    x = x.to(torch.float64)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4:
        if not (x.shape[1] <= 4 < x.shape[-1]):
            x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(
            f"{name} must be a batch of images (n, H, W), (n, H, W, C) or "
            f"(n, C, H, W); got an array of shape {tuple(x.shape)}."
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return x.contiguous()
