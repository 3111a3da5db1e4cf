"""
=====================================
Deep InfoMax in your own PyTorch loop
=====================================

:class:`~skdim.DeepInfoMax` is a thin scikit-learn shell over
:class:`skdim.nn.DIMTrainer`, the PyTorch core of skdim. The trainer holds
everything training needs -- the encoder and its critics, the prior
discriminator, both Adam optimizers, the random generator, the epoch and
step counters and the history -- and trains on any iterable of tensors,
such as a :class:`torch.utils.data.DataLoader`. Use it when DIM is one part
of a larger PyTorch program.

This example

1. trains a :class:`~skdim.nn.DIMTrainer` from a ``DataLoader`` over
   scikit-learn's digits, with callbacks (:mod:`skdim.nn.callbacks`);
2. saves its ``state_dict`` with :func:`torch.save`, loads it into a freshly
   built trainer and checks that both encode alike;
3. uses the trained encoder in a scikit-learn
   :class:`~sklearn.pipeline.Pipeline`;
4. does the same with :class:`~skdim.DeepInfoMax` and shows the public
   bridge between the two: ``preprocess(X)`` and ``encoder_``.
"""

# %%
# The data: a DataLoader over the digits
# --------------------------------------
# The trainer takes batches of tensors ``(B, C, H, W)`` -- or tuples whose
# first entry is one, so a labelled ``DataLoader`` works as it is (the
# labels are ignored). Standardising the pixels is our job here;
# :class:`~skdim.DeepInfoMax` does it for us (see the end).
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from skdim import DeepInfoMax
from skdim.nn import DIMConfig, DIMTrainer
from skdim.nn.callbacks import Callback, EpochLogger

X, y = load_digits(return_X_y=True)  # flat rows of 64 pixels, values 0..16
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
mean, std = X_train.mean(), X_train.std()


def to_images(X):
    """Flat rows -> standardised float32 images (n, 1, 8, 8)."""
    return torch.from_numpy(((X - mean) / std).astype(np.float32)).reshape(-1, 1, 8, 8)


train_set = TensorDataset(to_images(X_train), torch.from_numpy(y_train))
loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True,
                    generator=torch.Generator().manual_seed(0))
print(f"{len(train_set)} training images, {len(loader)} batches per epoch")

# %%
# Callbacks
# ---------
# A callback is any object with the hooks ``on_fit_begin``,
# ``on_epoch_begin``, ``on_batch_end``, ``on_epoch_end`` and ``on_fit_end``;
# the base class :class:`~skdim.nn.Callback` provides no-op versions.
# :class:`~skdim.nn.callbacks.EpochLogger` prints one line per epoch;
# early stopping and a per-batch loss recorder are a few lines each.
# Setting ``trainer.stop_training = True`` ends training.


class EarlyStopping(Callback):
    """Stop when the epoch's mean loss has not improved for ``patience`` epochs."""

    def __init__(self, patience=3):
        self.patience, self.best, self.bad = patience, float("inf"), 0

    def on_epoch_end(self, trainer, logs):
        if logs["loss"] < self.best:
            self.best, self.bad = logs["loss"], 0
        else:
            self.bad += 1
            trainer.stop_training = self.bad >= self.patience


