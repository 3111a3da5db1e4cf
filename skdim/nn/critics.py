"""Critics (MI discriminators) of Deep InfoMax and the prior discriminator.

Every MI critic scores anchor ``i`` (the code of image ``i``) against item
``j`` (image ``j``'s feature at location ``l``) and returns ``(pos, neg)`` in
the row layout of :mod:`skdim.nn.bounds`: ``pos`` of shape ``(B, L)`` holds the
pairs ``i == j``, ``neg`` of shape ``(B, N)`` the pairs with other images only.

Local feature maps are handled as matrices of shape ``(B * L, C)`` so that a
1x1 convolution is one matrix product (it is the dominant cost of local DIM).

Data-parallel training sets a critic's ``gather`` attribute to a function
``items -> (all_items, offset)`` (see :mod:`skdim._distributed`): the critic
then scores its own anchors against the items of every process, and its own
items sit at rows ``offset ...`` of ``all_items``. ``None`` (the default)
scores the local batch only.
"""

from __future__ import annotations

import torch
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from .bounds import split_pair_scores

__all__ = [
    "ResidualEmbedding",
    "LocalResidualEmbedding",
    "DotLocalCritic",
    "ConcatLocalCritic",
    "GlobalCritic",
    "PriorDiscriminator",
    "flatten_locations",
]

# items -> (items of every process, offset of this process's rows)
Gather = Callable[[Tensor], tuple[Tensor, int]]


def _gather_items(gather: Gather | None, items: Tensor) -> tuple[Tensor, int | None]:
    if gather is None:
        return items, None
    return gather(items)


def flatten_locations(feature_map: Tensor) -> Tensor:
    """``(B, C, *S) -> (B, L, C)`` with ``L = prod(S)``, channels last.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import flatten_locations
    >>> feature_map = torch.arange(24.0).reshape(2, 3, 2, 2)  # (B, C, H, W)
    >>> flat = flatten_locations(feature_map)
    >>> tuple(flat.shape)  # (B, H * W, C)
    (2, 4, 3)
    >>> flat[0, 1].tolist()  # the 3 channels of image 0 at location (0, 1)
    [1.0, 5.0, 9.0]
    """
    b, c = feature_map.shape[:2]
    return feature_map.reshape(b, c, -1).transpose(1, 2)


class _PointwiseGemm(torch.autograd.Function):
    """A 1x1 convolution of a channels-last map: convolution forward, GEMM backward.

    In bfloat16 on CPU, oneDNN's convolution forward is the fastest way to
    compute the product, but its convolution backward is markedly slower than
    the two plain GEMMs that give the same gradients (about 110 ms against
    85 ms for the 2048-unit layer at batch 64 on 2 cores; float32 is the
    other way round). In channels-last order the map is a ``(B*H*W, C)``
    matrix, so the GEMMs need no copies.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        b, c, h, w = x.shape
        units = weight.shape[0]
        g = grad.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(-1, units)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight.reshape(units, c)).reshape(b, h, w, c).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            rows = x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(-1, c)
            grad_w = (g.t() @ rows).reshape(units, c, 1, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b


def _pointwise_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` for a 1x1 ``conv``, with :class:`_PointwiseGemm` where it pays.

    That is training on CPU under bfloat16 autocast; everywhere else (float32,
    CUDA, inference) the plain convolution is the faster one.
    """
    if (
        x.device.type != "cpu"
        or not torch.is_grad_enabled()
        or not torch.is_autocast_enabled("cpu")
        or torch.get_autocast_dtype("cpu") != torch.bfloat16
    ):
        return conv(x)
    dtype = torch.bfloat16
    bias = None if conv.bias is None else conv.bias.to(dtype)
    return _PointwiseGemm.apply(x.to(dtype), conv.weight.to(dtype), bias)


class ResidualEmbedding(nn.Module):
    """Encode-and-dot-product embedding (paper tables 8 and 9).

    ``LayerNorm(W2 relu(BN(W1 x)) + Ws x)``: two layers with a ReLU and a
    linear shortcut, then LayerNorm over the block. The BatchNorm after the
    first layer follows the official release. Applied to the last axis, so the
    same module embeds the code ``(B, D)`` and all local features
    ``(B, L, C)`` -- a 1x1 convolution over all locations is one matrix
    product on ``(B * L, C)``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import ResidualEmbedding
    >>> embed = ResidualEmbedding(in_features=6, units=8)
    >>> tuple(embed(torch.zeros(4, 6)).shape)  # codes (B, D)
    (4, 8)
    >>> tuple(embed(torch.zeros(4, 5, 6)).shape)  # local features (B, L, C)
    (4, 5, 8)
    """

    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        self.units = units
        self.first = nn.Linear(in_features, units)
        self.norm1 = nn.BatchNorm1d(units)
        self.second = nn.Linear(units, units)
        self.shortcut = nn.Linear(in_features, units)
        self.out_norm = nn.LayerNorm(units)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        hidden = torch.relu(self.norm1(self.first(x)))
        out = self.out_norm(self.second(hidden) + self.shortcut(x))
        return out.reshape(*shape[:-1], self.units)


