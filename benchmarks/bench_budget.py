"""Equal budget against the peers: CIFAR-10 accuracy per process CPU-second.

Every contender trains on the same 20,000 CIFAR-10 training images for a
fixed budget of *process* CPU-seconds (``time.process_time()``, which counts
all the threads of the process; checked after every optimisation step, so a
run stops within one step of its budget), and its 64-d code is probed as in
``bench_defaults.py``: a standardised ``LinearSVC`` whose ``C`` is chosen by
3-fold cross-validation on (at most) 10,000 training codes, tested on 5,000
test images. Contenders:

``defaults``
    ``DeepInfoMax()`` as shipped (``max_epochs`` raised so that the CPU
    budget, not the epoch count, stops it).
``best``
    ``DeepInfoMax(**BEST)``: the strongest setting of the defaults study
    other than the defaults themselves (``BEST`` below). At 600 CPU-s on
    CIFAR-10 the defaults (128 critic units) were the study's best, 52.5%;
    ``BEST`` is the runner-up with 512 units (52.0%), the one a larger budget
    could favour.
``paper``
    A plain eager float32 re-implementation of the paper's DIM(L), written
    here as a researcher would (the official recipe: "dcgan" encoder,
    encode-and-dot critic with 2048 units, JSD, Adam at 1e-4 with betas
    (0.5, 0.999), batch 64, the uniform prior with gamma 0.1 and the
    64-1000-200-1 discriminator); code = Y.
``simclr``
    SimCLR with the same 32x32 "dcgan" encoder (code = Y), the maintained
    ``lightly`` library's ``NTXentLoss`` (temperature 0.5) and
    ``SimCLRProjectionHead`` (64-512-128), batch 256, SGD with momentum 0.9,
    weight decay 5e-4 and a learning rate of 0.06 x 256 / 128 annealed by a
    cosine over the CPU budget (lightly's CIFAR-10 recipe). Needs ``lightly``
    (the ``bench`` extra; the row is skipped with a message without it).
    torchvision is not needed: the augmentations are written here as batched
    torch ops with torchvision's semantics (see ``simclr_views``), drawn
    from an explicit ``torch.Generator``. lightly's own modules import two
    torchvision names at module level (``torchvision.ops.StochasticDepth``
    and ``roi_align``) that the loss and the head never use; when torchvision
    is absent or broken (a CUDA build beside a CPU torch fails with
    "operator torchvision::nms does not exist"), they are imported with
    inert placeholders for those two names, which are removed again at once
    (``import_lightly``).
``pca64``, ``untrained``
    PCA-64 of the pixels and the untrained skdim encoder (no budget; the
    horizontal lines of the figure).
``--custom NAME=JSON``
    More skdim contenders, ``DeepInfoMax(**JSON)`` (the defaults elsewhere),
    run and plotted like ``defaults``: e.g. the options the study measured
    against SimCLR, ``--custom 'cosine={"learning_rate_schedule": "cosine"}'``.

Each (contender, budget, seed) is an independent run from scratch. Results
are appended as JSON lines to ``OUT_DIR/bench_budget.jsonl``; a run skips
what that file already holds (``--force`` reruns it), so the study can be run
in parts. Afterwards, and with ``--plot-only``, the accumulated rows are
printed as a table and plotted (accuracy against CPU-seconds used, one curve
per contender) to ``OUT_DIR/bench_budget.png``::

    python benchmarks/bench_budget.py                                  # everything
    python benchmarks/bench_budget.py --contenders paper simclr --budgets 150 600
    python benchmarks/bench_budget.py --plot-only

Run it on an otherwise idle machine. ``OMP_WAIT_POLICY`` is set to
``PASSIVE`` before torch is imported, so threads waiting for work do not burn
CPU-seconds that the budget would count. Install lightly without letting pip
touch torch (its torchvision requirement would otherwise bring a CUDA build
and may replace a CPU torch)::

    pip install --no-deps "lightly>=1.5"
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from torch import nn  # noqa: E402

from _cifar import cifar10_path  # noqa: E402
from bench_defaults import PROBE_TRAIN, budgeted, flat, probe, settings_for  # noqa: E402
from skdim import DeepInfoMax  # noqa: E402
from skdim.nn.encoders import build_encoder  # noqa: E402

# The defaults study's runner-up (bench_defaults.py): its best, 128 critic units, is the defaults.
BEST = dict(mi_estimator="infonce", learning_rate=1e-3, precision="bfloat16", critic_units=512)

# The official DIM(L) recipe for CIFAR-10 (Hjelm et al. 2019 and their code).
PAPER = dict(critic_units=2048, measure="JSD", learning_rate=1e-4, betas=(0.5, 0.999),
             batch_size=64, gamma=0.1, prior="uniform", discriminator=(64, 1000, 200, 1),
             precision="float32")

# SimCLR as in lightly's CIFAR-10 example (SGD, lr 0.06 * batch / 128, cosine), 32x32 views.
SIMCLR = dict(batch_size=256, temperature=0.5, head=(64, 512, 128), optimizer="SGD",
              learning_rate=0.06 * 256 / 128, momentum=0.9, weight_decay=5e-4,
              schedule="cosine over the CPU budget", crop_scale=(0.08, 1.0),
              crop_ratio=(3 / 4, 4 / 3), flip_p=0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
              grayscale_p=0.2, blur="none")

TRAINED = ("defaults", "best", "paper", "simclr")
BASELINES = ("pca64", "untrained")
CONTENDERS = TRAINED + BASELINES
JSONL, PNG = "bench_budget.jsonl", "bench_budget.png"


# --------------------------------------------------------------------- data
def load_data(path, n_train: int, n_test: int):
    """``(X_train, y_train, X_test, y_test)``: the first images of each split, as bench_defaults."""
    from skdim.datasets import load_cifar10_jpeg_npz

    data = load_cifar10_jpeg_npz(path, n_train=n_train, n_test=n_test)
    return data.X_train, data.y_train, data.X_test, data.y_test


class Pixels:
    """uint8 NHWC images as an NCHW uint8 tensor, with per-channel standardisation."""

    def __init__(self, X_train: np.ndarray) -> None:
        self.X = torch.from_numpy(np.ascontiguousarray(X_train)).permute(0, 3, 1, 2).contiguous()
        values = X_train.reshape(-1, 3).astype(np.float64) / 255.0
        self.mean = torch.tensor(values.mean(0), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(values.std(0), dtype=torch.float32).view(1, 3, 1, 1)

    def unit(self, index) -> torch.Tensor:
        """Images ``index`` as float32 in [0, 1]."""
        return self.X[index].float().div_(255.0)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def batch(self, index) -> torch.Tensor:
        return self.normalize(self.unit(index))

    def encode(self, X: np.ndarray, encoder, batch: int = 500) -> np.ndarray:
        """The codes Y of uint8 NHWC images ``X`` (encoder in eval mode)."""
        t = torch.from_numpy(np.ascontiguousarray(X)).permute(0, 3, 1, 2)
        encoder.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(t), batch):
                out.append(encoder(self.normalize(t[start:start + batch].float() / 255.0)).y)
        return torch.cat(out).numpy()


def batches(n: int, batch_size: int, gen: torch.Generator):
    """Endless shuffled index batches (last incomplete batch of an epoch dropped)."""
    batch_size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start:start + batch_size]


# ---------------------------------------------- the paper's DIM(L), eager
class PaperEncoder(nn.Module):
    """The "dcgan" encoder: conv 64-128-256 (4x4, stride 2), fc 1024, Y (64); local = 128x8x8."""

    def __init__(self, n_components: int = 64) -> None:
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU())

        self.c1, self.c2, self.c3 = block(3, 64), block(64, 128), block(128, 256)
        self.fc = nn.Sequential(nn.Linear(4096, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU())
        self.y_layer = nn.Linear(1024, n_components)

    def forward(self, x):
        local = self.c2(self.c1(x))
        y = self.y_layer(self.fc(self.c3(local).flatten(1)))
        return types.SimpleNamespace(local=local, y=y)


class Embed1x1(nn.Module):
    """The official critic's embedding: 1x1 conv, BN, ReLU, 1x1 conv, plus a linear shortcut, LN."""

    def __init__(self, cin: int, units: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, units, 1, bias=False), nn.BatchNorm2d(units),
                                   nn.ReLU(), nn.Conv2d(units, units, 1))
        self.shortcut = nn.Conv2d(cin, units, 1, bias=False)
        if units >= cin:  # the official initialisation: near-identity shortcut
            with torch.no_grad():
                self.shortcut.weight.uniform_(-0.01, 0.01)
                diag = torch.arange(cin)
                self.shortcut.weight[diag, diag, 0, 0] = 1.0
        self.norm = nn.LayerNorm(units)

    def forward(self, x):  # (B, C, H, W) -> (B, H * W, U)
        h = self.block(x) + self.shortcut(x)
        return self.norm(h.flatten(2).transpose(1, 2))


