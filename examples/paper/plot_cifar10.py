"""
=====================================================
CIFAR-10: your own data and the paper's probe table
=====================================================

This example shows how to run DIM on a copy of CIFAR-10 you have on disk and
print a table in the style of the paper's tables 1 and 4: the accuracy of a
probe trained on frozen features taken from the encoder's three evaluation
layers -- the last convolutional map (``conv``), the fully connected layer
(``fc``) and the code (``y``).

**Getting the data.** Nothing in skdim downloads data. Download the
"CIFAR-10 python version" from https://www.cs.toronto.edu/~kriz/cifar.html
and unpack it, or use a ``.npz`` file of JPEG-compressed images (see
:func:`skdim.datasets.load_cifar10_jpeg_npz`). Give the path as an argument
or in the ``SKDIM_CIFAR10_NPZ`` environment variable (it may also name the
``cifar-10-batches-py`` folder)::

    python plot_cifar10.py ~/data/cifar-10-batches-py
    SKDIM_CIFAR10_NPZ=~/data/cifar10_jpeg_bytes.npz python plot_cifar10.py

.. note::

   **The results on this page need the data.** The table and the figure
   below are computed when the documentation is built, and only if
   ``SKDIM_CIFAR10_NPZ`` names a copy of CIFAR-10 then (``docs/build.sh``
   sets it to ``../shared/data/cifar10_jpeg_bytes.npz``, beside the
   checkout, when that file exists). If this page was built without the
   data, the output below says "No CIFAR-10 data found" and the figure only
   repeats how to provide it: set ``SKDIM_CIFAR10_NPZ`` and run
   ``bash docs/build.sh`` again, or run this script yourself. Measured
   numbers on all 50,000 images are in :ref:`benchmarks`.

**Scale.** So that the documentation builds in minutes on a CPU, the example
trains on 2,000 images for a few epochs with a small critic. The paper
trains on all 50,000 images for 1000 epochs (``critic_units=2048``,
``max_epochs=1000``); expect numbers far below its table here.
"""

# %%
# Find and load the data
# ----------------------
import os
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skdim import DeepInfoMax
from skdim.datasets import load_cifar10, load_cifar10_jpeg_npz
from skdim.evaluation import format_table, probe_table

N_TRAIN, N_TEST = 2000, 1000


def find_cifar10():
    """The path on the command line or in SKDIM_CIFAR10_NPZ, else None."""
    # sphinx-gallery runs this file with no arguments; sys.argv[1] is for
    # ``python plot_cifar10.py PATH``.
    if len(sys.argv) > 1:
        return Path(sys.argv[1]).expanduser(), "the command line"
    if os.environ.get("SKDIM_CIFAR10_NPZ"):
        return Path(os.environ["SKDIM_CIFAR10_NPZ"]).expanduser(), "SKDIM_CIFAR10_NPZ"
    return None, "nothing"


def load(path):
    """CIFAR-10 from the python batches folder or from a JPEG .npz file."""
    if path.is_dir():
        data = load_cifar10(path)
        # The official batches are in random order, so the first rows are a
        # roughly class-balanced subset.
        return (data.X_train[:N_TRAIN], data.y_train[:N_TRAIN],
                data.X_test[:N_TEST], data.y_test[:N_TEST], data.class_names)
    data = load_cifar10_jpeg_npz(path, n_train=N_TRAIN, n_test=N_TEST)
    return (data.X_train, data.y_train,
            data.X_test, data.y_test, data.class_names)


HOW_TO = (
    "The results of this example need CIFAR-10. Download the 'CIFAR-10 python\n"
    "version' from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it, and run\n"
    "  python plot_cifar10.py /path/to/cifar-10-batches-py\n"
    "or set SKDIM_CIFAR10_NPZ to that folder or to a JPEG .npz copy (see\n"
    "skdim.datasets.load_cifar10_jpeg_npz). Set SKDIM_CIFAR10_NPZ before\n"
    "bash docs/build.sh to show the results on this page."
)
path, source = find_cifar10()
if path is None or not path.exists():
    data = None
    where = "" if path is None else f"({source} names {path}, which does not exist.)\n"
    print("No CIFAR-10 data found, so this example stops here.\n" + where + HOW_TO)