class BatchLosses(Callback):
    """Keep the loss of every optimisation step."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, trainer, logs):
        self.losses.append(float(logs["loss"]))  # logs hold 0-d tensors


# %%
# Build and train
# ---------------
# :meth:`DIMTrainer.build <skdim.nn.DIMTrainer.build>` builds the encoder
# (for 8 x 8 images, the size-agnostic ``"conv"`` encoder, whose first
# block keeps the 8 x 8 resolution as the local map), the critics and the prior discriminator, all initialised from
# ``seed``. :class:`~skdim.nn.DIMConfig` holds the objective's weights and
# choices; here DIM(L) with the infoNCE bound. A small critic and a larger
# learning rate than the default ``1e-4`` keep this example short.
EPOCHS = 3
settings = dict(in_channels=1, input_shape=(8, 8), n_components=64, critic_units=128,
                config=DIMConfig(mi_estimator="infonce"), learning_rate=1e-3, seed=0)

trainer = DIMTrainer.build(**settings)
recorder = BatchLosses()
start = time.perf_counter()
history = trainer.fit(loader, epochs=EPOCHS, callbacks=[
    EpochLogger(file=sys.stdout), EarlyStopping(patience=2), recorder,
])
trainer_seconds = time.perf_counter() - start
print(f"{trainer.epoch} epochs, {trainer.step} steps in {trainer_seconds:.1f} s")

# %%
# ``fit`` returns :attr:`~skdim.nn.DIMTrainer.history`, one dict of epoch
# means per epoch -- the same format as :attr:`DeepInfoMax.history_
# <skdim.DeepInfoMax.history_>`. With infoNCE, ``local_mi`` is a lower bound
# on mutual information in nats (at most ``log`` of the number of
# candidates per positive); with JSD (the core's default, as in the paper's
# code) it would be a Jensen-Shannon score, at most 0, not nats.
print(history[-1])

# %%
# Save, load, compare
# -------------------
# ``state_dict()`` covers the whole training state as CPU tensors and plain
# values, so ``torch.load(weights_only=True)`` reads it back without running
# any code. Loaded into a trainer built with the same arguments, it encodes
# exactly like the original -- and could continue training where it
# stopped.
path = Path(tempfile.mkdtemp()) / "dim_trainer.pt"
torch.save(trainer.state_dict(), path)
print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB; sections:",
      ", ".join(trainer.state_dict()))

fresh = DIMTrainer.build(**settings)
fresh.load_state_dict(torch.load(path, weights_only=True))


def encode(encoder, X):
    """Codes Y of flat digit rows, from a frozen encoder."""
    encoder.eval()  # BatchNorm uses its running statistics
    with torch.no_grad():
        return encoder(to_images(X)).y.numpy()


same = np.array_equal(encode(trainer.encoder, X_test), encode(fresh.encoder, X_test))
print(f"loaded trainer: epoch {fresh.epoch}, step {fresh.step}; identical codes: {same}")

# %%
# The encoder in a scikit-learn pipeline
# --------------------------------------
# ``trainer.encoder`` is a plain :class:`torch.nn.Module`. Wrapped in a
# :class:`~sklearn.preprocessing.FunctionTransformer`, it turns flat rows into
# codes for any scikit-learn estimator -- here a logistic regression.


def trainer_codes(X):
    return encode(fresh.encoder, X)


own_loop = Pipeline([
    ("encode", FunctionTransformer(trainer_codes)),
    ("scale", StandardScaler()),
    ("clf", LogisticRegression(max_iter=2000)),
]).fit(X_train, y_train)

# %%
# The same with DeepInfoMax
# -------------------------
# :class:`~skdim.DeepInfoMax` with the same settings builds the same kind of
# trainer, trains it on batches drawn from ``X`` and standardises the input
# itself. It keeps the trainer private; what it exposes is the trained
# encoder, ``encoder_``, and ``preprocess(X)``, the tensor the encoder sees.
# Together they give exactly what ``transform`` returns, for custom heads
# or fine-tuning in PyTorch.
dim = DeepInfoMax(n_components=64, image_shape=(8, 8), mi_estimator="infonce",
                  critic_units=128, learning_rate=1e-3, max_epochs=EPOCHS, random_state=0)
estimator = Pipeline([
    ("dim", dim),
    ("scale", StandardScaler()),
    ("clf", LogisticRegression(max_iter=2000)),
])
start = time.perf_counter()
estimator.fit(X_train, y_train)
estimator_seconds = time.perf_counter() - start

x = dim.preprocess(X_test)  # (n, 1, 8, 8) float32, standardised as in fit
with torch.no_grad():
    bridge = dim.encoder_.eval()(x).y.numpy()
print(f"preprocess(X_test): {tuple(x.shape)} {x.dtype}")
print("encoder_(preprocess(X)) == transform(X):",
      np.allclose(bridge, dim.transform(X_test), rtol=1e-5, atol=1e-6))
print("DeepInfoMax standardises like to_images():",
      np.allclose(x.numpy(), to_images(X_test).numpy(), atol=1e-6))

# %%
# Results
# -------
pixels = Pipeline([("scale", StandardScaler()),
                   ("clf", LogisticRegression(max_iter=2000))]).fit(X_train, y_train)
rows = [
    ("DIMTrainer + DataLoader", trainer.epoch, trainer_seconds, own_loop.score(X_test, y_test)),
    ("DeepInfoMax", dim.n_iter_, estimator_seconds, estimator.score(X_test, y_test)),
    ("raw pixels", "-", "-", pixels.score(X_test, y_test)),
]
print(f"{'features for LogisticRegression':<32} {'epochs':>6} {'fit s':>6} {'test acc':>8}")
for name, epochs, seconds, accuracy in rows:
    seconds = seconds if isinstance(seconds, str) else f"{seconds:.1f}"
    print(f"{name:<32} {epochs:>6} {seconds:>6} {accuracy:>8.3f}")

# %%
# The two DIM models differ only in their random draws (seed, batch order)
# and in who standardised the pixels. Both learned without labels, in a few
# epochs that are far from converged, and on 8 x 8 digits the raw pixels are
# a strong baseline for a linear classifier: the accuracies show the
# mechanics, not what DIM reaches with longer training.

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2))
ax0.plot(np.arange(1, len(recorder.losses) + 1) / len(loader), recorder.losses,
         lw=0.8, color="0.6", label="per batch")
ax0.plot([h["epoch"] for h in history], [h["loss"] for h in history],
         marker="o", color="tab:blue", label="epoch mean")
ax0.set_xlabel("epoch")
ax0.set_ylabel("loss")
ax0.set_title("DIMTrainer, own loop")
ax0.legend(fontsize=8)
ax1.plot([h["epoch"] for h in history], [h["local_mi"] for h in history],
         marker="o", label="DIMTrainer")
ax1.plot([h["epoch"] for h in dim.history_], [h["local_mi"] for h in dim.history_],
         marker="s", label="DeepInfoMax")
ax1.set_xlabel("epoch")
ax1.set_ylabel("local_mi (infoNCE, nats)")
ax1.set_title("Same history format")
ax1.legend(fontsize=8)
fig.tight_layout()
plt.show()