class PaperDIM(nn.Module):
    def __init__(self, units: int, n_components: int = 64) -> None:
        super().__init__()
        self.encoder = PaperEncoder(n_components)
        self.local_embed = Embed1x1(128, units)
        self.global_embed = Embed1x1(n_components, units)

    def forward(self, x):
        out = self.encoder(x)
        local = self.local_embed(out.local)  # (B, L, U)
        glob = self.global_embed(out.y[:, :, None, None])[:, 0]  # (B, U)
        return local, glob, out.y


def jsd_local_mi(local: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
    """The official ``fenchel_dual_loss``, JSD: E_P[log 2 - sp(-T)] - E_N[sp(-T) + T - log 2]."""
    b = local.shape[0]
    u = torch.einsum("iu,jlu->ijl", glob, local)  # global i against the locations of image j
    e_pos = math.log(2.0) - F.softplus(-u)
    e_neg = F.softplus(-u) + u - math.log(2.0)
    eye = torch.eye(b, dtype=u.dtype)
    pos = (e_pos.mean(2) * eye).sum() / b
    neg = (e_neg.mean(2) * (1 - eye)).sum() / max(b * (b - 1), 1)
    return pos - neg


def train_paper(pixels: Pixels, budget: float, seed: int, units: int):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = PaperDIM(units)
    sizes = PAPER["discriminator"]
    disc = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]),
                         nn.ReLU(), nn.Linear(sizes[2], sizes[3]))
    opt = torch.optim.Adam(model.parameters(), lr=PAPER["learning_rate"], betas=PAPER["betas"])
    d_opt = torch.optim.Adam(disc.parameters(), lr=PAPER["learning_rate"], betas=PAPER["betas"])
    gamma = PAPER["gamma"]
    model.train()
    images = 0
    deadline = time.process_time() + budget
    for index in batches(len(pixels.X), PAPER["batch_size"], gen):
        x = pixels.batch(index)
        local, glob, y = model(x)
        loss = -jsd_local_mi(local, glob)
        fake = torch.sigmoid(y)  # prior matching on sigmoid(Y) against U[0, 1]^64
        real = torch.rand(fake.shape, generator=gen)
        d_loss = F.softplus(-disc(real)).mean() + F.softplus(disc(fake.detach())).mean()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        loss = loss + gamma * F.softplus(-disc(fake)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        images += len(index)
        if time.process_time() >= deadline:
            break
    return model.encoder, images


# -------------------------------------------------------------------- SimCLR
@contextlib.contextmanager
def _torchvision_placeholder():
    """Inert ``torchvision.ops`` (StochasticDepth, roi_align) for the duration of an import."""

    def unavailable(*args, **kwargs):
        raise ImportError("torchvision is not importable here; this lightly feature needs it")

    class StochasticDepth(nn.Module):
        def __init__(self, *args, **kwargs):
            unavailable()

    saved = {k: sys.modules.pop(k) for k in list(sys.modules)
             if k == "torchvision" or k.startswith("torchvision.")}
    tv = types.ModuleType("torchvision")
    tv.__path__ = []  # a package with no submodules: other torchvision imports fail cleanly
    ops = types.ModuleType("torchvision.ops")
    ops.StochasticDepth, ops.roi_align = StochasticDepth, unavailable
    tv.ops = ops
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops})
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def import_lightly():
    """``(NTXentLoss, SimCLRProjectionHead, note)``, or ``(None, None, why)`` without lightly."""
    if importlib.util.find_spec("lightly") is None:
        return None, None, "lightly is not installed (pip install --no-deps 'lightly>=1.5')"
    import lightly

    version = getattr(lightly, "__version__", "?")
    try:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        return NTXentLoss, SimCLRProjectionHead, f"lightly {version}"
    except Exception as exc:  # torchvision absent (ImportError) or broken (RuntimeError)
        first = f"{type(exc).__name__}: {exc}"
    for name in [k for k in sys.modules if k.startswith(("lightly.loss", "lightly.models"))]:
        del sys.modules[name]
    try:
        with _torchvision_placeholder():
            from lightly.loss import NTXentLoss
            from lightly.models.modules import SimCLRProjectionHead
    except Exception as exc:
        return None, None, f"lightly {version} does not import ({first}; then {exc})"
    return (NTXentLoss, SimCLRProjectionHead,
            f"lightly {version}, torchvision placeholder ({first})")


