"""GPU training throughput of DeepInfoMax and its fraction of the bf16 matmul peak.

The paper's CIFAR-10 configuration -- 32x32x3 inputs, the "dcgan" encoder,
DIM(L) with the encode-and-dot critic of 2048 units, prior weight 0.1 -- at
batch 256, under bf16 autocast (``precision="bfloat16"``), plus a few
variations (infoNCE, no prior, a 512-unit critic, TF32). For each row:

* images/s of :meth:`skdim.DeepInfoMax.fit` (the whole estimator: input from
  a NumPy array, every step, the per-epoch bookkeeping), best of ``--rounds``
  timed ``fit`` calls of ``--epochs`` epochs each, after a warm-up epoch;
* the FLOPs of one training step per image, counted over one ``partial_fit``
  step once the model is built, with the rules of
  :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and
  convolutions, forward and backward, the prior discriminator and its
  gradient penalty included; elementwise work not counted);
* the achieved FLOP/s (FLOPs per image x images/s) as a fraction of the
  bf16 matrix-product rate measured on this device in the same run
  (``torch.matmul`` of two 8192x8192 bf16 matrices);
* the peak device memory of the timed fit (CUDA only).

The issue's GPU goal is 30,000 images/s for the paper configuration at
batch 256 on one H200.

    python benchmarks/bench_gpu.py                  # CUDA, all rows
    python benchmarks/bench_gpu.py --dry-run        # tiny sizes on the CPU: checks the script
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from skdim import DeepInfoMax

from _flops import step_flops

GOAL_IMAGES_PER_S = 30_000
# (critic units, MI estimator, prior weight, precision)
ROWS = [
    (2048, "jsd", 0.1, "bfloat16"),
    (2048, "infonce", 0.1, "bfloat16"),
    (2048, "jsd", 0.0, "bfloat16"),
    (512, "infonce", 0.1, "bfloat16"),
    (2048, "jsd", 0.1, "tf32"),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, dtype=torch.bfloat16, repeats: int = 10) -> float:
    """Measured FLOP/s of an ``n x n x n`` matrix product (best of ``repeats``)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def make_dim(units, estimator, gamma, precision, args) -> DeepInfoMax:
    return DeepInfoMax(
        encoder="dcgan", local_critic="dot", critic_units=units, mi_estimator=estimator,
        gamma=gamma, batch_size=args.batch_size, precision=precision, device=args.device,
        random_state=0, max_epochs=1, warm_start=True,
    )


def step_flops_per_image(units, estimator, gamma, precision, args, X) -> float:
    """Counted FLOPs of one training step, per image."""
    dim = make_dim(units, estimator, gamma, precision, args)
    return step_flops(dim, X[:args.batch_size]) / args.batch_size


def measure_row(units, estimator, gamma, precision, args, X, peak) -> dict:
    device = torch.device(args.device)
    dim = make_dim(units, estimator, gamma, precision, args)
    dim.fit(X)  # warm-up epoch: builds the model, kernels, allocator pools
    dim.set_params(max_epochs=args.epochs)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best = 0.0
    for _ in range(args.rounds):
        sync(device)
        t = time.perf_counter()
        dim.fit(X)
        sync(device)
        best = max(best, args.epochs * len(X) / (time.perf_counter() - t))
    flops = step_flops_per_image(units, estimator, gamma, precision, args, X)
    return {
        "units": units, "estimator": estimator, "gamma": gamma, "precision": precision,
        "images_per_s": best,
        "gflop_per_image": flops / 1e9,
        "tflop_per_s": flops * best / 1e12,
        "fraction_of_bf16_peak": flops * best / peak,
        "peak_memory_gb": (torch.cuda.max_memory_allocated(device) / 1e9
                           if device.type == "cuda" else float("nan")),
        "local_mi": dim.history_[-1].get("local_mi", float("nan")),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="batches per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed fit call")
    parser.add_argument("--rounds", type=int, default=2, help="timed fit calls per row")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU (batch 16, 2 steps, 2 rows) to check the script")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = ROWS
    if args.dry_run:
        args.device = args.device or "cpu"
        args.batch_size, args.steps, args.epochs, args.rounds = 16, 2, 1, 1
        args.matmul_size = 256
        rows = [(64, "jsd", 0.1, "bfloat16"), (64, "infonce", 0.0, "float32")]
    args.device = args.device or "cuda"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("SKIPPED: CUDA is not available here; run with --dry-run to check the script on CPU.")
        return 0
    if min(args.batch_size, args.steps, args.epochs, args.rounds, args.matmul_size) < 1:
        parser.error("sizes and counts must be >= 1.")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = matmul_rate(device, args.matmul_size)
    print(f"device: {name}, torch {torch.__version__}; measured bf16 matmul "
          f"({args.matmul_size}^3): {peak / 1e12:.3g} TFLOP/s")
    print(f"DIM(L), dcgan encoder, 32x32x3, batch {args.batch_size}, {args.steps} steps per "
          f"epoch, best of {args.rounds} fit calls of {args.epochs} epoch(s) after a warm-up epoch")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(args.batch_size * args.steps, 32, 32, 3), dtype=np.uint8)

    header = (f"{'units':>5} {'bound':>7} {'prior':>5} {'precision':>9} | {'images/s':>9} | "
              f"{'GFLOP/img':>9} | {'TFLOP/s':>7} | {'of bf16 peak':>12} | {'mem GB':>6} | "
              f"{'>= 30k/s':>8}")
    print(header)
    print("-" * len(header))
    results = []
    for units, estimator, gamma, precision in rows:
        r = measure_row(units, estimator, gamma, precision, args, X, peak)
        results.append(r)
        goal = ("yes" if r["images_per_s"] >= GOAL_IMAGES_PER_S else "no") if units == 2048 else "-"
        print(f"{units:>5} {estimator:>7} {gamma:>5} {precision:>9} | {r['images_per_s']:>9.0f} | "
              f"{r['gflop_per_image']:>9.3f} | {r['tflop_per_s']:>7.1f} | "
              f"{100 * r['fraction_of_bf16_peak']:>11.1f}% | {r['peak_memory_gb']:>6.2f} | "
              f"{goal:>8}", flush=True)
    print("images/s of fit (forward, backward, optimizer and discriminator steps, input from "
          "NumPy); GFLOP/img counted with FlopCounterMode's rules (matmuls and convolutions, "
          "fwd+bwd); "
          "'of bf16 peak' = TFLOP/s / measured bf16 matmul rate.")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"device": name, "bf16_matmul_flops": peak, "rows": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
