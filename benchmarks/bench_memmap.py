"""Fit DeepInfoMax on a memory-mapped array of >= 4 GB of uint8 images.

Shows that ``fit`` reads a memory map batch by batch and never copies it:
the peak *anonymous* memory of the process (``RssAnon`` in
``/proc/self/status``; pages read through a memory map are file-backed and
count in ``RssFile`` instead, and the kernel can drop them at any time) stays
far below the size of the data.

It also times the SHA-256 fingerprint of all of the data that a fit with
``checkpoint_dir`` computes once (so that a checkpoint never resumes on other
data), against the time of one epoch.

The images are random bytes of shape ``(n, side, side, 3)``; a small encoder
whose first convolution cuts the image into 32x32 patches keeps one epoch feasible on 2 CPU cores
(the point is the memory, not the representation). The data file is created
in ``/tmp`` and deleted afterwards (``--keep`` keeps it).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_memmap.py            # 4 GiB, 256x256x3
    python benchmarks/bench_memmap.py --gib 0.5                    # a quick run
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import torch
from torch import nn

from skdim import DeepInfoMax
from skdim._data import data_fingerprint
from skdim.nn.encoders import EncoderOutput


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class PeakSampler:
    """Samples RssAnon every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak_kib = interval, _status_kib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))


class SmallEncoder(nn.Module):
    """A patchifying stem down to 32x32, then two stride-2 convolutions.

    The stem (kernel = stride = side / 32) makes the cost per image nearly
    independent of the image side beyond the first layer, so large images
    keep an epoch over 4 GiB short.
    """

    def __init__(self, in_channels: int, input_shape, n_components: int) -> None:
        super().__init__()
        patch = max(1, input_shape[0] // 32)
        side = input_shape[0] // patch // 4

        def block(cin, cout, k, s, p):
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.stem = block(in_channels, 16, patch, patch, 0)
        self.local = block(16, 32, 4, 2, 1)
        self.conv = block(32, 64, 4, 2, 1)
        self.fc = nn.Sequential(nn.Linear(64 * side * side, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.head = nn.Linear(256, n_components)

    def forward(self, x):
        local = self.local(self.stem(x))
        conv = self.conv(local)
        fc = self.fc(conv.flatten(1))
        return EncoderOutput(local, conv, fc, self.head(fc))


def make_file(path: str, n: int, side: int, seed: int = 0) -> None:
    """Write random uint8 images with plain writes (no memory map, no big buffer)."""
    rng = np.random.default_rng(seed)
    row = side * side * 3
    rows_per_chunk = max(1, (64 << 20) // row)
    with open(path, "wb") as f:
        for start in range(0, n, rows_per_chunk):
            f.write(rng.bytes(min(rows_per_chunk, n - start) * row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="data size in GiB (default 4)")
    parser.add_argument("--side", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--path", default="/tmp/skdim_bench_memmap.u8")
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    args = parser.parse_args()

    row = args.side * args.side * 3
    n = int(args.gib * 2**30) // row
    print(f"data: {n} images of {args.side}x{args.side}x3 uint8 = {n * row / 2**30:.2f} GiB "
          f"in {args.path}; torch threads: {torch.get_num_threads()}")
    t0 = time.perf_counter()
    if not (os.path.exists(args.path) and os.path.getsize(args.path) == n * row):
        make_file(args.path, n, args.side)
    print(f"file ready in {time.perf_counter() - t0:.1f} s")
    try:
        X = np.memmap(args.path, dtype=np.uint8, mode="r", shape=(n, args.side, args.side, 3))
        dim = DeepInfoMax(
            n_components=64, encoder=SmallEncoder, critic_units=64, batch_size=args.batch_size,
            max_epochs=1, device="cpu", random_state=0,
        )
        before = _status_kib("RssAnon")
        t0 = time.perf_counter()
        with PeakSampler() as sampler:
            dim.fit(X)
            fit_seconds = time.perf_counter() - t0
            codes = dim.transform(X[: 4 * args.batch_size])
        print(f"fit: 1 epoch, {n // args.batch_size} steps in {fit_seconds:.1f} s "
              f"({n / fit_seconds:.0f} images/s, {n * row / 2**20 / fit_seconds:.0f} MiB/s); "
              f"history: {dim.history_[-1]}")
        print(f"codes of {len(codes)} images: {codes.shape}, finite: {bool(np.isfinite(codes).all())}")
        print(f"RssAnon before fit: {before / 2**10:.0f} MiB; peak during fit and transform: "
              f"{sampler.peak_kib / 2**10:.0f} MiB (data: {n * row / 2**20:.0f} MiB); "
              f"VmHWM (peak RSS incl. file pages): {_status_kib('VmHWM') / 2**10:.0f} MiB")
        assert sampler.peak_kib < 1.5 * 2**20, "peak anonymous memory above 1.5 GiB"
        t0 = time.perf_counter()
        digest = data_fingerprint(X)["sha256"]
        hash_seconds = time.perf_counter() - t0
        print(f"data fingerprint (SHA-256 of all {n * row / 2**30:.2f} GiB, once per fit with "
              f"checkpoint_dir): {hash_seconds:.1f} s = {100 * hash_seconds / fit_seconds:.1f}% "
              f"of one epoch ({n * row / 2**20 / hash_seconds:.0f} MiB/s; {digest[:12]}...)")
    finally:
        if not args.keep:
            os.unlink(args.path)


if __name__ == "__main__":
    main()
