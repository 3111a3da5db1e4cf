"""FLOP counting shared by the throughput benchmarks (bench_fit.py, bench_gpu.py)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class StepFlops(TorchDispatchMode):
    """Total FLOPs of the matrix products and convolutions run inside it.

    The counting rules of :class:`torch.utils.flop_counter.FlopCounterMode`
    (its ``flop_registry``, and decomposing ops it has no rule for) without
    its module tracker, whose backward hooks fail inside
    ``torch.autograd.grad(..., create_graph=True)`` -- which the prior
    discriminator's gradient penalty runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        if packet not in flop_registry and func is not torch.ops.prim.device.default:
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if packet in flop_registry:
            self.total += int(flop_registry[packet](*args, **kwargs, out_val=out))
        return out


def step_flops(dim, batch) -> int:
    """FLOPs of one training step of ``dim`` on ``batch`` (one mini-batch of rows).

    A first ``partial_fit`` builds the modules (their shape-inference pass
    would otherwise be counted); the second, counted, is exactly one step:
    encoder, critics, and the prior discriminator with its gradient penalty.
    """
    dim.partial_fit(batch)
    with StepFlops() as counter:
        dim.partial_fit(batch)
    return counter.total
