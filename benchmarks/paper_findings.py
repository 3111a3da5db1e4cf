"""The paper's qualitative findings, reproduced side by side on a CIFAR-10 subset.

Claims (Hjelm et al. 2019) and what is measured here:

1. Local DIM beats global DIM on probe accuracy (table 1: MLP-200 probe;
   table 4: linear SVM) -- conv / fc / Y linear probes and an MLP-200 probe on Y.
2. Global DIM beats local DIM on reconstruction MS-SSIM (table 4, figure 10)
   -- a decoder trained with L2 on frozen Y codes.
3. The prior lowers NDM (appendix A.5) -- NDM of Y (and of sigmoid(Y)) with
   gamma=0.1 against gamma=0.
4. JSD is insensitive to the number of negatives, infoNCE degrades as they
   shrink (figure 9) -- linear probe on Y with ``n_negatives`` in {all, 16, 1}
   (``--negatives``).
5. Occlusion and coordinate prediction do not hurt and can help Y accuracy
   (table 5) -- linear probe on Y.

Every model shares one configuration (printed), differing only in the named
parameters. The budget is sized for a 2-core CPU, far below the paper's 1000
epochs; the verdict column says whether each claim holds *at this budget*.

    python benchmarks/paper_findings.py [path/to/cifar10_jpeg_bytes.npz]
    python benchmarks/paper_findings.py --negatives-only --n-train 10000 --epochs 15   # claim 4, longer
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from skdim import DeepInfoMax
from skdim.datasets import default_cifar10_npz_path, load_cifar10_jpeg_npz
from skdim.evaluation import linear_probe, mlp_probe, reconstruction_ms_ssim
from skdim.metrics import neural_dependency_measure

DIM_L = dict(alpha=0.0, beta=1.0, gamma=0.1)
DIM_G = dict(alpha=1.0, beta=0.0, gamma=1.0)


def probe(dim, X_tr, y_tr, X_te, y_te, layers):
    out = {}
    for layer in layers:
        F_tr, F_te = dim.extract_features(X_tr, layer), dim.extract_features(X_te, layer)
        # C = 0.5 / n_features converges fast and was within 0.5 points of the
        # best C in {1e-4 .. 1} on these features (benchmarks/bench_cifar10.py).
        out[layer] = 100 * linear_probe(
            F_tr, y_tr, F_te, y_te, C=0.5 / F_tr.shape[1], max_iter=300, random_state=0
        )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=None)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--critic-units", type=int, default=512)
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--negatives", type=int, nargs=2, default=(16, 1), metavar=("FEW", "FEWEST"),
                        help="the two reduced numbers of negatives per positive for claim 4 "
                             "(figure 9's x-axis runs down to 1)")
    parser.add_argument("--negatives-only", action="store_true",
                        help="train and report only the six models of claim 4 (for longer runs)")
    args = parser.parse_args(argv)
    few, fewest = args.negatives

    path = args.path or default_cifar10_npz_path()
    if path is None:
        print("SKIPPED: no CIFAR-10 file found (pass its path or set SKDIM_CIFAR10_NPZ).")
        return 0
    torch.set_num_threads(args.threads)
    data = load_cifar10_jpeg_npz(path, n_train=args.n_train, n_test=args.n_test)
    X_tr, y_tr, X_te, y_te = data.X_train, data.y_train, data.X_test, data.y_test
    common = dict(
        encoder="dcgan", mi_estimator="jsd", critic_units=args.critic_units,
        max_epochs=args.epochs, batch_size=64, learning_rate=1e-4,
        precision=args.precision, device="cpu", random_state=args.seed,
    )
    print(f"CIFAR-10 (JPEG q75 copy): DIM trained on the first {len(X_tr)} training images, "
          f"probed on {len(X_te)} test images")
    print("shared configuration:", common)

    def negatives_row(bound, k):
        return f"DIM(L) {bound}" + (f", {k} neg" if k is not None else "")

    specs = {
        "DIM(L) jsd": DIM_L,
        "DIM(L) jsd, gamma=0": dict(DIM_L, gamma=0.0),
        "DIM(G)": DIM_G,
    }
    # Claim 4's models per bound: all negatives (None), then the two reduced numbers.
    claim4 = {bound: [negatives_row(bound, k) for k in (None, few, fewest)]
              for bound in ("jsd", "infonce")}
    for bound in claim4:
        for k in (None, few, fewest):
            specs[negatives_row(bound, k)] = dict(DIM_L, mi_estimator=bound, n_negatives=k)
    specs["DIM(L) jsd + occlusion"] = dict(DIM_L, occlusion=True)
    specs["DIM(L) jsd + coordinates"] = dict(DIM_L, coordinate_weight=1.0,
                                             relative_coordinate_weight=1.0)
    if args.negatives_only:
        specs = {k: v for k, v in specs.items() if k in claim4["jsd"] + claim4["infonce"]}
    # Claim 4 alone probes Y only, as claim 4 needs.
    full_layers = set() if args.negatives_only else {"DIM(L) jsd", "DIM(G)"}
    rows, models = {}, {}
    for name, params in specs.items():
        t = time.perf_counter()
        dim = DeepInfoMax(**{**common, **params}).fit(X_tr)
        fit_s = time.perf_counter() - t
        layers = ("conv", "fc", "y") if name in full_layers else ("y",)
        rows[name] = probe(dim, X_tr, y_tr, X_te, y_te, layers)
        rows[name]["fit_s"] = fit_s
        models[name] = dim
        print(f"  {name:<26} fit {fit_s:6.1f} s  " + "  ".join(
            f"{k} {v:.2f}" for k, v in rows[name].items() if k != "fit_s"), flush=True)

    if not args.negatives_only:
        untrained = DeepInfoMax(**{**common, **DIM_L, "max_epochs": 0}).fit(X_tr)
        rows["untrained encoder"] = probe(untrained, X_tr, y_tr, X_te, y_te, ("conv", "fc", "y"))

        # Claim 1, MLP-200 probe (table 1) on Y.
        mlp = {}
        for name in ("DIM(L) jsd", "DIM(G)"):
            dim = models[name]
            mlp[name] = 100 * mlp_probe(
                dim.extract_features(X_tr, "y"), y_tr, dim.extract_features(X_te, "y"), y_te,
                epochs=30, batch_size=256, learning_rate=1e-3, milestones=(20,), random_state=0,
            )
        # Claim 2, reconstruction MS-SSIM from Y.
        ssim = {}
        for name in ("DIM(L) jsd", "DIM(G)"):
            dim = models[name]
            ssim[name] = reconstruction_ms_ssim(
                dim.extract_features(X_tr, "y"), X_tr, dim.extract_features(X_te, "y"), X_te,
                epochs=30, random_state=0,
            )
        # Claim 3, NDM of the test codes (Y as in the paper, and sigmoid(Y)).
        ndm = {}
        for name in ("DIM(L) jsd", "DIM(L) jsd, gamma=0"):
            codes = models[name].extract_features(X_te, "y")
            ndm[name] = tuple(
                neural_dependency_measure(codes, sigmoid=s, device="cpu", random_state=0)
                for s in (False, True)
            )

    print()
    print(f"{'model':<27} {'conv':>6} {'fc':>6} {'Y':>6}   (linear probe, % test accuracy)")
    for name, r in rows.items():
        cells = [f"{r[k]:6.2f}" if k in r else f"{'-':>6}" for k in ("conv", "fc", "y")]
        print(f"{name:<27} " + " ".join(cells))

    def verdict(ok):
        return "reproduced" if ok else "NOT reproduced at this budget"

    print()
    print("claim                                              | numbers | verdict")
    if not args.negatives_only:
        L, G = rows["DIM(L) jsd"], rows["DIM(G)"]
        print(f"1. local > global, linear (conv/fc/Y)              | L {L['conv']:.2f}/{L['fc']:.2f}/"
              f"{L['y']:.2f} vs G {G['conv']:.2f}/{G['fc']:.2f}/{G['y']:.2f} | "
              f"{verdict(all(L[k] > G[k] for k in ('conv', 'fc', 'y')))}")
        print(f"1. local > global, MLP-200 probe on Y              | L {mlp['DIM(L) jsd']:.2f} vs G "
              f"{mlp['DIM(G)']:.2f} | {verdict(mlp['DIM(L) jsd'] > mlp['DIM(G)'])}")
        print(f"2. global > local, reconstruction MS-SSIM from Y   | G {ssim['DIM(G)']:.4f} vs L "
              f"{ssim['DIM(L) jsd']:.4f} | {verdict(ssim['DIM(G)'] > ssim['DIM(L) jsd'])}")
        a, b = ndm["DIM(L) jsd"], ndm["DIM(L) jsd, gamma=0"]
        print(f"3. prior lowers NDM (Y; sigmoid(Y)), nats         | gamma=0.1 {a[0]:.3f}; {a[1]:.3f} vs "
              f"gamma=0 {b[0]:.3f}; {b[1]:.3f} | {verdict(a[0] < b[0])}")
    j, n = ([rows[k]["y"] for k in claim4[bound]] for bound in ("jsd", "infonce"))
    label = f"4. negatives all/{few}/{fewest}, Y: jsd vs infonce"
    print(f"{label:<50} | jsd {j[0]:.2f}/{j[1]:.2f}/{j[2]:.2f}"
          f" (range {max(j) - min(j):.2f}); infonce {n[0]:.2f}/{n[1]:.2f}/{n[2]:.2f} (drop "
          f"{n[0] - n[2]:.2f}) | {verdict(n[0] - n[2] > max(j) - min(j))}")
    if not args.negatives_only:
        occ, crd = rows["DIM(L) jsd + occlusion"]["y"], rows["DIM(L) jsd + coordinates"]["y"]
        print(f"5. occlusion / coordinates do not hurt Y           | base {L['y']:.2f}, occlusion "
              f"{occ:.2f}, coordinates {crd:.2f} | "
              f"{verdict(min(occ, crd) >= L['y'] - 1.0)} (within 1 point or better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