class LocalResidualEmbedding(nn.Module):
    """:class:`ResidualEmbedding` of every location of a feature map.

    The same block with 1x1 convolutions. The map is put in channels-last
    memory order, where a 1x1 convolution is a single GEMM on the
    ``(B * L, C)`` matrix that oneDNN runs markedly faster on CPU than the
    equivalent ``nn.Linear`` (about 1.7x for the 2048-unit float32 layer in
    ``benchmarks/bench_fit.py``). The result is returned as ``(B, L, U)``, a
    free view of the channels-last output.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import LocalResidualEmbedding
    >>> embed = LocalResidualEmbedding(in_channels=6, units=8)
    >>> tuple(embed(torch.zeros(4, 6, 3, 3)).shape)  # (B, C, H, W) -> (B, H * W, U)
    (4, 9, 8)
    >>> tuple(embed(torch.zeros(4, 6, 5)).shape)  # 1-D maps (B, C, L) work too
    (4, 5, 8)
    """

    def __init__(self, in_channels: int, units: int) -> None:
        super().__init__()
        self.units = units
        self.first = nn.Conv2d(in_channels, units, 1)
        self.norm1 = nn.BatchNorm2d(units)
        self.second = nn.Conv2d(units, units, 1)
        self.shortcut = nn.Conv2d(in_channels, units, 1)
        self.out_norm = nn.LayerNorm(units)

    def forward(self, feature_map: Tensor) -> Tensor:
        b = feature_map.shape[0]
        x = feature_map if feature_map.dim() == 4 else feature_map.reshape(*feature_map.shape[:2], -1, 1)
        x = x.contiguous(memory_format=torch.channels_last)
        hidden = torch.relu(self.norm1(_pointwise_conv(self.first, x)))
        # (B, U, L, 1), channels last
        out = _pointwise_conv(self.second, hidden) + _pointwise_conv(self.shortcut, x)
        out = out.permute(0, 2, 3, 1).reshape(b, -1, self.units)
        return self.out_norm(out)


