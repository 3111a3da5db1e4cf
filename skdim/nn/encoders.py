"""Convolutional encoders for Deep InfoMax.

Every encoder maps a batch of inputs ``x`` of shape ``(B, C, H, W)`` (images)
or ``(B, C, L)`` (1-D signals) to an :class:`EncoderOutput` with four views of
the same forward pass:

``local`` : ``(B, C_local, *S_local)``
    The feature map used by the local MI objective (one location per spatial
    position).
``conv`` : ``(B, C_conv, *S_conv)``
    The output of the *last* convolutional layer, which the global critic
    reads (Hjelm et al. 2019, appendix A.2) and one of the three evaluation
    layers ("conv").
``fc`` : ``(B, F)``
    The last fully connected hidden layer (the "fc" evaluation layer).
``y`` : ``(B, n_components)``
    The code ``Y``: a linear layer with no batch norm and no activation.

Built-in encoders (``ENCODERS``), all made of convolutional blocks
``Conv (no bias) -> BatchNorm -> ReLU`` followed by fully connected blocks
``Linear (no bias) -> BatchNorm1d -> ReLU`` and a final ``Linear`` for ``Y``:

``"dcgan"``
    The paper's encoder for 32x32 images: conv 64, 128, 256 (4x4, stride 2,
    pad 1) giving 64x16x16, 128x8x8, 256x4x4; fc 1024. Default local map:
    block 1 (128x8x8).
``"alexnet"``
    The paper's encoder for 64x64 images: conv 96, 192, 384, 384, 192 (3x3,
    pad 1) with a 3x3 stride-2 max-pool after blocks 0, 1 and 4; fc 4096,
    4096. Default local map: block 2 (384x15x15); ``conv`` is 192x7x7.
``"mnist"``
    The official release's 28x28 encoder: conv 64, 128 (5x5, stride 2, pad 2)
    giving 64x14x14, 128x7x7; fc 1024. Default local map: block 1 (128x7x7),
    the same map as ``conv``.
``"conv"``
    A size-agnostic 2-D encoder in the style of ``"dcgan"`` for any image
    size from 1x1 up, square or not. Block ``i`` has ``min(64 * 2**i, 512)``
    channels. Each axis is halved (kernel 4, stride 2, pad 1) while it is
    longer than 4 and kept (kernel 3, stride 1, pad 1) otherwise, so no
    kernel is larger than its padded input, except that the first block
    keeps every axis shorter than 32 (a full-resolution stem for small
    inputs; see :func:`conv_plan`). There are at least 3 blocks, and
    more when needed to bring every axis down to 4 or less: 32x32 gives
    16, 8, 4 (exactly ``"dcgan"``'s shapes), 8x8 gives 8, 4, 4 (a 64-location
    local map for small digits), 16x16 gives 16, 8, 4, 28x28 gives
    28, 14, 7, 3 and 96x96 gives 48, 24, 12, 6, 3. Default local map: the
    next-to-last block (the best choice for CIFAR-10 in the paper), or a
    shallower one where that block would see more than half of the input
    (see :func:`default_local_layer`): block 0 for 8x8 digits, whose
    next-to-last block sees 6 of 8 pixels.
``"conv1d"``
    The same design with ``Conv1d``/``BatchNorm1d`` for signals of any length
    ``L >= 1``, including the 1..10-feature tabular arrays of scikit-learn's
    ``check_estimator`` (seen as 1-channel signals of length ``d``).
``"auto"``
    ``"dcgan"`` for 32x32, ``"alexnet"`` for 64x64, ``"mnist"`` for 28x28,
    ``"conv"`` for any other image size and ``"conv1d"`` for signals.

The fc layer of ``"conv"`` and ``"conv1d"`` has ``min(1024, n_flat)`` units,
where ``n_flat`` is the size of the flattened last conv map: a hidden layer
wider than its input buys little for tiny inputs and slows the tabular case.
The paper encoders are exact.

Custom encoders
---------------
Instead of a name, a user may give the estimator a factory::

    factory(in_channels: int, input_shape: tuple[int, ...], n_components: int) -> nn.Module

whose module's ``forward(x)`` returns an :class:`EncoderOutput` or a plain
tuple ``(local, conv, fc, y)`` with the shapes above (``local`` and ``conv``
of rank >= 3, ``fc`` and ``y`` of rank 2, all with the batch as leading
dimension). :func:`validate_encoder_output` checks such an output and
:func:`feature_shapes` measures it; :func:`build_encoder` only builds the
named encoders.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "ENCODERS",
    "ConvEncoder",
    "EncoderOutput",
    "build_encoder",
    "conv_plan",
    "default_local_layer",
    "feature_shapes",
    "validate_encoder_output",
]

ENCODERS: tuple[str, ...] = ("auto", "dcgan", "alexnet", "mnist", "conv", "conv1d")

# Fixed input sizes of the paper encoders; "auto" picks them by size.
_FIXED_SIZES: dict[str, tuple[int, int]] = {
    "dcgan": (32, 32),
    "alexnet": (64, 64),
    "mnist": (28, 28),
}
_MAX_WIDTH = 512
_MIN_BLOCKS = 3
# The size-agnostic encoders halve an axis while it is longer than this ...
_TARGET_SIDE = 4
# ... except in the first block, which halves only axes at least this long.
_STEM_SIDE = 32


class EncoderOutput(NamedTuple):
    """The four views of one encoder forward pass (see the module docstring).

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.encoders import EncoderOutput
    >>> out = EncoderOutput(local=torch.zeros(2, 8, 4, 4), conv=torch.zeros(2, 16, 2, 2),
    ...                     fc=torch.zeros(2, 32), y=torch.zeros(2, 3))
    >>> EncoderOutput._fields
    ('local', 'conv', 'fc', 'y')
    >>> local, conv, fc, y = out  # a NamedTuple: unpacks like a plain tuple
    >>> tuple(out.y.shape)
    (2, 3)
    """

    local: Tensor
    conv: Tensor
    fc: Tensor
    y: Tensor


class ConvEncoder(nn.Module):
    """Convolutional blocks, then fully connected blocks, then a linear code.

    Parameters
    ----------
    blocks : sequence of nn.Module
        The convolutional blocks, applied in order. The output of the last one
        is ``conv``; the output of ``blocks[local_layer]`` is ``local``.
    fc : nn.Module
        Maps the flattened ``conv`` map to the fc layer ``(B, F)``.
    head : nn.Module
        Maps the fc layer to the code ``Y``.
    in_channels : int
        Number of input channels.
    input_shape : tuple of int
        Spatial shape of the input, checked in :meth:`forward`.
    local_layer : int
        Index (negative allowed) of the block whose output is ``local``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skdim.nn.encoders import ConvEncoder
    >>> blocks = [nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, stride=2, padding=1)]
    >>> encoder = ConvEncoder(blocks, fc=nn.Linear(8 * 4 * 4, 16), head=nn.Linear(16, 2),
    ...                       in_channels=1, input_shape=(8, 8), local_layer=0)
    >>> out = encoder(torch.zeros(5, 1, 8, 8))
    >>> [tuple(t.shape) for t in out]  # local, conv, fc, y
    [(5, 4, 8, 8), (5, 8, 4, 4), (5, 16), (5, 2)]
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        fc: nn.Module,
        head: nn.Module,
        in_channels: int,
        input_shape: tuple[int, ...],
        local_layer: int,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.fc = fc
        self.head = head
        self.in_channels = in_channels
        self.input_shape = tuple(input_shape)
        self.local_index = _resolve_local_layer(local_layer, len(self.blocks))

    def forward(self, x: Tensor) -> EncoderOutput:
        expected = (self.in_channels, *self.input_shape)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"This encoder was built for inputs of shape (batch, {', '.join(map(str, expected))}); "
                f"got {tuple(x.shape)}."
            )
        local = None
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.local_index:
                local = h
        fc = self.fc(h.flatten(1))
        return EncoderOutput(local, h, fc, self.head(fc))

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, local_layer={self.local_index}"


