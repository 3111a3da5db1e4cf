"""Data-parallel training over several processes with ``torch.distributed``.

A fit runs distributed when a process group with more than one process is
initialised (``torch.distributed.init_process_group()``, e.g. under
``torchrun``; ``python -m skdim fit`` does it for you). Then:

* every process reads its share of each *global* batch of ``batch_size``
  rows (:func:`shard_positions`), so a 2-process run sees the same batches as
  a 1-process run;
* the critics score each process's codes against the items of *all*
  processes (:func:`all_gather_with_grad`), so the global batch sets the
  number of negatives;
* BatchNorm layers normalise with statistics of the global batch
  (:class:`SyncBatchNorm`, which, unlike ``torch.nn.SyncBatchNorm``, also
  runs on the CPU with the gloo backend);
* gradients are averaged over processes by PyTorch's
  :class:`~torch.nn.parallel.DistributedDataParallel`, one wrapper per
  optimised module set (the objective; the prior discriminator), so the
  all-reduce overlaps the backward pass and the two optimizers of the prior
  game stay separate.

The gradient of a gathered tensor is the sum over processes of what their
losses send back to it, so with the process average of the gradients the
update is the gradient of the mean loss over the global batch -- the same as
one process with the whole batch (for the JSD and infoNCE bounds, whose
estimates are means over anchors).

Collectives that fail -- a process died, or stopped answering for longer than
the process group's timeout -- raise :class:`DistributedError` naming the
rank and the operation, instead of hanging.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedError",
    "init_from_env",
    "world",
    "is_distributed",
    "all_gather_with_grad",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
    "shard_positions",
    "distributed_training",
    "mean_over_ranks",
    "max_over_ranks",
    "broadcast_object",
    "training_device",
    "collective_device",
]

#: Default seconds a collective may wait for the other processes.
DEFAULT_TIMEOUT = 600.0


class DistributedError(RuntimeError):
    """A collective operation failed: another process died or timed out.

    Examples
    --------
    >>> from skdim.nn.distributed import DistributedError
    >>> issubclass(DistributedError, RuntimeError)
    True
    """


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group, ``(0, 1)`` if none.

    Examples
    --------
    >>> from skdim.nn.distributed import world
    >>> world()  # no process group in this process
    (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """Whether a process group of more than one process is active.

    Examples
    --------
    >>> from skdim.nn.distributed import is_distributed
    >>> is_distributed()
    False
    """
    return world()[1] > 1


def init_from_env(backend: str | None = None, timeout: float | None = None) -> bool:
    """Initialise the default process group from torchrun's environment.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. Does
    nothing (and returns ``False``) when ``WORLD_SIZE`` is unset or 1, or when
    a group is already initialised.

    Parameters
    ----------
    backend : str, default=None
        ``"nccl"`` when CUDA is available, else ``"gloo"``.
    timeout : float, default=None
        Seconds a collective waits for the others before failing; defaults to
        ``SKDIM_DIST_TIMEOUT`` from the environment, else 600.

    Returns
    -------
    initialised : bool

    Examples
    --------
    >>> import os
    >>> from skdim.nn.distributed import init_from_env
    >>> "WORLD_SIZE" in os.environ or init_from_env()  # not under torchrun: nothing to do
    False
    """
    if not dist.is_available():
        raise DistributedError("torch.distributed is not available in this PyTorch build.")
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set; "
            "launch with torchrun, which sets all of them."
        )
    if timeout is None:
        timeout = float(os.environ.get("SKDIM_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        # One GPU per process: torchrun's LOCAL_RANK picks it.
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    with _guard("init_process_group"):
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return True


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    """Turn a backend failure into a :class:`DistributedError` that says why."""
    try:
        yield
    except DistributedError:
        raise
    except (RuntimeError, OSError) as exc:  # DistBackendError is a RuntimeError
        rank, size = world()
        if size == 1:  # not initialised yet: say what the launcher asked for
            rank = int(os.environ.get("RANK", 0))
            size = int(os.environ.get("WORLD_SIZE", 1))
        raise DistributedError(
            f"Distributed {what} failed on rank {rank} of {size}: another process "
            "died, was interrupted, or did not answer within the process group's "
            f"timeout. Backend error: {exc}"
        ) from exc


def collective_device() -> torch.device:
    """Where tensors for a collective must live: NCCL needs CUDA tensors.

    Examples
    --------
    >>> from skdim.nn.distributed import collective_device
    >>> collective_device()
    device(type='cpu')
    """
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _local_device_index() -> int | None:
    return int(os.environ["LOCAL_RANK"]) if "LOCAL_RANK" in os.environ else None


def training_device(device: torch.device) -> torch.device:
    """Under DDP a bare ``cuda`` means this process's GPU, ``cuda:LOCAL_RANK``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.distributed import training_device
    >>> training_device(torch.device("cpu"))
    device(type='cpu')
    """
    if device.type == "cuda" and device.index is None and is_distributed():
        index = _local_device_index()
        return torch.device("cuda", torch.cuda.current_device() if index is None else index)
    return device


# ---------------------------------------------------------------- collectives
def _row_counts(x: Tensor) -> list[int]:
    """First-dimension sizes of ``x`` on every process, in rank order."""
    _, size = world()
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    counts = [torch.zeros_like(n) for _ in range(size)]
    with _guard("all_gather of batch sizes"):
        dist.all_gather(counts, n)
    return [int(c) for c in counts]


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, counts: list[int]) -> Tensor:
        rank, size = world()
        longest = max(counts)
        padded = x
        if x.shape[0] < longest:
            # all_gather needs equal shapes: pad, then drop the padding.
            padded = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
        parts = [torch.empty_like(padded) for _ in range(size)]
        with _guard("all_gather"):
            dist.all_gather(parts, padded.contiguous())
        ctx.start, ctx.stop = sum(counts[:rank]), sum(counts[: rank + 1])
        return torch.cat([p[:c] for p, c in zip(parts, counts)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        # Every process's loss sent gradient to every gathered row: sum them,
        # then keep the rows this process owns.
        grad = grad.contiguous()
        with _guard("all_reduce of gathered gradients"):
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop], None


def all_gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """Concatenate ``x`` over processes (rank order) keeping gradients.

    Returns ``(gathered, offset)``: the rows of this process are
    ``gathered[offset : offset + len(x)]``. The backward pass all-reduces
    (sums) the incoming gradient and returns this process's rows, so each
    process receives the gradient that *every* process's loss sends to its
    items. Ranks may hold different numbers of rows. Without a process group
    it returns ``(x, 0)``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.distributed import all_gather_with_grad
    >>> x = torch.ones(3, 2)
    >>> gathered, offset = all_gather_with_grad(x)  # one process: itself, at row 0
    >>> gathered is x, offset
    (True, 0)
    """
    if not is_distributed():
        return x, 0
    counts = _row_counts(x)
    rank, _ = world()
    return _AllGather.apply(x, counts), sum(counts[:rank])


def broadcast_object(obj):
    """``obj`` from rank 0 on every process.

    Examples
    --------
    >>> from skdim.nn.distributed import broadcast_object
    >>> broadcast_object({"seed": 3})  # one process: unchanged
    {'seed': 3}
    """
    if not is_distributed():
        return obj
    box = [obj]
    with _guard("broadcast"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def max_over_ranks(value: float) -> float:
    """The largest of the processes' ``value``: one decision every process shares.

    Time limits and time-based learning-rate schedules read each process's
    own clock; without agreement one process would stop (or step with
    another rate) while the others go on.

    Examples
    --------
    >>> from skdim.nn.distributed import max_over_ranks
    >>> max_over_ranks(0.25)  # one process: unchanged
    0.25
    """
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=collective_device())
    with _guard("all_reduce of a time limit"):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def mean_over_ranks(stats: dict[str, float]) -> dict[str, float]:
    """Average per-process epoch statistics (same keys on every process).

    Examples
    --------
    >>> from skdim.nn.distributed import mean_over_ranks
    >>> mean_over_ranks({"loss": 1.5})
    {'loss': 1.5}
    """
    if not is_distributed():
        return stats
    keys = sorted(stats)
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=collective_device())
    with _guard("all_reduce of epoch statistics"):
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= world()[1]
    return {k: float(v) for k, v in zip(keys, t.cpu().tolist())}


# ---------------------------------------------------------------- batch norm
class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all processes, on any device.

    Each process computes the per-channel count, mean and sum of squared
    deviations of its rows; these are gathered (with gradients) and pooled
    with the parallel-variance formula, which is exact and avoids the
    cancellation of ``E[x^2] - E[x]^2``. Running statistics follow
    :class:`torch.nn.BatchNorm2d` (unbiased running variance, momentum or
    cumulative average). Without a process group it is plain BatchNorm.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skdim.nn.distributed import SyncBatchNorm
    >>> x = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(SyncBatchNorm(3)(x), nn.BatchNorm2d(3)(x), atol=1e-6)
    True
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input; got {x.dim()}-D.")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        c = x.shape[1]
        axes = [0] + list(range(2, x.dim()))
        xf = x.float()
        n_local = xf.numel() // c
        mean_local = xf.mean(dim=axes) if n_local else xf.new_zeros(c)
        m2_local = ((xf - _expand(mean_local, x)) ** 2).sum(dim=axes)
        packed = torch.cat([mean_local, m2_local, xf.new_tensor([float(n_local)])])
        gathered, _ = all_gather_with_grad(packed[None])
        means, m2s, counts = gathered[:, :c], gathered[:, c : 2 * c], gathered[:, 2 * c :]
        total = counts.sum()
        if float(total.detach()) < 2:
            raise ValueError("SyncBatchNorm needs at least 2 values per channel over all processes.")
        mean = (counts * means).sum(0) / total
        m2 = (m2s + counts * (means - mean) ** 2).sum(0)
        var = m2 / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
                unbiased = var * (total / (total - 1))
                self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))
        out = (xf - _expand(mean, x)) * _expand(torch.rsqrt(var + self.eps), x)
        if self.affine:
            out = out * _expand(self.weight, x) + _expand(self.bias, x)
        return out.to(x.dtype)


def _expand(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape(1, -1, *([1] * (like.dim() - 2)))


def convert_sync_batchnorm(module: nn.Module) -> Callable[[], None]:
    """Swap every BatchNorm of ``module`` for :class:`SyncBatchNorm`, in place.

    The new layers share the old ones' parameters and buffers (so optimizers
    and running statistics carry over). Returns a function that puts the
    original layers back, leaving a model that pickles and runs without a
    process group.

    Examples
    --------
    >>> from torch import nn
    >>> from skdim.nn.distributed import SyncBatchNorm, convert_sync_batchnorm
    >>> model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3))
    >>> restore = convert_sync_batchnorm(model)
    >>> isinstance(model[1], SyncBatchNorm)
    True
    >>> restore()
    >>> type(model[1]).__name__
    'BatchNorm2d'
    """
    swaps: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, SyncBatchNorm
            ):
                sync = SyncBatchNorm(
                    child.num_features, child.eps, child.momentum, child.affine,
                    child.track_running_stats,
                )
                # Share, do not copy: updates land in the original layer.
                for key in ("weight", "bias"):
                    setattr(sync, key, getattr(child, key))
                for key in ("running_mean", "running_var", "num_batches_tracked"):
                    sync._buffers[key] = child._buffers.get(key)
                sync.train(child.training)
                setattr(parent, name, sync)
                swaps.append((parent, name, child))

    def restore() -> None:
        for parent, name, child in reversed(swaps):
            setattr(parent, name, child)

    return restore


# ---------------------------------------------------------------- sharding
def shard_positions(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This process's part of a global batch of row indices.

    The global batch is padded by repeating its first rows up to a multiple
    of ``world_size`` (as :class:`torch.utils.data.DistributedSampler` does),
    then cut into contiguous equal parts in rank order, so that gathering the
    parts in rank order restores the global batch.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.nn.distributed import shard_positions
    >>> [shard_positions(np.array([3, 5, 8, 9, 12]), r, 2).tolist() for r in range(2)]
    [[3, 5, 8], [9, 12, 3]]
    """
    rows = np.asarray(rows)
    if world_size == 1:
        return rows
    per_rank = -(-len(rows) // world_size)
    if len(rows) < per_rank * world_size:
        rows = np.concatenate([rows, np.resize(rows, per_rank * world_size - len(rows))])
    return rows[rank * per_rank : (rank + 1) * per_rank]


@contextlib.contextmanager
def distributed_training(trainer) -> Iterator[bool]:
    """Set up (and always undo) data-parallel training of a :class:`~skdim.nn.trainer.DIMTrainer`.

    Yields ``True`` when a multi-process group is active: BatchNorm layers
    are synchronised, the critics gather items over processes, and the
    trainer's forward passes go through
    :class:`~torch.nn.parallel.DistributedDataParallel` wrappers of the
    objective and of the discriminator (which broadcast rank 0's weights at
    construction and average gradients in the backward pass). Yields
    ``False`` and changes nothing otherwise. :meth:`DIMTrainer.fit
    <skdim.nn.trainer.DIMTrainer.fit>` enters it for you.

    Examples
    --------
    >>> from skdim.nn.distributed import distributed_training
    >>> from skdim.nn.trainer import DIMTrainer
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> with distributed_training(trainer) as active:
    ...     active
    False
    """
    if not is_distributed():
        yield False
        return
    from torch.nn.parallel import DistributedDataParallel

    undo: list[Callable[[], None]] = []
    device = trainer.device
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    try:
        undo.append(convert_sync_batchnorm(trainer.objective))
        # Every MI critic (local, global, multiple globals) exposes `gather`.
        for critic in trainer.objective.modules():
            if getattr(critic, "gather", False) is None:
                critic.gather = all_gather_with_grad
                undo.append(lambda c=critic: setattr(c, "gather", None))
        with _guard("setting up DistributedDataParallel"):
            # Buffers (BatchNorm statistics) agree already: SyncBatchNorm pools them.
            trainer._forward = DistributedDataParallel(trainer.objective, device_ids=ids,
                                                       broadcast_buffers=False)
            if trainer.discriminator is not None:
                trainer._disc_forward = DistributedDataParallel(
                    trainer.discriminator, device_ids=ids, broadcast_buffers=False
                )
        yield True
    finally:
        trainer._forward = trainer._disc_forward = None
        for fn in reversed(undo):
            fn()