def _gray(x: torch.Tensor) -> torch.Tensor:
    """torchvision's rgb_to_grayscale: (B, 3, H, W) -> (B, 1, H, W)."""
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    r = ratio.view(-1, 1, 1, 1)
    return (r * a + (1.0 - r) * b).clamp_(0.0, 1.0)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.max(1).values, x.min(1).values
    flat_ = maxc == minc
    delta = maxc - minc
    ones = torch.ones_like(maxc)
    s = delta / torch.where(flat_, ones, maxc)
    d = torch.where(flat_, ones, delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = ((maxc == r) * (bc - gc) + ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
         + ((maxc != g) & (maxc != r)) * (4.0 + gc - rc))
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    # Sextant k: (r, g, b) = (v,t,p), (q,v,p), (p,v,t), (p,q,v), (t,p,v), (v,p,q).
    table = torch.stack([torch.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v),
                                                     (t, p, v), (v, p, q))], 1)  # (B, 6, 3, H, W)
    return table.gather(1, i[:, None, None].expand(-1, 1, 3, -1, -1)).squeeze(1)


def _hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    hsv = _rgb_to_hsv(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + factor.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(hsv)


_JITTER_OPS = (
    lambda x, f: _blend(x, torch.zeros_like(x), f),  # brightness
    lambda x, f: _blend(x, _gray(x).mean((1, 2, 3), keepdim=True), f),  # contrast
    lambda x, f: _blend(x, _gray(x), f),  # saturation
    _hue,
)


def resized_crop_flip(x: torch.Tensor, gen: torch.Generator, size: int = 32,
                      scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5) -> torch.Tensor:
    """RandomResizedCrop(size, scale, ratio) then RandomHorizontalFlip(flip_p), per image.

    torchvision's sampling: up to 10 tries of an area fraction ~ U(scale) and
    a log-uniform aspect ratio, integer box sides ``round(sqrt(area * r))``,
    ``round(sqrt(area / r))``, the first box that fits, at a uniform integer
    offset; otherwise the centre crop (the whole image when square). The box
    is resized bilinearly (align_corners=False, edge-clamped: crops are never
    larger than the output here, so antialiasing does not apply), as one
    ``grid_sample`` for the batch; a flip mirrors the sampling grid.
    """
    n, _, H, W = x.shape
    dt = torch.float64
    area = H * W * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, 10, generator=gen, dtype=dt))
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * torch.rand(n, 10, generator=gen, dtype=dt))
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = fits.to(torch.int8).argmax(1, keepdim=True)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    # Fallback: the centre crop with the aspect ratio clamped into `ratio`.
    in_ratio = W / H
    fw, fh = ((W, round(W / ratio[0])) if in_ratio < ratio[0] else
              (round(H * ratio[1]), H) if in_ratio > ratio[1] else (W, H))
    ok = fits.any(1)
    w = torch.where(ok, w, torch.full_like(w, fw))
    h = torch.where(ok, h, torch.full_like(h, fh))
    u = torch.rand(n, 2, generator=gen, dtype=dt)
    i = torch.where(ok, torch.floor(u[:, 0] * (H - h + 1)), torch.full_like(h, (H - fh) // 2))
    j = torch.where(ok, torch.floor(u[:, 1] * (W - w + 1)), torch.full_like(w, (W - fw) // 2))
    k = torch.arange(size, dtype=dt) + 0.5
    # Source pixel of output pixel k: (k + 0.5) * side / size - 0.5 inside the box, clamped.
    xs = torch.minimum((k * w[:, None] / size - 0.5).clamp(min=0.0), w[:, None] - 1) + j[:, None]
    ys = torch.minimum((k * h[:, None] / size - 0.5).clamp(min=0.0), h[:, None] - 1) + i[:, None]
    flip = torch.rand(n, generator=gen) < flip_p
    xs = torch.where(flip[:, None], xs.flip(1), xs)
    gx = ((2 * xs + 1) / W - 1).to(x.dtype)
    gy = ((2 * ys + 1) / H - 1).to(x.dtype)
    grid = torch.stack((gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)),
                       dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, gen: torch.Generator, strength=(0.4, 0.4, 0.4, 0.1),
                 p: float = 0.8) -> torch.Tensor:
    """RandomApply([ColorJitter(*strength)], p): each op at a random factor, in a random order."""
    chosen = (torch.rand(len(x), generator=gen) < p).nonzero()[:, 0]
    if len(chosen) == 0:
        return x
    y = x[chosen]
    m = len(chosen)
    b, c, s, hue = strength
    factors = [1 - b + 2 * b * torch.rand(m, generator=gen),
               1 - c + 2 * c * torch.rand(m, generator=gen),
               1 - s + 2 * s * torch.rand(m, generator=gen),
               -hue + 2 * hue * torch.rand(m, generator=gen)]
    order = torch.rand(m, 4, generator=gen).argsort(1)  # a random permutation per image
    for position in range(4):
        for op in range(4):
            rows = (order[:, position] == op).nonzero()[:, 0]
            if len(rows):
                y[rows] = _JITTER_OPS[op](y[rows], factors[op][rows])
    x = x.clone()
    x[chosen] = y
    return x


def random_grayscale(x: torch.Tensor, gen: torch.Generator, p: float = 0.2) -> torch.Tensor:
    pick = (torch.rand(len(x), generator=gen) < p).view(-1, 1, 1, 1)
    return torch.where(pick, _gray(x).expand_as(x), x)


def simclr_views(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One SimCLR CIFAR-10 view of each image of ``x`` ((B, 3, H, W) in [0, 1]).

    torchvision's pipeline as batched torch ops: RandomResizedCrop(32,
    scale=(0.08, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip(0.5),
    RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8) (brightness,
    contrast, saturation and hue in a random order per image, each factor
    uniform) and RandomGrayscale(0.2); no blur at 32x32, as in SimCLR's
    CIFAR-10 setting. Every random draw comes from ``gen``.
    """
    c = SIMCLR
    x = resized_crop_flip(x, gen, x.shape[-1], c["crop_scale"], c["crop_ratio"], c["flip_p"])
    x = color_jitter(x, gen, c["jitter"], c["jitter_p"])
    return random_grayscale(x, gen, c["grayscale_p"])


def train_simclr(pixels: Pixels, budget: float, seed: int, batch_size: int, lightly_parts):
    NTXentLoss, SimCLRProjectionHead, _ = lightly_parts
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder = build_encoder("dcgan", 3, (32, 32), 64)
    head = SimCLRProjectionHead(*SIMCLR["head"])
    criterion = NTXentLoss(temperature=SIMCLR["temperature"])
    base_lr = SIMCLR["learning_rate"] * batch_size / SIMCLR["batch_size"]
    opt = torch.optim.SGD(list(encoder.parameters()) + list(head.parameters()), lr=base_lr,
                          momentum=SIMCLR["momentum"], weight_decay=SIMCLR["weight_decay"])
    encoder.train()
    head.train()
    images = 0
    start = time.process_time()
    for index in batches(len(pixels.X), batch_size, gen):
        x = pixels.unit(index)
        v0, v1 = simclr_views(x, gen), simclr_views(x, gen)
        z0 = head(encoder(pixels.normalize(v0)).y)
        z1 = head(encoder(pixels.normalize(v1)).y)
        loss = criterion(z0, z1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        images += len(index)
        used = time.process_time() - start
        if used >= budget:
            break
        for group in opt.param_groups:  # cosine annealing over the CPU budget
            group["lr"] = 0.5 * base_lr * (1 + math.cos(math.pi * used / budget))
    return encoder, images


# ------------------------------------------------------------------ running
def run_trained(name, data, pixels, budget, seed, args, lightly_parts) -> dict:
    X_tr, y_tr, X_te, y_te = data
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    extra = {}
    if name in ("defaults", "best") or name in args.custom:
        setting = {} if name == "defaults" else dict(BEST) if name == "best" else args.custom[name]
        dim, counter = budgeted(setting, budget, seed)
        dim.fit(X_tr)
        images = counter.images
        extra = {"setting": setting, "precision": dim.precision_}
        encode = dim.transform
    else:
        if name == "paper":
            encoder, images = train_paper(pixels, budget, seed, args.paper_units)
            extra = {"setting": {**PAPER, "critic_units": args.paper_units}}
        else:
            encoder, images = train_simclr(pixels, budget, seed, args.simclr_batch, lightly_parts)
            lr = SIMCLR["learning_rate"] * args.simclr_batch / SIMCLR["batch_size"]
            extra = {"setting": {**SIMCLR, "batch_size": args.simclr_batch, "learning_rate": lr},
                     "lightly": lightly_parts[2]}

        def encode(X):
            return pixels.encode(X, encoder)

    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    acc = probe(encode(X_tr), y_tr, encode(X_te), y_te, seed)
    return {"acc": acc, "cpu_s": cpu, "wall_s": wall, "images": images,
            "epochs": images / len(X_tr), **extra}


def run_baseline(name, data, seed) -> dict:
    X_tr, y_tr, X_te, y_te = data
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    if name == "pca64":
        F_tr = flat(X_tr)
        pca = PCA(min(64, *F_tr[:PROBE_TRAIN].shape), random_state=seed).fit(F_tr[:PROBE_TRAIN])
        codes = pca.transform(F_tr), pca.transform(flat(X_te))
    else:
        dim = DeepInfoMax(max_epochs=0, random_state=seed).fit(X_tr)
        codes = dim.transform(X_tr), dim.transform(X_te)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    return {"acc": probe(codes[0], y_tr, codes[1], y_te, seed), "cpu_s": cpu, "wall_s": wall,
            "images": 0, "epochs": 0}


def _key(row: dict):
    budget = row.get("budget")
    return (row["contender"], None if budget is None else float(budget), row["seed"],
            row["n_train"], row["n_test"])


def read_rows(path: Path, n_train: int, n_test: int) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("n_train") == n_train and r.get("n_test") == n_test]


def summarize(rows: list[dict]) -> dict:
    """``{contender: {budget: (mean acc, mean CPU-s, accs by seed)}}``, the last row of each key winning."""
    last = {_key(r): r for r in sorted(rows, key=lambda r: r["seed"])}
    out: dict = {}
    for (name, budget, _, _, _), r in last.items():
        out.setdefault(name, {}).setdefault(budget, []).append((r["acc"], r["cpu_s"]))
    return {name: {b: (float(np.mean([a for a, _ in v])), float(np.mean([c for _, c in v])),
                       tuple(a for a, _ in v))
                   for b, v in per.items()}
            for name, per in out.items()}


def _ordered(summary: dict) -> list[str]:
    """The built-in contenders in their order, then the custom ones by name."""
    return [n for n in CONTENDERS if n in summary] + sorted(set(summary) - set(CONTENDERS))


def print_table(summary: dict) -> None:
    budgets = sorted({b for per in summary.values() for b in per if b is not None})
    width = max(len(name) for name in ["contender", *summary])
    print("\naccuracy % (CPU-s used) by budget, mean over seeds; linear probe on the 64-d code")
    print(f"{'contender':{width}s} | " + " | ".join(f"{b:>15g}" for b in budgets))
    for name in _ordered(summary):
        per = summary.get(name)
        if not per:
            continue
        if None in per:
            acc, cpu, _ = per[None]
            print(f"{name:{width}s} | {100 * acc:6.2f} at any budget (no training)")
            continue
        cells = [f"{100 * per[b][0]:6.2f} ({per[b][1]:6.0f})" if b in per else f"{'-':>15}"
                 for b in budgets]
        print(f"{name:{width}s} | " + " | ".join(cells))
    several = [(name, b, accs) for name in _ordered(summary) for b, (_, _, accs) in
               sorted(summary[name].items(), key=lambda kv: kv[0] or 0) if len(accs) > 1]
    for name, b, accs in several:
        print(f"  {name} at {'any budget' if b is None else f'{b:g}'}: mean of {len(accs)} seeds, "
              + " / ".join(f"{100 * a:.2f}" for a in accs) + " by seed")


def plot(summary: dict, path: Path, n_train: int, n_test: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(9.6, 4.2))
    labels = {"defaults": "skdim, DeepInfoMax() defaults", "best": "skdim, 512-unit critic (BEST)",
              "paper": "paper's DIM(L), eager float32", "simclr": "SimCLR (lightly), same encoder",
              "pca64": "PCA-64 of the pixels", "untrained": "untrained encoder",
              # The options measured against SimCLR (the docs' --custom commands).
              "cosine": "skdim, learning_rate_schedule='cosine'",
              "strong": "skdim, augment='strong'",
              "xview_strong": "skdim, augment='strong', cross_view=True (AMDIM)"}
    budgets = sorted({b for per in summary.values() for b in per if b is not None})
    for name in [n for n in _ordered(summary) if n not in BASELINES]:
        per = summary.get(name, {})
        points = sorted((v[1], 100 * v[0], 100 * min(v[2]), 100 * max(v[2]))
                        for b, v in per.items() if b is not None)
        if points:
            cpu, acc, low, high = map(np.array, zip(*points))
            # Where there are several seeds the bar spans the lowest to highest.
            ax.errorbar(cpu, acc, yerr=[acc - low, high - acc], marker="o", capsize=3,
                        label=labels.get(name, f"skdim, {name}"))
    for name, style in (("pca64", ":"), ("untrained", "--")):
        if None in summary.get(name, {}):
            ax.axhline(100 * summary[name][None][0], color="grey", linestyle=style,
                       label=labels[name])
    if budgets and min(budgets) > 0 and max(budgets) / min(budgets) >= 4:
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
    ax.set_xlabel("process CPU-seconds of training (time.process_time)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"CIFAR-10, {n_train:,} train / {n_test:,} test, linear probe on the 64-d code",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 JPEG .npz (default: $SKDIM_CIFAR10_NPZ or "
                        "shared/data/cifar10_jpeg_bytes.npz)")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--budgets", type=float, nargs="+", default=[150.0, 600.0, 2400.0],
                        help="process CPU-seconds of training per run")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", default="bench_budget")
    parser.add_argument("--force", action="store_true", help="rerun rows already in the JSON")
    parser.add_argument("--plot-only", action="store_true",
                        help="only print the table and plot the JSON lines already written")
    parser.add_argument("--simclr-batch", type=int, default=SIMCLR["batch_size"],
                        help="SimCLR batch (the learning rate scales with it)")
    parser.add_argument("--paper-units", type=int, default=PAPER["critic_units"],
                        help="critic units of the paper's DIM(L) (2048; smaller for quick tests)")
    parser.add_argument("--custom", nargs="*", default=[], metavar="NAME=JSON",
                        help="more skdim contenders: DeepInfoMax(**JSON), run with --contenders")
    args = parser.parse_args(argv)
    if any(b <= 0 for b in args.budgets):
        parser.error("budgets must be > 0")
    args.custom = settings_for([], args.custom)
    clash = set(args.custom) & set(CONTENDERS)
    if clash:
        parser.error(f"--custom names must differ from the built-in contenders: {sorted(clash)}")
    if any(v is None for v in args.custom.values()):
        parser.error("--custom needs NAME=JSON")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl, png = out_dir / JSONL, out_dir / PNG
    if not args.plot_only:
        torch.set_num_threads(args.threads)
        path = args.data or cifar10_path()
        if path is None or not Path(path).exists():
            print("SKIPPED: CIFAR-10 data not found (--data or SKDIM_CIFAR10_NPZ)", flush=True)
            return 0
        lightly_parts = (None, None, "not requested")
        if "simclr" in args.contenders:
            lightly_parts = import_lightly()
        print(f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY="
              f"{os.environ.get('OMP_WAIT_POLICY')}, budgets {args.budgets} CPU-s, seeds "
              f"{args.seeds}, {args.n_train} train / {args.n_test} test"
              + (f"; SimCLR: {lightly_parts[2]}" if "simclr" in args.contenders else ""),
              flush=True)
        data = load_data(path, args.n_train, args.n_test)
        pixels = Pixels(data[0])
        done = {_key(r) for r in read_rows(jsonl, args.n_train, args.n_test)}
        base = dict(n_train=args.n_train, n_test=args.n_test, threads=args.threads,
                    torch=torch.__version__)
        jobs = [(name, None, seed) for name in args.contenders if name in BASELINES
                for seed in args.seeds]
        jobs += [(name, float(budget), seed) for budget in args.budgets
                 for name in [*args.contenders, *args.custom] if name not in BASELINES
                 for seed in args.seeds]
        with open(jsonl, "a") as log:
            for name, budget, seed in jobs:
                label = f"{name:10s} " + ("no training " if budget is None else
                                          f"budget {budget:6g}") + f" seed {seed}"
                if name == "simclr" and lightly_parts[0] is None:
                    print(f"  {label}: SKIPPED: {lightly_parts[2]}", flush=True)
                    continue
                key = (name, budget, seed, args.n_train, args.n_test)
                if key in done and not args.force:
                    print(f"  {label}: already in {jsonl} (--force reruns it)", flush=True)
                    continue
                if budget is None:
                    result = run_baseline(name, data, seed)
                else:
                    result = run_trained(name, data, pixels, budget, seed, args, lightly_parts)
                row = {"contender": name, "budget": budget, "seed": seed, **base, **result,
                       "when": datetime.datetime.now().isoformat(timespec="seconds")}
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"  {label}: {100 * result['acc']:6.2f}%  {result['cpu_s']:7.1f} CPU-s  "
                      f"{result['wall_s']:7.1f} s wall  {result['images']} images "
                      f"({result['epochs']:.2f} epochs)", flush=True)
    summary = summarize(read_rows(jsonl, args.n_train, args.n_test))
    if not summary:
        print(f"no rows for {args.n_train} train / {args.n_test} test in {jsonl}")
        return 0
    print_table(summary)
    if plot(summary, png, args.n_train, args.n_test):
        print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