# ---------------------------------------------------------------------------
# Building blocks


def _conv_block(
    dim: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...],
    padding: int | tuple[int, ...],
    pool: bool = False,
) -> nn.Sequential:
    conv_cls, bn_cls = (nn.Conv1d, nn.BatchNorm1d) if dim == 1 else (nn.Conv2d, nn.BatchNorm2d)
    # No conv bias: the BatchNorm that follows subtracts the mean and would cancel it.
    layers: list[nn.Module] = [
        conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
        bn_cls(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    return nn.Sequential(*layers)


def _fc_stack(n_in: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(n_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        n_in = width
    return nn.Sequential(*layers)


def conv_plan(input_shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Kernel, stride and padding per block of the size-agnostic encoders.

    Each axis longer than 4 is halved (kernel 4, stride 2, pad 1); a shorter
    axis keeps its size (kernel 3, stride 1, pad 1). Blocks are added until
    every axis is 4 or less, with at least 3 blocks. The first block halves
    only axes of 32 or more: a small input keeps its full resolution in
    block 0, so its local map is finer (8x8 digits: 64 positions instead of
    16) and deeper blocks see finer features. At equal CPU time this stem
    raised the linear probe of 8x8 digits from 97.4% to 98.4% (3 seeds), of
    12x12 grayscale CIFAR-10 from 38.9% to 41.9%, of 16x16 from 39.9% to
    44.1% and of signals of length 24 from 90.6% to 92.7% (2 seeds;
    ``benchmarks/bench_stem.py``, see the defaults study).

    Parameters
    ----------
    input_shape : tuple of int
        Spatial shape, ``(H, W)`` or ``(L,)``.

    Returns
    -------
    plan : list of (kernel, stride, padding)
        One entry per block, each a tuple with one int per axis.

    Examples
    --------
    >>> from skdim.nn.encoders import conv_plan
    >>> for kernel, stride, padding in conv_plan((8, 8)):  # 8x8 -> 8x8 -> 4x4 -> 4x4
    ...     print(kernel, stride, padding)
    (3, 3) (1, 1) (1, 1)
    (4, 4) (2, 2) (1, 1)
    (3, 3) (1, 1) (1, 1)
    >>> len(conv_plan((96, 96)))  # 48, 24, 12, 6, 3
    5
    """
    sides = list(input_shape)
    plan = []
    while len(plan) < _MIN_BLOCKS or max(sides) > _TARGET_SIDE:
        limit = _STEM_SIDE - 1 if not plan else _TARGET_SIDE
        halve = [s > limit for s in sides]
        kernel = tuple(4 if h else 3 for h in halve)
        stride = tuple(2 if h else 1 for h in halve)
        padding = tuple(1 for _ in halve)
        plan.append((kernel, stride, padding))
        # k=4, s=2, p=1 gives floor(s / 2); k=3, s=1, p=1 keeps the size.
        sides = [s // 2 if h else s for s, h in zip(sides, halve)]
    return plan


# ---------------------------------------------------------------------------
# The encoders


def _dcgan(in_channels: int, input_shape: tuple[int, ...], n_components: int, local_layer: int) -> ConvEncoder:
    widths = (64, 128, 256)
    blocks = [_conv_block(2, c_in, c_out, 4, 2, 1) for c_in, c_out in zip((in_channels, *widths), widths)]
    fc = _fc_stack(256 * 4 * 4, (1024,))
    return ConvEncoder(blocks, fc, nn.Linear(1024, n_components), in_channels, input_shape, local_layer)


def _alexnet(in_channels: int, input_shape: tuple[int, ...], n_components: int, local_layer: int) -> ConvEncoder:
    widths = (96, 192, 384, 384, 192)
    pools = (True, True, False, False, True)
    blocks = [
        _conv_block(2, c_in, c_out, 3, 1, 1, pool=pool)
        for c_in, c_out, pool in zip((in_channels, *widths), widths, pools)
    ]
    fc = _fc_stack(192 * 7 * 7, (4096, 4096))
    return ConvEncoder(blocks, fc, nn.Linear(4096, n_components), in_channels, input_shape, local_layer)


def _mnist(in_channels: int, input_shape: tuple[int, ...], n_components: int, local_layer: int) -> ConvEncoder:
    # 5x5 / stride 2 / pad 2 as in the official release: 28 -> 14 -> 7.
    blocks = [_conv_block(2, in_channels, 64, 5, 2, 2), _conv_block(2, 64, 128, 5, 2, 2)]
    fc = _fc_stack(128 * 7 * 7, (1024,))
    return ConvEncoder(blocks, fc, nn.Linear(1024, n_components), in_channels, input_shape, local_layer)


def _size_agnostic(
    in_channels: int, input_shape: tuple[int, ...], n_components: int, local_layer: int
) -> ConvEncoder:
    dim = len(input_shape)
    blocks = []
    c_in = in_channels
    plan = conv_plan(input_shape)
    for i, (kernel, stride, padding) in enumerate(plan):
        c_out = min(64 * 2**i, _MAX_WIDTH)
        blocks.append(_conv_block(dim, c_in, c_out, kernel, stride, padding))
        c_in = c_out
    sides = input_shape
    for _, stride, _ in plan:
        sides = tuple(s // st for s, st in zip(sides, stride))
    n_flat = c_in * math.prod(sides)
    width = min(1024, n_flat)
    fc = _fc_stack(n_flat, (width,))
    return ConvEncoder(blocks, fc, nn.Linear(width, n_components), in_channels, input_shape, local_layer)


def default_local_layer(
    input_shape: tuple[int, ...],
    plan: Sequence[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] | None = None,
) -> int:
    """The local block that ``"conv"``/``"conv1d"`` use when ``local_layer=None``.

    The next-to-last block, unless its receptive field is wider than half of
    the input on some axis; then the deepest block whose field fits (block 0
    if none does). Local DIM scores the code against features of *parts* of
    the input: a local map whose every location sees the whole input turns
    it into a second global objective. The paper's local maps see 10 of 32
    pixels ("dcgan") and 13 of 28 (the official "mnist" encoder). On 8x8
    digits the next-to-last block saw all 8 pixels before the stem of
    :func:`conv_plan`; moving to block 0 (4 of 8) raised the linear probe
    from 96.0% to 97.7% (mean of 3 seeds, 36 CPU-s each,
    ``benchmarks/bench_defaults.py`` protocol). With the stem, block 1 sees
    6 of 8 pixels and block 0 (3 of 8) stays the local map.

    Parameters
    ----------
    input_shape : tuple of int
        Spatial shape, ``(H, W)`` or ``(L,)``.
    plan : list of (kernel, stride, padding), default=None
        The blocks to choose from, as :func:`conv_plan` returns them (for a
        custom encoder of the same kind); None: ``conv_plan(input_shape)``.

    Returns
    -------
    block : int
        Index (from 0) of the block of ``plan`` whose output is the local
        map.

    Examples
    --------
    >>> from skdim.nn.encoders import default_local_layer
    >>> default_local_layer((32, 32)), default_local_layer((8, 8)), default_local_layer((128,))
    (1, 0, 3)
    """
    if plan is None:
        plan = conv_plan(input_shape)
    field, jump = [1] * len(input_shape), [1] * len(input_shape)
    fits = []
    for kernel, stride, _ in plan:
        field = [f + (k - 1) * j for f, k, j in zip(field, kernel, jump)]
        jump = [j * s for j, s in zip(jump, stride)]
        fits.append(all(2 * f <= side for f, side in zip(field, input_shape)))
    deepest = len(plan) - 2
    return next((i for i in range(deepest, -1, -1) if fits[i]), 0)


# name -> (builder, default local block; None: default_local_layer(input_shape))
_BUILDERS = {
    "dcgan": (_dcgan, 1),
    "alexnet": (_alexnet, 2),
    "mnist": (_mnist, -1),
    "conv": (_size_agnostic, None),
    "conv1d": (_size_agnostic, None),
}


def _resolve_local_layer(local_layer: int, n_blocks: int) -> int:
    # numbers.Integral also admits NumPy integers, e.g. from a parameter grid.
    if isinstance(local_layer, bool) or not isinstance(local_layer, numbers.Integral):
        raise TypeError(f"local_layer must be an int or None, got {local_layer!r}.")
    local_layer = int(local_layer)
    if not -n_blocks <= local_layer < n_blocks:
        raise ValueError(
            f"local_layer={local_layer} is out of range for an encoder with {n_blocks} "
            f"convolutional blocks; valid values are {-n_blocks} to {n_blocks - 1} (or None)."
        )
    return local_layer % n_blocks


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def build_encoder(
    name: str,
    in_channels: int,
    input_shape: tuple[int, ...],
    n_components: int,
    local_layer: int | None = None,
) -> nn.Module:
    """Build a named encoder.

    Parameters
    ----------
    name : {"auto", "dcgan", "alexnet", "mnist", "conv", "conv1d"}
        Which encoder to build (see the module docstring).
    in_channels : int
        Number of input channels ``C``.
    input_shape : tuple of int
        Spatial shape: ``(H, W)`` for images, ``(L,)`` for 1-D signals.
    n_components : int
        Size of the code ``Y``.
    local_layer : int, default=None
        Index of the convolutional block whose output is the local feature
        map (negative values count from the end). None uses the encoder's
        default: 1 for "dcgan", 2 for "alexnet", -1 for "mnist" and
        :func:`default_local_layer` for "conv" and "conv1d" (next-to-last
        unless that block sees more than half of the input).

    Returns
    -------
    encoder : ConvEncoder
        A module whose ``forward(x)`` returns an :class:`EncoderOutput`.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.encoders import build_encoder
    >>> encoder = build_encoder("auto", in_channels=1, input_shape=(6,), n_components=4)
    >>> out = encoder(torch.zeros(2, 1, 6))  # "auto" picks "conv1d" for signals
    >>> tuple(out.local.shape), tuple(out.conv.shape), tuple(out.y.shape)
    ((2, 64, 6), (2, 256, 3), (2, 4))
    >>> encoder = build_encoder("conv", 3, (8, 8), n_components=16, local_layer=0)
    >>> tuple(encoder(torch.zeros(2, 3, 8, 8)).local.shape)  # block 0 (the stem) as the local map
    (2, 64, 8, 8)
    """
    if not isinstance(name, str):
        raise TypeError(
            f"build_encoder takes an encoder name, one of {ENCODERS}; got {type(name).__name__}. "
            "Pass a custom encoder factory to the estimator instead."
        )
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; expected one of {ENCODERS}.")
    in_channels = _check_positive_int(in_channels, "in_channels")
    n_components = _check_positive_int(n_components, "n_components")
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        input_shape = None
    if not input_shape or len(input_shape) > 2:
        raise ValueError(f"input_shape must be (H, W) or (L,), got {input_shape!r}.")
    input_shape = tuple(_check_positive_int(side, "every entry of input_shape") for side in input_shape)

    if name == "auto":
        if len(input_shape) == 1:
            name = "conv1d"
        else:
            name = next((k for k, size in _FIXED_SIZES.items() if size == input_shape), "conv")
    if name in _FIXED_SIZES and input_shape != _FIXED_SIZES[name]:
        h, w = _FIXED_SIZES[name]
        raise ValueError(
            f"encoder={name!r} requires {h}x{w} inputs, got input_shape={input_shape}; "
            "use encoder='auto' to pick an encoder that fits this size."
        )
    if name == "conv" and len(input_shape) != 2:
        raise ValueError(
            f"encoder='conv' takes 2-D images (H, W), got input_shape={input_shape}; "
            "use encoder='conv1d' (or 'auto') for 1-D signals."
        )
    if name == "conv1d" and len(input_shape) != 1:
        raise ValueError(
            f"encoder='conv1d' takes 1-D signals (L,), got input_shape={input_shape}; "
            "use encoder='conv' (or 'auto') for images."
        )
    builder, default_local = _BUILDERS[name]
    if local_layer is None:
        local_layer = default_local_layer(input_shape) if default_local is None else default_local
    return builder(in_channels, input_shape, n_components, local_layer)


def validate_encoder_output(out: object, batch_size: int, n_components: int | None = None) -> EncoderOutput:
    """Check what an encoder returned and convert it to an :class:`EncoderOutput`.

    Parameters
    ----------
    out : EncoderOutput or tuple of 4 tensors
        The encoder's output ``(local, conv, fc, y)``.
    batch_size : int
        Expected leading dimension of every tensor.
    n_components : int, default=None
        If given, the expected size of ``y``'s second dimension.

    Returns
    -------
    out : EncoderOutput

    Raises
    ------
    TypeError
        If ``out`` is not a 4-tuple of floating point tensors.
    ValueError
        If a tensor has the wrong rank or leading dimension.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.encoders import validate_encoder_output
    >>> raw = (torch.zeros(2, 8, 4, 4), torch.zeros(2, 16, 2, 2),  # a plain tuple
    ...        torch.zeros(2, 32), torch.zeros(2, 3))
    >>> out = validate_encoder_output(raw, batch_size=2, n_components=3)
    >>> type(out).__name__, tuple(out.y.shape)
    ('EncoderOutput', (2, 3))
    >>> validate_encoder_output(raw, batch_size=2, n_components=4)
    Traceback (most recent call last):
    ...
    ValueError: Encoder output 'y' has 3 features, expected n_components=4.
    """
    fields = EncoderOutput._fields
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        got = f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        raise TypeError(
            f"An encoder must return an EncoderOutput or a tuple (local, conv, fc, y) of 4 tensors; got {got}."
        )
    for name, t in zip(fields, out):
        if not isinstance(t, Tensor):
            raise TypeError(f"Encoder output {name!r} must be a torch.Tensor, got {type(t).__name__}.")
        if not t.is_floating_point():
            raise TypeError(f"Encoder output {name!r} must be a floating point tensor, got dtype {t.dtype}.")
    for name, t in zip(fields, out):
        if name in ("local", "conv") and t.ndim < 3:
            raise ValueError(
                f"Encoder output {name!r} must be a feature map of shape (batch, channels, *spatial) "
                f"(rank >= 3), got shape {tuple(t.shape)}."
            )
        if name in ("fc", "y") and t.ndim != 2:
            raise ValueError(f"Encoder output {name!r} must have shape (batch, features), got {tuple(t.shape)}.")
        if t.shape[0] != batch_size:
            raise ValueError(
                f"Encoder output {name!r} has leading dimension {t.shape[0]}, expected the batch size {batch_size}."
            )
    out = EncoderOutput(*out)
    if n_components is not None and out.y.shape[1] != n_components:
        raise ValueError(f"Encoder output 'y' has {out.y.shape[1]} features, expected n_components={n_components}.")
    return out


def feature_shapes(encoder: nn.Module, in_channels: int, input_shape: tuple[int, ...]) -> EncoderOutput:
    """Shapes of an encoder's outputs, measured with a dummy forward pass.

    Runs the encoder in eval mode under ``no_grad`` on a batch of two zero
    inputs (on the device and dtype of its parameters) and restores every
    submodule's training mode afterwards. Works for built-in and custom
    encoders.

    Parameters
    ----------
    encoder : nn.Module
        The encoder.
    in_channels : int
        Number of input channels.
    input_shape : tuple of int
        Spatial shape of one input.

    Returns
    -------
    shapes : EncoderOutput of torch.Size
        The full shapes, batch dimension (2) included.

    Examples
    --------
    >>> from skdim.nn.encoders import build_encoder, feature_shapes
    >>> encoder = build_encoder("conv", in_channels=3, input_shape=(8, 8), n_components=16)
    >>> shapes = feature_shapes(encoder, 3, (8, 8))
    >>> tuple(shapes.local), tuple(shapes.conv), tuple(shapes.fc), tuple(shapes.y)
    ((2, 64, 8, 8), (2, 256, 4, 4), (2, 1024), (2, 16))
    >>> encoder.training  # the training mode is restored
    True
    """
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    modes = [(m, m.training) for m in encoder.modules()]
    try:
        encoder.eval()
        with torch.no_grad():
            out = encoder(torch.zeros(2, in_channels, *input_shape, device=device, dtype=dtype))
    finally:
        for module, mode in modes:
            module.training = mode
    out = validate_encoder_output(out, 2)
    return EncoderOutput(*(t.shape for t in out))