class DotLocalCritic(nn.Module):
    """Encode-and-dot-product local critic: ``u[i, j, l] = <G(y_i), L(c_{j,l})>``.

    All ``B x B x L`` scores come from a single matrix product. ``forward``
    returns ``(pos, neg)`` as :func:`~skdim.nn.bounds.split_pair_scores` does.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import DotLocalCritic
    >>> critic = DotLocalCritic(local_channels=6, code_dim=10, units=8)
    >>> local_map, code = torch.zeros(4, 6, 3, 3), torch.zeros(4, 10)  # B=4, L=9
    >>> pos, neg = critic(local_map, code)
    >>> tuple(pos.shape), tuple(neg.shape)  # (B, L) and (B, (B - 1) * L)
    ((4, 9), (4, 27))
    >>> tuple(critic.scores(local_map, code).shape)  # all pairs (B, B, L)
    (4, 4, 9)
    """

    def __init__(self, local_channels: int, code_dim: int, units: int = 512) -> None:
        super().__init__()
        self.local_embed = LocalResidualEmbedding(local_channels, units)
        self.global_embed = ResidualEmbedding(code_dim, units)
        self.gather: Gather | None = None

    def _scores(self, local_map: Tensor, code: Tensor) -> tuple[Tensor, int | None]:
        b = local_map.shape[0]
        local, offset = _gather_items(self.gather, self.local_embed(local_map))  # (M, L, U)
        glob = self.global_embed(code)  # (B, U)
        scores = glob @ local.reshape(-1, local.shape[-1]).T  # (B, M * L)
        return scores.reshape(b, local.shape[0], -1), offset

    def scores(self, local_map: Tensor, code: Tensor) -> Tensor:
        """All-pairs scores of shape ``(B, B, L)``."""
        return self._scores(local_map, code)[0]

    def forward(self, local_map: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        return split_pair_scores(*self._scores(local_map, code))


class ConcatLocalCritic(nn.Module):
    """Concat-and-convolve local critic (paper table 7): 1x1 convs 512-512-1.

    The code is broadcast and concatenated to every location of a local map.
    The first layer is linear in the concatenation, so it is split into a code
    part and a feature part added by broadcasting: the concatenated tensor is
    never built. Every scored pair runs the full 512-512-1 head, so scoring
    all ``B x B`` image pairs costs ``B`` times a positive-only pass;
    ``n_shifts`` caps the negatives at that many other images per anchor
    (image ``i`` against images ``i+1, ..., i+n_shifts`` of the batch, all
    their locations). ``None`` scores every other image.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import ConcatLocalCritic
    >>> critic = ConcatLocalCritic(local_channels=6, code_dim=10, units=8, n_shifts=2)
    >>> local_map, code = torch.zeros(4, 6, 3, 3), torch.zeros(4, 10)  # B=4, L=9
    >>> pos, neg = critic(local_map, code)
    >>> tuple(pos.shape), tuple(neg.shape)  # (B, L) and (B, n_shifts * L)
    ((4, 9), (4, 18))
    >>> critic.n_shifts = None  # every other image: (B, (B - 1) * L)
    >>> tuple(critic(local_map, code)[1].shape)
    (4, 27)
    """

    def __init__(
        self, local_channels: int, code_dim: int, units: int = 512, n_shifts: int | None = 8
    ) -> None:
        super().__init__()
        self.code_in = nn.Linear(code_dim, units)
        self.local_in = nn.Linear(local_channels, units, bias=False)
        self.hidden = nn.Linear(units, units)
        self.out = nn.Linear(units, 1)
        self.n_shifts = n_shifts
        self.gather: Gather | None = None

    def forward(self, local_map: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        b = local_map.shape[0]
        local, offset = _gather_items(self.gather, self.local_in(flatten_locations(local_map)))
        m = local.shape[0]  # (M, L, U): items of every process
        glob = self.code_in(code)  # (B, U)
        n_other = m - 1 if self.n_shifts is None else min(self.n_shifts, m - 1)
        shifts = torch.arange(n_other + 1, device=code.device)
        rows = torch.arange(b, device=code.device) + (offset or 0)
        items = (rows[:, None] + shifts[None, :]) % m  # column 0 is the image itself
        h = torch.relu(glob[:, None, None, :] + local[items])  # (B, S+1, L, U)
        scores = self.out(torch.relu(self.hidden(h))).squeeze(-1)  # (B, S+1, L)
        return scores[:, 0], scores[:, 1:].reshape(b, -1)


class GlobalCritic(nn.Module):
    """Global DIM critic (paper table 6).

    The last convolutional map is flattened and concatenated with the code,
    then FC 512-512-1. The first layer is split into a map part and a code
    part so that all ``B x B`` pairs need one broadcast add, not ``B**2``
    concatenations. ``forward`` returns ``(pos, neg)``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import GlobalCritic
    >>> conv_map, code = torch.zeros(4, 6, 3, 3), torch.zeros(4, 10)  # B=4
    >>> critic = GlobalCritic(conv_features=6 * 3 * 3, code_dim=10, units=8)
    >>> pos, neg = critic(conv_map, code)
    >>> tuple(pos.shape), tuple(neg.shape)  # (B, 1) and (B, B - 1)
    ((4, 1), (4, 3))
    >>> tuple(critic.scores(conv_map, code).shape)  # all pairs (B, B, 1)
    (4, 4, 1)
    """

    def __init__(self, conv_features: int, code_dim: int, units: int = 512) -> None:
        super().__init__()
        self.conv_in = nn.Linear(conv_features, units, bias=False)
        self.code_in = nn.Linear(code_dim, units)
        self.hidden = nn.Linear(units, units)
        self.out = nn.Linear(units, 1)
        self.gather: Gather | None = None

    def _scores(self, conv_map: Tensor, code: Tensor) -> tuple[Tensor, int | None]:
        m, offset = _gather_items(self.gather, self.conv_in(conv_map.flatten(1)))  # (M, U): items
        g = self.code_in(code)  # (B, U): anchor i
        h = torch.relu(g[:, None, :] + m[None, :, :])  # (B, M, U)
        return self.out(torch.relu(self.hidden(h))), offset

    def scores(self, conv_map: Tensor, code: Tensor) -> Tensor:
        """All-pairs scores of shape ``(B, B, 1)``."""
        return self._scores(conv_map, code)[0]

    def forward(self, conv_map: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        return split_pair_scores(*self._scores(conv_map, code))


class PriorDiscriminator(nn.Module):
    """Prior discriminator of paper eq. 7 / table 10: MLP ``d-1000-200-1``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.critics import PriorDiscriminator
    >>> disc = PriorDiscriminator(code_dim=10, hidden=(16, 8))  # a small 10-16-8-1 MLP
    >>> z = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    >>> tuple(disc(z).shape)  # one logit per code
    (4,)
    """

    def __init__(self, code_dim: int, hidden: tuple[int, int] = (1000, 200)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(code_dim, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)
