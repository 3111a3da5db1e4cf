"""Training and transform throughput of DeepInfoMax on the paper's CIFAR-10 setup.

Configuration: 32x32x3 inputs, the "dcgan" encoder, encode-and-dot critic with
2048 units (paper) or 512 (skdim's default), batch 64, JSD or infoNCE, with and
without the prior. Each skdim timing is printed next to a straightforward eager
float32 PyTorch implementation of the same model written below (1x1 convs,
einsum scores, masks), timed in the same run, as a ratio.

    python benchmarks/bench_fit.py                 # 2 threads, all rows
    python benchmarks/bench_fit.py --quick         # fewer rows
    python benchmarks/bench_fit.py --profile       # where the time goes

Numbers are images/s of fit (forward, backward and optimizer steps) after a
warm-up, and peak resident memory growth of the process.
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skdim import DeepInfoMax

from _flops import step_flops


# --------------------------------------------------------------------------
# The reference: eager float32 DIM(L) as a researcher would write it.
# --------------------------------------------------------------------------
class RefEncoder(nn.Module):
    def __init__(self, n_components=64):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.c1, self.c2, self.c3 = block(3, 64), block(64, 128), block(128, 256)
        self.fc = nn.Sequential(nn.Linear(4096, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU())
        self.y = nn.Linear(1024, n_components)

    def forward(self, x):
        h = self.c2(self.c1(x))
        local = h
        h = self.c3(h)
        return local, self.y(self.fc(h.flatten(1)))


class RefLocalEmbed(nn.Module):
    def __init__(self, cin, units):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, units, 1), nn.BatchNorm2d(units), nn.ReLU(), nn.Conv2d(units, units, 1)
        )
        self.shortcut = nn.Conv2d(cin, units, 1)
        self.norm = nn.LayerNorm(units)

    def forward(self, x):
        h = self.block(x) + self.shortcut(x)
        return self.norm(h.permute(0, 2, 3, 1))  # (B, H, W, U)


class RefGlobalEmbed(nn.Module):
    def __init__(self, cin, units):
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(cin, units), nn.BatchNorm1d(units), nn.ReLU(), nn.Linear(units, units)
        )
        self.shortcut = nn.Linear(cin, units)
        self.norm = nn.LayerNorm(units)

    def forward(self, y):
        return self.norm(self.block(y) + self.shortcut(y))


class RefDIM(nn.Module):
    def __init__(self, units, n_components=64):
        super().__init__()
        self.encoder = RefEncoder(n_components)
        self.local_embed = RefLocalEmbed(128, units)
        self.global_embed = RefGlobalEmbed(n_components, units)


def ref_local_loss(model, x, estimator):
    local, y = model.encoder(x)
    lf = model.local_embed(local)  # (B, H, W, U)
    b = lf.shape[0]
    lf = lf.reshape(b, -1, lf.shape[-1])  # (B, L, U)
    g = model.global_embed(y)  # (B, U)
    u = torch.einsum("iu,jlu->ijl", g, lf)  # (B, B, L)
    eye = torch.eye(b, dtype=torch.bool)
    pos = u[eye]  # (B, L)
    if estimator == "jsd":
        neg = u[~eye]
        mi = -F.softplus(-pos).mean() - F.softplus(neg).mean()
    else:
        # Materialise each positive's candidates: itself and all other images' locations.
        n_loc = u.shape[2]
        neg = u[~eye].reshape(b, -1)  # (B, (B-1) L)
        logits = torch.cat(
            [pos.unsqueeze(-1), neg.unsqueeze(1).expand(b, n_loc, neg.shape[1])], dim=2
        )
        mi = (logits.log_softmax(-1)[..., 0]).mean() + math.log(logits.shape[-1])
    return mi, y


def ref_step(model, disc, opt, d_opt, x, estimator, gamma):
    mi, y = ref_local_loss(model, x, estimator)
    loss = -mi
    if gamma > 0:
        fake = torch.sigmoid(y)
        real = torch.rand_like(fake)
        d_loss = F.softplus(-disc(real)).mean() + F.softplus(disc(fake.detach())).mean()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        loss = loss + gamma * F.softplus(-disc(fake)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


class Reference:
    """The eager reference, stepped ``n_steps`` batches per call."""

    def __init__(self, units, estimator, gamma, n_steps, batch=64):
        torch.manual_seed(0)
        self.model = RefDIM(units)
        self.disc = nn.Sequential(
            nn.Linear(64, 1000), nn.ReLU(), nn.Linear(1000, 200), nn.ReLU(), nn.Linear(200, 1)
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.5, 0.999))
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=1e-4, betas=(0.5, 0.999))
        self.xs = torch.randn(n_steps, batch, 3, 32, 32)
        self.estimator, self.gamma = estimator, gamma
        self.n_images = n_steps * batch

    def epoch(self):
        for x in self.xs:
            ref_step(self.model, self.disc, self.opt, self.d_opt, x, self.estimator, self.gamma)


class Skdim:
    """DeepInfoMax; each call is one ``partial_fit`` epoch over the same images."""

    def __init__(self, units, estimator, gamma, n_steps, precision, batch=64):
        rng = np.random.default_rng(0)
        self.X = rng.integers(0, 256, size=(n_steps * batch, 32, 32, 3), dtype=np.uint8)
        self.dim = DeepInfoMax(
            encoder="dcgan", critic_units=units, mi_estimator=estimator, gamma=gamma,
            batch_size=batch, precision=precision, device="cpu", random_state=0,
        )
        self.n_images = len(self.X)

    def epoch(self):
        self.dim.partial_fit(self.X)


def interleaved_rates(runners, rounds):
    """Best images/s of each runner over ``rounds`` alternating measurements.

    The machine is shared: alternating the contenders and keeping each one's
    best round compares them under the same background load.
    """
    for r in runners:
        r.epoch()  # warm-up: allocator, kernels, first partial_fit initialises
    best = [0.0] * len(runners)
    for _ in range(rounds):
        for k, r in enumerate(runners):
            t = time.perf_counter()
            r.epoch()
            best[k] = max(best[k], r.n_images / (time.perf_counter() - t))
    return best


def transform_rate(dim, X, rounds=3):
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        dim.transform(X)
        best = max(best, len(X) / (time.perf_counter() - t))
    return best


def skdim_step_flops(units, estimator, gamma, batch=64):
    """Counted matmul and convolution FLOPs of one skdim training step (fwd and bwd)."""
    X = np.random.default_rng(0).integers(0, 256, size=(batch, 32, 32, 3), dtype=np.uint8)
    return step_flops(
        DeepInfoMax(encoder="dcgan", critic_units=units, mi_estimator=estimator, gamma=gamma,
                    batch_size=batch, device="cpu", random_state=0),
        X,
    )


def matmul_ceiling(dtype, n=2048, rows=4096, rounds=5):
    """Best FLOP/s of a (4096 x 2048) @ (2048 x 2048) product in ``dtype``.

    Timed both as ``torch.mm`` and as a channels-last 1x1 convolution (the
    same GEMM through oneDNN, which is what the critic runs and which is the
    faster of the two on some CPUs); the better of the two is the ceiling.
    """
    a = torch.randn(rows, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    x = a.reshape(rows // 64, 8, 8, n).permute(0, 3, 1, 2)  # channels-last view
    w = b.reshape(n, n, 1, 1)
    best = 0.0
    for op in (lambda: torch.mm(a, b), lambda: F.conv2d(x, w)):
        op()
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(4):
                op()
            best = max(best, 4 * 2 * rows * n * n / (time.perf_counter() - t))
    return best


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="batches per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measurements")
    parser.add_argument("--quick", action="store_true", help="2048-unit JSD rows only")
    parser.add_argument("--profile", action="store_true", help="print a profile of one skdim step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64, 32x32x3, dcgan")

    if args.profile:
        profile(args.steps)
        return

    ceil_f32, ceil_bf16 = matmul_ceiling(torch.float32), matmul_ceiling(torch.bfloat16)
    print(f"measured GEMM ceiling (4096x2048 @ 2048x2048, best of mm and 1x1 conv): float32 {ceil_f32 / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {ceil_bf16 / 1e9:.0f} GFLOP/s")
    rows = [(2048, "jsd", 0.1), (2048, "jsd", 0.0), (2048, "infonce", 0.1), (512, "jsd", 0.1)]
    if args.quick:
        rows = rows[:1]
    header = (
        f"{'units':>5} {'bound':>7} {'prior':>5} | {'ref f32':>8} | {'skdim f32':>9} {'ratio':>5}"
        f" | {'skdim bf16':>10} {'ratio':>5} {'%ceil':>5} | {'transform':>9} | {'peak RSS MB':>11}"
    )
    print(header)
    print("-" * len(header))
    for units, estimator, gamma in rows:
        ref = Reference(units, estimator, gamma, args.steps)
        f32 = Skdim(units, estimator, gamma, args.steps, "float32")
        bf16 = Skdim(units, estimator, gamma, args.steps, "bfloat16")
        r_ref, r_f32, r_bf16 = interleaved_rates([ref, f32, bf16], args.rounds)
        tr = transform_rate(f32.dim, f32.X)
        # Achieved bf16 FLOP/s as a share of the bf16 GEMM ceiling measured above.
        frac = skdim_step_flops(units, estimator, gamma) * r_bf16 / 64 / ceil_bf16
        print(
            f"{units:>5} {estimator:>7} {gamma:>5} | {r_ref:>8.1f} | {r_f32:>9.1f} {r_f32 / r_ref:>5.2f}"
            f" | {r_bf16:>10.1f} {r_bf16 / r_ref:>5.2f} {100 * frac:>4.0f}%"
            f" | {tr:>9.0f} | {peak_rss_mb():>11.0f}",
            flush=True,
        )
    print("images/s of fit, best of interleaved rounds; ratios against the eager float32 "
          "reference in this run; %ceil: FLOP/s of the bf16 fit (matmul and conv FLOPs of a "
          "step, counted) over the bf16 GEMM ceiling; transform in images/s (float32).")
    # Same data, same seed: the loss curves of float32 and bfloat16 side by side.
    print("history of the last row (float32 vs bfloat16 total loss per epoch):")
    for a, b in zip(f32.dim.history_, bf16.dim.history_):
        print(f"  epoch {a['epoch']:>2}: {a['loss']:+.4f}  {b['loss']:+.4f}")


def profile(n_steps):
    from torch.profiler import ProfilerActivity, profile as tprofile

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(n_steps * 64, 32, 32, 3), dtype=np.uint8)
    for precision in ("float32", "bfloat16"):
        dim = DeepInfoMax(encoder="dcgan", critic_units=2048, max_epochs=1, device="cpu",
                          random_state=0, precision=precision)
        dim.fit(X[:128])
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            DeepInfoMax(encoder="dcgan", critic_units=2048, max_epochs=1, device="cpu",
                        random_state=0, precision=precision).fit(X)
        print(f"--- {precision}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


if __name__ == "__main__":
    main()
