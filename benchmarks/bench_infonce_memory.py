"""Peak memory and speed of a local-infoNCE training step against the batch size.

Every positive pair (image i, location l) of the local infoNCE objective
shares one set of negatives: all locations of the other images. skdim takes
the log-sum-exp over those negatives once per image, so a step holds the
``(B, B * M^2)`` score matrix and never the ``(B, M^2, B * M^2)`` logits a
per-positive softmax would build. This benchmark shows it: for each batch size
``B`` it trains :class:`skdim.DeepInfoMax` (32x32x3 inputs, the "dcgan"
encoder, M = 8 so M^2 = 64 locations, encode-and-dot critic with
``critic_units=2048``, infoNCE, CPU) in a *fresh subprocess*, and reports

* the child's peak resident memory (``VmHWM`` from ``/proc/self/status``,
  cross-checked with ``getrusage(RUSAGE_CHILDREN)`` in the parent), and the
  resident memory just before training (imports and data; the model is
  built in the first step);
* images/s of the timed training steps (after ``--warmup`` untimed steps);
* what the ``(B, M^2, B M^2)`` float32 logits alone would take if they were
  materialised (their gradient would take as much again).

    python benchmarks/bench_infonce_memory.py                  # B = 64 ... 512
    python benchmarks/bench_infonce_memory.py --batch-sizes 64 128 --precision bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

LOCATIONS = 64  # M^2 for the dcgan encoder's 8x8 local map on 32x32 inputs
LIMIT_GB = 4.0  # the bound for a B=512 step
GB = 1e9


def vm_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (Linux), or -1 when unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def child(args) -> None:
    """One batch size, in its own process; prints one JSON line."""
    import torch

    from skdim import DeepInfoMax

    torch.set_num_threads(args.threads)
    b = args.child
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(b * args.steps, 32, 32, 3), dtype=np.uint8)
    dim = DeepInfoMax(
        encoder="dcgan", local_critic="dot", critic_units=args.units, mi_estimator="infonce",
        gamma=args.gamma, batch_size=b, precision=args.precision, device="cpu",
        random_state=0,
    )
    before_kb = vm_kb("VmRSS")
    # Warm-up steps build the model and optimizer state and let oneDNN create
    # its kernels for these shapes (the first steps run several times slower).
    for _ in range(args.warmup):
        dim.partial_fit(X[:b])
    t = time.perf_counter()
    dim.partial_fit(X)  # the timed steps, one epoch
    seconds = time.perf_counter() - t
    peak_kb = vm_kb("VmHWM")
    if peak_kb < 0:  # not Linux: ru_maxrss is kB on Linux, bytes on macOS
        scale = 1024 if sys.platform == "darwin" else 1
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale
    print(json.dumps({
        "batch_size": b,
        "rss_before_gb": before_kb * 1024 / GB,
        "peak_gb": peak_kb * 1024 / GB,
        "images_per_s": b * args.steps / seconds,
        "local_mi": dim.history_[-1]["local_mi"],
    }))


def materialized_logits_gb(b: int, locations: int = LOCATIONS, itemsize: int = 4) -> float:
    """Bytes of the per-positive logits ``(B, M^2, B * M^2)``, in GB."""
    return b * locations * b * locations * itemsize / GB


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--units", type=int, default=2048, help="critic_units")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per batch size")
    parser.add_argument("--gamma", type=float, default=0.1, help="prior weight")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args)
        return 0
    if min(args.batch_sizes) < 2 or args.steps < 1 or args.units < 1 or args.warmup < 1:
        parser.error("batch sizes must be >= 2; --steps, --warmup and --units >= 1.")

    import torch

    print(f"local infoNCE step, CPU, 32x32x3, dcgan encoder (M^2 = {LOCATIONS} locations), "
          f"dot critic {args.units} units, gamma {args.gamma}, {args.precision}, "
          f"{args.threads} threads, torch {torch.__version__}; {args.warmup} warm-up step(s), then "
          f"{args.steps} timed step(s); each batch size in a fresh process")
    header = (f"{'B':>4} | {'RSS before GB':>13} | {'peak RSS GB':>11} | {'step GB':>7} | "
              f"{'images/s':>8} | {'(B,M^2,BM^2) logits GB':>22} | {'peak < 4 GB':>11} | "
              f"{'RUSAGE_CHILDREN GB':>18}")
    print(header)
    print("-" * len(header))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    ok = True
    for b in args.batch_sizes:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(b),
               "--units", str(args.units), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--gamma", str(args.gamma), "--precision", args.precision,
               "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{b:>4} | child failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            ok = False
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        # ru_maxrss of the largest child so far: equals this child's peak when
        # the batch sizes grow, an independent check of VmHWM.
        children_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GB
        peak = row["peak_gb"]
        under = peak < LIMIT_GB
        ok &= under or b != 512
        print(f"{b:>4} | {row['rss_before_gb']:>13.2f} | {peak:>11.2f} | "
              f"{peak - row['rss_before_gb']:>7.2f} | {row['images_per_s']:>8.1f} | "
              f"{materialized_logits_gb(b):>22.2f} | {'yes' if under else 'NO':>11} | "
              f"{children_gb:>18.2f}", flush=True)
    print("peak RSS: VmHWM of the child process (the whole process: Python, torch, data, "
          "model, Adam state, activations); step GB: peak minus the resident memory "
          "before the first step; logits GB: float32 (B, M^2, B*M^2) alone, 1 GB = 1e9 bytes, "
          "its gradient would double it; RUSAGE_CHILDREN: the parent's "
          "getrusage view, the largest child so far.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
