"""Command line: fit a DeepInfoMax model on data on disk and save it.

Usage::

    python -m skdim fit --data X.npy --out model.joblib [NAME=VALUE ...]

``--data`` is a ``.npy`` file (memory-mapped, never loaded whole), a
``.npz`` archive (``--key`` names the array; archives cannot be memory-mapped,
so that array is loaded), or a raw binary file with ``--dtype`` and
``--shape`` (memory-mapped). Estimator parameters follow as ``NAME=VALUE``
(Python literals: ``max_epochs=10 batch_size=256 precision='bfloat16'``).

Several processes, GPUs or nodes: launch the same command with ``torchrun``;
each process reads its share of every global batch of ``batch_size`` rows
and rank 0 writes the model::

    torchrun --standalone --nproc_per_node 4 -m skdim fit --data X.npy --out model.joblib \\
        batch_size=256 checkpoint_dir=ckpt/

With ``checkpoint_dir=`` a run that was stopped resumes where it stopped
when the same command is run again.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as precision=bfloat16


def _parse_params(pairs: list[str], valid: set[str]) -> dict:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"Parameters are given as NAME=VALUE; got {pair!r}.")
        if name not in valid:
            raise ValueError(
                f"{name!r} is not a DeepInfoMax parameter; valid names: {', '.join(sorted(valid))}."
            )
        params[name] = _parse_value(value)
    return params


def load_data(path: str, key: str | None = None, dtype: str | None = None, shape=None):
    """Open ``path`` as an array without reading it whole where possible."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--data {path!r} does not exist.")
    if dtype is not None or shape is not None:
        if dtype is None or shape is None:
            raise ValueError("A raw binary file needs both --dtype and --shape.")
        return np.memmap(p, dtype=np.dtype(dtype), mode="r", shape=tuple(shape))
    if p.suffix == ".npy":
        return np.load(p, mmap_mode="r")
    if p.suffix == ".npz":
        with np.load(p) as archive:
            names = list(archive.keys())
            if key is None and len(names) == 1:
                key = names[0]
            if key not in names:
                raise ValueError(f"--key must name one of the arrays in {path!r}: {names}.")
            return archive[key]
    raise ValueError(
        f"Cannot read {path!r}: use a .npy or .npz file, or a raw binary file with "
        "--dtype and --shape."
    )


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape must be integers like 50000,32,32,3; got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m skdim", description="Deep InfoMax (skdim) from the command line."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser(
        "fit", help="fit DeepInfoMax on data on disk and save the estimator with joblib",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("--data", required=True, help=".npy, .npz or raw binary file")
    fit.add_argument("--out", required=True, help="where to write the fitted estimator (joblib)")
    fit.add_argument("--key", help="array name inside a .npz archive")
    fit.add_argument("--dtype", help="dtype of a raw binary file, e.g. uint8")
    fit.add_argument("--shape", type=_shape, help="shape of a raw binary file, e.g. 50000,32,32,3")
    fit.add_argument("--backend", choices=("gloo", "nccl"),
                     help="torch.distributed backend under torchrun (default: nccl with CUDA)")
    fit.add_argument("--timeout", type=float, default=None,
                     help="seconds a process waits for the others before failing (default 600)")
    fit.add_argument("params", nargs="*", metavar="NAME=VALUE", help="DeepInfoMax parameters")
    return parser


def fit_command(args) -> int:
    import joblib
    import torch.distributed as dist

    from .nn.distributed import init_from_env, world
    from ._estimator import DeepInfoMax

    params = _parse_params(args.params, set(DeepInfoMax().get_params()))
    X = load_data(args.data, args.key, args.dtype, args.shape)
    started = init_from_env(args.backend, args.timeout)
    try:
        rank, size = world()
        t0 = time.perf_counter()
        est = DeepInfoMax(**params).fit(X)
        seconds = time.perf_counter() - t0
        if rank == 0:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            joblib.dump(est, out)
            last = est.history_[-1] if est.history_ else {}
            loss = f", final loss {last['loss']:.4f}" if "loss" in last else ""
            print(
                f"Fitted DeepInfoMax on {X.shape[0]} samples of shape {tuple(X.shape[1:])} "
                f"with {size} process(es): {est.n_iter_} epoch(s) in {seconds:.1f} s{loss}. "
                f"Saved to {out}."
            )
        if size > 1:
            dist.barrier()  # nobody exits before rank 0 has written the model
    finally:
        if started:
            dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    from .nn.distributed import DistributedError

    args = build_parser().parse_args(argv)
    try:
        return fit_command(args)
    except (ValueError, TypeError, OSError, DistributedError) as exc:
        print(f"python -m skdim {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
