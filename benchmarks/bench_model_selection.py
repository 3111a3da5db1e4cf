"""Wall time of a small GridSearchCV over DeepInfoMax with n_jobs=1 and n_jobs=2.

With joblib's default (loky) backend each worker process starts with
``OMP_NUM_THREADS = cpu_count // n_jobs``, which torch honours, so two
workers share the cores instead of each using all of them. The script prints
the torch thread count seen inside the fits and the wall time of each run.

``--backend dask`` runs the same search on a local Dask cluster (two worker
processes, one thread each) through joblib, when ``dask.distributed`` is
installed; any Dask or Ray cluster is used the same way.

Usage::

    python benchmarks/bench_model_selection.py
    python benchmarks/bench_model_selection.py --backend dask
"""

from __future__ import annotations

import argparse
import contextlib
import time

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skdim import DeepInfoMax

GRID = {"dim__alpha": [0.0, 0.5], "dim__gamma": [0.0, 0.1]}


def make_search(n_jobs: int) -> GridSearchCV:
    pipe = Pipeline([
        ("dim", DeepInfoMax(n_components=16, critic_units=64, batch_size=64, max_epochs=2,
                            device="cpu", random_state=0)),
        ("clf", LogisticRegression(max_iter=500)),
    ])
    return GridSearchCV(pipe, GRID, cv=3, n_jobs=n_jobs)


def _threads_in_worker(_):
    import torch as t

    return t.get_num_threads()


@contextlib.contextmanager
def dask_backend(n_workers: int):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster), joblib.parallel_config(backend="dask"):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky")
    args = parser.parse_args()
    digits = load_digits()
    X, y = digits.images.astype(np.float32), digits.target
    print(f"data: {X.shape}, grid: {GRID} x 3 folds = 12 fits + refit; "
          f"cpu_count={joblib.cpu_count()}, torch threads in this process: {torch.get_num_threads()}")
    times = {}
    for n_jobs in (1, 2):
        backend = dask_backend(n_jobs) if args.backend == "dask" else contextlib.nullcontext()
        with backend:
            threads = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_threads_in_worker)(i) for i in range(2))
            t0 = time.perf_counter()
            search = make_search(n_jobs).fit(X, y)
            times[n_jobs] = time.perf_counter() - t0
        print(f"n_jobs={n_jobs} ({args.backend}): {times[n_jobs]:.1f} s, torch threads per task "
              f"{sorted(set(threads))}, best {search.best_params_} "
              f"score {search.best_score_:.3f}")
    print(f"speed-up n_jobs=2 vs 1: {times[1] / times[2]:.2f}x")


if __name__ == "__main__":
    main()
