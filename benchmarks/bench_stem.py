"""Small inputs: the full-resolution first block of the "conv" encoder against the former plan.

The size-agnostic ``"conv"`` encoder keeps every axis shorter than 32 at full
resolution in its first block (a 3x3, stride-1 "stem"; see
:func:`skdim.nn.encoders.conv_plan`). Before, block 0 halved every axis
longer than 4, so 8x8 digits had a 4x4 local map. This script trains
``DeepInfoMax()`` as shipped ("stem") and the same estimator with the former
encoder ("former", rebuilt here as a custom encoder factory) under the
defaults study's protocol (``bench_defaults.py``: a budget of process
CPU-seconds, 600 per 20,000 training rows; standardised LinearSVC probe on
the 64-d code, C by 3-fold CV) on:

* ``digits``: scikit-learn's 8x8 digits (1,200 train / 597 test, 36 CPU-s);
* ``cifar10_gray12`` and ``cifar10_gray16``: 5,000 CIFAR-10 training and
  2,000 test images as 12x12 and 16x16 grayscale (150 CPU-s; needs
  ``cifar10_jpeg_bytes.npz``: ``$SKDIM_CIFAR10_NPZ`` or ``../shared/data``,
  skipped when absent);
* ``waveforms24``: the study's waveforms (:func:`skdim.datasets.make_waveforms`,
  4,000 train / 2,000 test) at length 24, for the 1-D encoder (120 CPU-s).

One run at a time on an otherwise idle machine::

    python benchmarks/bench_stem.py --seeds 0 1 2 --datasets digits
    python benchmarks/bench_stem.py --seeds 0 1 --datasets cifar10_gray12 cifar10_gray16
    python benchmarks/bench_stem.py --seeds 0 1 --datasets waveforms24
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import bench_defaults as study  # noqa: E402
from _cifar import cifar10_path  # noqa: E402
from skdim.datasets import make_waveforms  # noqa: E402
from skdim.nn.encoders import ConvEncoder, default_local_layer  # noqa: E402

SMALL_CIFAR = (5_000, 2_000)


def former_plan(input_shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], ...]]:
    """(kernel, stride, padding) per block before the stem: halve while an axis is longer than 4."""
    sides, plan = list(input_shape), []
    while len(plan) < 3 or max(sides) > 4:
        halve = [s > 4 for s in sides]
        plan.append((tuple(4 if h else 3 for h in halve), tuple(2 if h else 1 for h in halve),
                     tuple(1 for _ in halve)))
        sides = [s // 2 if h else s for s, h in zip(sides, halve)]
    return plan


def former_encoder(in_channels: int, input_shape: tuple[int, ...], n_components: int) -> ConvEncoder:
    """The ``"conv"``/``"conv1d"`` encoder as it was before the stem (widths, fc and head unchanged).

    The local map is chosen by the same rule as today's (the deepest block up
    to the next-to-last that sees at most half of the input) on the former
    plan: block 0 for 8x8, 12x12 and 16x16, whose block 1 sees 10 pixels.
    """
    conv, norm = (nn.Conv1d, nn.BatchNorm1d) if len(input_shape) == 1 else (nn.Conv2d, nn.BatchNorm2d)
    plan = former_plan(input_shape)
    blocks, c_in, sides = [], in_channels, list(input_shape)
    for i, (kernel, stride, padding) in enumerate(plan):
        c_out = min(64 * 2**i, 512)
        blocks.append(nn.Sequential(conv(c_in, c_out, kernel, stride, padding, bias=False),
                                    norm(c_out), nn.ReLU(inplace=True)))
        c_in, sides = c_out, [s // st for s, st in zip(sides, stride)]
    n_flat = c_in * int(np.prod(sides))
    width = min(1024, n_flat)
    fc = nn.Sequential(nn.Linear(n_flat, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True))
    return ConvEncoder(blocks, fc, nn.Linear(width, n_components), in_channels, input_shape,
                       local_layer=default_local_layer(input_shape, plan=plan))


CONTENDERS = {"stem": {}, "former": {"encoder": former_encoder}}


def load(name: str):
    """``(X_train, y_train, X_test, y_test)`` or None when the data is absent."""
    if name == "digits":
        return study.load("digits")
    if name == "waveforms24":
        X, y = make_waveforms(6000, length=24)
        return X[:4000], y[:4000], X[4000:], y[4000:]
    side = {"cifar10_gray12": 12, "cifar10_gray16": 16}.get(name)
    if side is None:
        raise SystemExit(f"unknown data set {name!r}")
    path = cifar10_path()
    if path is None or not Path(path).exists():
        return None
    from skdim.datasets import load_cifar10_jpeg_npz

    data = load_cifar10_jpeg_npz(path, n_train=SMALL_CIFAR[0], n_test=SMALL_CIFAR[1])
    return study.gray(data.X_train, side), data.y_train, study.gray(data.X_test, side), data.y_test


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*",
                        default=["digits", "cifar10_gray12", "cifar10_gray16", "waveforms24"])
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--budget", type=float, default=600.0,
                        help="process CPU-seconds per 20,000 training rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_stem.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, budget {args.budget:g} CPU-s per 20k rows, "
          f"seeds {args.seeds}", flush=True)
    accs: dict[tuple[str, str], list[float]] = {}
    with open(args.out, "a") as log:
        for dataset in args.datasets:
            data = load(dataset)
            if data is None:
                print(f"SKIPPED {dataset}: CIFAR-10 file not found (set SKDIM_CIFAR10_NPZ)", flush=True)
                continue
            X_tr, y_tr, X_te, y_te = data
            budget = args.budget * len(X_tr) / 20_000
            for name in args.contenders:
                for seed in args.seeds:
                    result = study.run(CONTENDERS[name], X_tr, y_tr, X_te, y_te, budget, seed)
                    row = {"dataset": dataset, "encoder": name, "seed": seed, "budget": budget, **result}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    accs.setdefault((dataset, name), []).append(100 * result["acc"])
                    print(f"  {dataset:15s} {name:7s} seed {seed}: {100 * result['acc']:6.2f}%  "
                          f"{result['cpu_s']:5.0f} CPU-s  {result['epochs']} epochs "
                          f"{result['images']} images", flush=True)
    print("mean over seeds:")
    for (dataset, name), values in accs.items():
        print(f"  {dataset:15s} {name:7s} {np.mean(values):6.2f}  "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
