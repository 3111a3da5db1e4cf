"""
===================================
Beyond images: DIM on 1-D signals
===================================

Deep InfoMax is not tied to images: the local feature map can be a sequence
of positions along a signal, and the code ``Y`` must then carry what all
stretches of the signal have in common. Give :class:`~skdim.DeepInfoMax` a
2-D array ``(n_samples, length)`` and it reads each row as a 1-channel signal
(``(n, C, L)`` with ``input_layout="NCL"`` for several channels) and builds
a 1-D convolutional encoder.

We make three kinds of noisy waveform -- sine, square and sawtooth -- each
with a random frequency, phase and amplitude. A linear classifier on the raw
samples struggles, because the same shape shifted in time looks like a
different vector; the code of a local-DIM encoder summarises the whole
signal and is much easier to classify.
"""

# %%
# Synthetic signals
# -----------------
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skdim import DeepInfoMax
from skdim.datasets import make_waveforms

# Noisy sine (0), square (1) and sawtooth (2) waves, each with a random
# frequency, phase and amplitude.
X, y = make_waveforms(900)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=1 / 3, random_state=0
)

names = ["sine", "square", "sawtooth"]
fig, axes = plt.subplots(1, 3, figsize=(11, 2.4), sharey=True)
for k, ax in enumerate(axes):
    for row in X_train[y_train == k][:3]:
        ax.plot(row, lw=1)
    ax.set_title(names[k])
    ax.set_xlabel("time step")
fig.tight_layout()

# %%
# DIM on signals
# --------------
# ``X`` is ``(n_samples, 128)``: with no ``image_shape`` DIM reads it as
# signals and ``encoder="auto"`` picks the 1-D encoder. The local feature
# map is a sequence of positions; everything else is as for images.
dim = DeepInfoMax(
    n_components=32, max_epochs=15, critic_units=128, random_state=0
)
dim.fit(X_train)
print("layout:", dim.layout_)
print("encoder blocks:", [type(b[0]).__name__ for b in dim.encoder_.blocks])


def linear_svm():
    svm = LinearSVC(max_iter=10_000, random_state=0)
    return make_pipeline(StandardScaler(), svm)


results = {
    "raw signal": linear_svm().fit(X_train, y_train).score(X_test, y_test),
    "PCA (32)": make_pipeline(PCA(32, random_state=0), linear_svm())
    .fit(X_train, y_train)
    .score(X_test, y_test),
    "DIM codes (32)": linear_svm()
    .fit(dim.transform(X_train), y_train)
    .score(dim.transform(X_test), y_test),
}
for name, acc in results.items():
    print(f"{name:>15}: {acc:.3f}")

# %%
# The codes, in two dimensions
# ----------------------------
# A PCA of the test codes, coloured by the (unseen during training) class.
codes_2d = PCA(2, random_state=0).fit_transform(dim.transform(X_test))
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.6))
for k, name in enumerate(names):
    ax0.scatter(*codes_2d[y_test == k].T, s=8, label=name)
ax0.set_title("PCA of DIM codes (test set)")
ax0.legend(fontsize=8)
colors = ["0.6", "0.4", "tab:blue"]
bars = ax1.barh(list(results), list(results.values()), color=colors)
ax1.bar_label(bars, fmt="%.2f")
ax1.set_xlim(0, 1.05)
ax1.set_xlabel("test accuracy (linear SVM)")
fig.tight_layout()
plt.show()
