"""
==========================================
Quickstart: DIM features for a linear SVM
==========================================

Deep InfoMax learns a 64-number code for each image without labels. Here we
put :class:`~skdim.DeepInfoMax` in front of a linear SVM, exactly as one
would put :class:`~sklearn.decomposition.PCA` there, and compare three
pipelines that share the same classifier:

* raw pixels -> linear SVM;
* PCA (64 components) -> linear SVM;
* DIM (64-dimensional codes) -> linear SVM.

The data are scikit-learn's 8 x 8 handwritten digits. Their rows are flat
vectors of 64 pixels; ``image_shape=(8, 8)`` tells DIM to read each row as an
image, so all three pipelines take the same ``X``.
"""

# %%
# Load the data and split it
# --------------------------
import time

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skdim import DeepInfoMax

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test images, 8x8 pixels")

# %%
# Three pipelines, one probe
# --------------------------
# The probe is a standardised linear SVM in every case. DIM is trained for
# only 10 epochs with a small critic (``critic_units=128``) to keep this
# example short. It still takes a while: on the project's shared two-core
# CPU the whole script took 62 to 138 s in four runs, nearly all of it DIM's
# fit, depending on what else was running (the times printed below are this
# build's). The defaults (20 epochs, 512 units) or the paper's settings
# train longer and do better.


def probe():
    svm = LinearSVC(max_iter=5000, random_state=0)
    return [("scale", StandardScaler()), ("svm", svm)]


pca = PCA(n_components=64, random_state=0)
dim = DeepInfoMax(
    n_components=64,
    image_shape=(8, 8),  # each row of X is an 8x8 image
    max_epochs=10,
    critic_units=128,
    random_state=0,
)
pipelines = {
    "raw pixels": Pipeline(probe()),
    "PCA": Pipeline([("pca", pca)] + probe()),
    "DIM": Pipeline([("dim", dim)] + probe()),
}

scores, seconds = {}, {}
for name, pipe in pipelines.items():
    start = time.perf_counter()
    pipe.fit(X_train, y_train)
    seconds[name] = time.perf_counter() - start
    scores[name] = pipe.score(X_test, y_test)
    print(f"{name:>10}: test accuracy {scores[name]:.3f}, "
          f"fit in {seconds[name]:.1f} s")

# %%
# The codes are an ordinary float32 array, ready for any estimator:
codes = pipelines["DIM"]["dim"].transform(X_test)
print(codes.shape, codes.dtype)

# %%
# Compare
# -------
fig, ax = plt.subplots(figsize=(5, 3))
names = list(scores)
colors = ["0.6", "0.4", "tab:blue"]
bars = ax.bar(names, [scores[n] for n in names], color=colors)
ax.bar_label(bars, fmt="%.3f")
ax.set_ylim(0.8, 1.0)
ax.set_ylabel("test accuracy (linear SVM)")
ax.set_title("Digits: same probe, three representations")
fig.tight_layout()
plt.show()

# %%
# DIM never saw a label, yet its 64 numbers per image are at least as
# linearly useful as the 64 raw pixels or 64 principal components. The
# :class:`~sklearn.pipeline.Pipeline` fits DIM on ``X_train`` only, so
# nothing leaks from the test set; the same pipeline works in
# :func:`~sklearn.model_selection.cross_val_score` and
# :class:`~sklearn.model_selection.GridSearchCV`.