else:
    data = load(path)
    X_train, y_train, X_test, y_test, class_names = data
    print(f"CIFAR-10 from {source}: {path.name}")
    print(f"train {X_train.shape} {X_train.dtype}, test {X_test.shape}")
    print("classes:", ", ".join(class_names))

# %%
# Train DIM(L)
# ------------
# The images are ``(n, 32, 32, 3)`` uint8, channels last: DIM scales them to
# ``[0, 1]``, standardises each channel and, for 32 x 32 input, picks the
# paper's DCGAN-like encoder. The local map is its 128 x 8 x 8 middle layer.
if data is not None:
    dim = DeepInfoMax(
        alpha=0.0, beta=1.0, gamma=0.1,  # DIM(L), the paper's main model
        mi_estimator="jsd",
        critic_units=128,                # the paper: 2048
        max_epochs=3,                    # the paper: 1000
        random_state=0,
    )
    start = time.perf_counter()
    dim.fit(X_train)
    seconds = time.perf_counter() - start
    print(f"trained {dim.n_iter_} epochs in {seconds:.0f} s")
    print("encoder:", type(dim.encoder_).__name__, dim.encoder_.input_shape)

# %%
# The probe table
# ---------------
# :func:`~skdim.evaluation.probe_table` extracts features from each layer,
# trains the probe on the training features and reports test accuracy. A
# callable ``X -> features`` is a baseline; raw pixels are the usual one.
# ``probe="linear"`` is the linear SVM of the paper's table 4; ``"mlp"`` is
# the 200-unit, dropout classifier of table 1. With 2,000 images and up to
# 4,096 features a strongly regularised SVM (``C=3e-4``) both generalises
# better and trains in seconds rather than minutes; tune ``C`` on a
# validation split for real results.
if data is not None:
    start = time.perf_counter()
    table = probe_table(
        {"DIM(L)": dim, "raw pixels": lambda X: X.reshape(len(X), -1) / 255.0},
        X_train, y_train, X_test, y_test,
        probe="linear", C=3e-4, random_state=0,
    )
    print(f"probes trained in {time.perf_counter() - start:.0f} s\n")
    print(format_table(table))
    print("\nThe paper's table 4 (linear SVM, 50k images, 1000 epochs):")
    paper = {
        "DIM(L)": {"conv": 0.6325, "fc": 0.5406, "y": 0.4962},
        "DIM(G)": {"conv": 0.4680, "fc": 0.2879, "y": 0.2908},
    }
    print(format_table(paper))

# %%
if data is not None:
    columns = ["conv", "fc", "y"]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    accuracies = [table["DIM(L)"][c] for c in columns]
    bars = ax.bar(columns, accuracies, color="tab:blue",
                  label="DIM(L), this run")
    ax.bar_label(bars, fmt="%.3f")
    ax.axhline(table["raw pixels"]["features"], color="0.4", ls="--",
               label="raw pixels")
    ax.axhline(0.1, color="0.7", ls=":", label="chance")
    ax.set_ylabel("test accuracy (linear SVM)")
    ax.set_title(f"CIFAR-10, {N_TRAIN} training images")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    plt.show()
else:
    # Without the data, say so in the figure too (it is the gallery's thumbnail).
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.axis("off")
    ax.text(0.5, 0.62, "No CIFAR-10 data at build time", ha="center",
            fontsize=13, weight="bold")
    ax.text(0.5, 0.3, "Set SKDIM_CIFAR10_NPZ to a copy of CIFAR-10\n"
            "(python batches folder or JPEG .npz)\nand build the docs again.",
            ha="center", fontsize=10)
    plt.show()
