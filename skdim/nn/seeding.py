"""Seeded construction of modules without touching torch's global generator.

PyTorch initialises a layer's parameters from the *global* random generator
as the layer is constructed. Seeding that generator -- even inside
:func:`torch.random.fork_rng` -- races with every other thread of the
process: two models built at once in two threads draw from one stream, and
code in a third thread receives numbers from the seeded stream. Here every
draw comes from an explicit :class:`torch.Generator` instead:

* :func:`build_seeded` constructs a module on the ``meta`` device (no
  memory, no random draws), then materialises it on the CPU and initialises
  each layer with PyTorch's default rule (the same distributions, in the same
  order as at construction), drawing from a generator seeded with ``seed``.
  For the standard layers the values are bit for bit those of
  ``torch.manual_seed(seed)`` followed by ordinary construction.
* Modules with parameters of a kind it does not know (a custom layer with
  its own initialisation code) cannot be initialised that way; they are
  built for real with the global generator forked and seeded, under a
  process-wide lock, so that concurrent seeded builds cannot interleave. Only
  such custom modules take that path, and the global generator's state is
  restored afterwards.
"""

from __future__ import annotations

import math
import threading
from typing import Callable, TypeVar

import torch
from torch import nn

__all__ = ["seeded_generator", "build_seeded", "reset_parameters_", "SeededDropout"]

M = TypeVar("M", bound=nn.Module)

_GLOBAL_RNG_LOCK = threading.Lock()
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
# Layers whose initialisation draws nothing or that have no parameters.
_NO_DRAWS = _NORMS + (nn.ReLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Flatten, nn.Dropout,
                      nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                      nn.Sequential, nn.ModuleList, nn.ModuleDict)


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A new :class:`torch.Generator` on ``device`` seeded with ``seed``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.seeding import seeded_generator
    >>> a = torch.rand(3, generator=seeded_generator(0))
    >>> bool(torch.equal(a, torch.rand(3, generator=seeded_generator(0))))
    True
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _bias_bound(weight: torch.Tensor) -> float:
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _reset_layer(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``reset_parameters`` of one layer, drawing from ``generator``."""
    if isinstance(module, (nn.Linear, nn.Bilinear) + _CONVS):
        nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        if module.bias is not None:
            bound = _bias_bound(module.weight)
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, generator=generator)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].fill_(0)
    elif isinstance(module, _NORMS):
        module.reset_parameters()  # constants only
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            module.reset_running_stats()


def _known(module: nn.Module) -> bool:
    """Whether every parameter-holding layer of ``module`` is one we can seed."""
    for sub in module.modules():
        own = list(sub.parameters(recurse=False)) + list(sub.buffers(recurse=False))
        if own and not isinstance(sub, (nn.Linear, nn.Bilinear, nn.Embedding) + _CONVS + _NORMS):
            return False
    return True


def reset_parameters_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every standard layer of ``module`` in place from ``generator``.

    Layers are visited in registration order (the order in which ordinary
    construction initialises them) with PyTorch's default rules. Returns
    ``module``.

    Raises
    ------
    TypeError
        If ``module`` holds parameters of a layer type without a known rule.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skdim.nn.seeding import reset_parameters_, seeded_generator
    >>> a = reset_parameters_(nn.Linear(3, 2), seeded_generator(0))
    >>> b = reset_parameters_(nn.Linear(3, 2), seeded_generator(0))
    >>> bool(torch.equal(a.weight, b.weight))
    True
    """
    if not _known(module):
        raise TypeError(
            f"{type(module).__name__} holds parameters of a layer type without a known "
            "initialisation rule; build it with build_seeded instead."
        )
    with torch.no_grad():
        for sub in module.modules():
            _reset_layer(sub, generator)
    return module


def _materialize(module: nn.Module, generator: torch.Generator) -> None:
    """Allocate and initialise the layers left on the meta device, in order.

    Layers that already hold real tensors (e.g. an encoder passed into the
    factory) are left untouched and draw nothing.
    """
    for sub in module.modules():
        own = list(sub.parameters(recurse=False)) + list(sub.buffers(recurse=False))
        if any(t.is_meta for t in own):
            sub.to_empty(device="cpu", recurse=False)
            with torch.no_grad():
                _reset_layer(sub, generator)


def build_seeded(seed: int, factory: Callable[[], M]) -> M:
    """Call ``factory()`` and initialise what it builds from ``seed``.

    The global torch generator is neither read nor changed for modules made
    of standard layers (linear, convolution, embedding, normalisation); see
    the module docstring for custom layers. The result is on the CPU.

    Parameters
    ----------
    seed : int
        Seed of the initialisation.
    factory : callable
        Builds the module; it may capture modules that already exist (they
        are kept as they are).

    Returns
    -------
    module : torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skdim.nn.seeding import build_seeded
    >>> state = torch.get_rng_state()
    >>> a = build_seeded(0, lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> b = build_seeded(0, lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> bool(torch.equal(a[0].weight, b[0].weight)), bool(torch.equal(state, torch.get_rng_state()))
    (True, True)
    """
    generator = seeded_generator(seed)
    try:
        with torch.device("meta"):
            module = factory()
    except Exception:
        module = None  # the factory needs real tensors: build it for real below
    if module is not None and _known(module):
        _materialize(module, generator)
        return module
    # Custom layers initialise themselves from the global generator.
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(seed))
        return factory()


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from a private generator.

    ``nn.Dropout`` draws its masks from the global generator, so two models
    trained at once in two threads would share (and perturb) one stream.

    Parameters
    ----------
    p : float
        Probability of zeroing an element.
    generator : torch.Generator
        Source of the masks, on the device of the inputs.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.seeding import SeededDropout, seeded_generator
    >>> drop = SeededDropout(0.5, seeded_generator(0))
    >>> out = drop(torch.ones(1000))
    >>> sorted(set(out.tolist()))  # kept values are scaled by 1 / (1 - p)
    [0.0, 2.0]
    >>> bool(torch.equal(drop.eval()(torch.ones(3)), torch.ones(3)))
    True
    """

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = float(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)
