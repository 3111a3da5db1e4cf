"""Evaluation of learned representations (Hjelm et al. 2019, section 4.1).

The paper scores a representation in several ways, all with the encoder held
fixed unless noted:

* :func:`linear_probe` -- a linear SVM on the features (linear separability);
* :func:`mlp_probe` -- one hidden layer of 200 units with dropout (the
  classifier of the paper's table 1, built as in the official release);
* :func:`finetune` -- semi-supervised fine-tuning of the whole encoder with a
  small head, returning a :class:`FineTunedClassifier`;
* :func:`reconstruction_ms_ssim` -- a decoder trained with an L2 loss on the
  frozen codes, scored with :func:`ms_ssim` (a proxy for the pixel-level
  information the codes keep);
* :func:`nearest_neighbors` and :func:`plot_nearest_neighbors` -- L1 nearest
  neighbours in code space (appendix A.4).

:func:`probe_table` runs a probe over several models and the paper's three
evaluation layers (``"conv"``, ``"fc"``, ``"y"``); :func:`format_table`
prints the result.

Image arguments share one layout rule: a 4-D array is a batch in
``(n, C, H, W)`` when ``shape[1] <= 4 < shape[-1]`` and ``(n, H, W, C)``
otherwise; a 3-D array is a batch of grayscale images ``(n, H, W)``.

Everything that trains takes ``random_state`` and draws only from a local
:class:`torch.Generator`; nothing here touches the global NumPy or torch RNG.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_scalar,
    column_or_1d,
)
from torch import nn

from ._evaluation_utils import (
    LAYERS,
    SeededDropout,
    as_device,
    check_training_params,
    images_to_nchw,
    minibatches,
    seed_from,
    seeded_linear,
)
from ._finetune import FineTunedClassifier, finetune
from ._ms_ssim import ms_ssim, reconstruction_ms_ssim

__all__ = [
    "linear_probe",
    "mlp_probe",
    "probe_table",
    "format_table",
    "finetune",
    "FineTunedClassifier",
    "ms_ssim",
    "reconstruction_ms_ssim",
    "nearest_neighbors",
    "plot_nearest_neighbors",
]


def _check_probe_data(F_train, y_train, F_test, y_test):
    F_train = check_array(F_train, dtype=np.float32, input_name="F_train")
    F_test = check_array(F_test, dtype=np.float32, input_name="F_test")
    y_train = column_or_1d(y_train)
    y_test = column_or_1d(y_test)
    check_consistent_length(F_train, y_train)
    check_consistent_length(F_test, y_test)
    if F_train.shape[1] != F_test.shape[1]:
        raise ValueError(
            f"F_train has {F_train.shape[1]} features but F_test has "
            f"{F_test.shape[1]}; both must come from the same layer."
        )
    if np.unique(y_train).size < 2:
        raise ValueError("y_train must contain at least two classes.")
    return F_train, y_train, F_test, y_test


# --------------------------------------------------------------------------
# Classification probes
# --------------------------------------------------------------------------


def linear_probe(
    F_train,
    y_train,
    F_test,
    y_test,
    *,
    C: float = 1.0,
    standardize: bool = True,
    max_iter: int = 10_000,
    random_state=None,
) -> float:
    """Test accuracy of a linear SVM trained on frozen features.

    The paper's linear evaluation (section 4.1, table 4): a
    :class:`~sklearn.svm.LinearSVC` (one-vs-rest, squared hinge,
    ``dual="auto"``) on features standardised with statistics of the
    training set.

    Parameters
    ----------
    F_train : array-like of shape (n_train, n_features)
        Training features, e.g. ``est.extract_features(X_train, "conv")``.
    y_train : array-like of shape (n_train,)
        Training labels (any labels scikit-learn accepts).
    F_test : array-like of shape (n_test, n_features)
        Test features from the same layer.
    y_test : array-like of shape (n_test,)
        Test labels.
    C : float, default=1.0
        Inverse regularisation strength of the SVM.
    standardize : bool, default=True
        Scale every feature to zero mean and unit variance first.
    max_iter : int, default=10_000
        Iteration cap of the liblinear solver.
    random_state : int, RandomState instance or None, default=None
        Seed of the solver (used by the dual solver only).

    Returns
    -------
    accuracy : float
        Fraction of test samples classified correctly.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import linear_probe
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> F = rng.normal(size=(100, 5)) + 4 * y[:, None]
    >>> linear_probe(F[::2], y[::2], F[1::2], y[1::2], random_state=0)
    1.0
    """
    F_train, y_train, F_test, y_test = _check_probe_data(F_train, y_train, F_test, y_test)
    svm = LinearSVC(C=C, dual="auto", max_iter=max_iter,
                    random_state=seed_from(random_state))
    model = make_pipeline(StandardScaler(), svm) if standardize else svm
    model.fit(F_train, y_train)
    return float(np.mean(model.predict(F_test) == y_test))


def mlp_probe(
    F_train,
    y_train,
    F_test,
    y_test,
    *,
    hidden: int = 200,
    dropout: float = 0.1,
    epochs: int = 100,
    batch_size: int = 64,
    learning_rate: float = 1e-4,
    milestones: Sequence[int] = (50, 100),
    average_last: int = 1,
    device="cpu",
    random_state=None,
) -> float:
    """Test accuracy of the paper's non-linear probe on frozen features.

    One hidden layer of 200 units with dropout (section 4.1, table 1), built
    as in the official release: ``Linear(d, 200) -> Dropout(0.1) ->
    BatchNorm1d -> ReLU -> Linear(200, n_classes)``, trained with Adam and
    cross-entropy on features standardised with training-set statistics. The
    learning rate is divided by 10 at each of ``milestones`` (epochs), as in
    the release.

    Parameters
    ----------
    F_train : array-like of shape (n_train, n_features)
        Training features.
    y_train : array-like of shape (n_train,)
        Training labels (any labels scikit-learn accepts).
    F_test : array-like of shape (n_test, n_features)
        Test features from the same layer.
    y_test : array-like of shape (n_test,)
        Test labels; labels never seen in training count as errors.
    hidden : int, default=200
        Width of the hidden layer.
    dropout : float, default=0.1
        Dropout rate after the first linear layer.
    epochs : int, default=100
        Passes over the training set (the paper trains for 1000).
    batch_size : int, default=64
        Minibatch size.
    learning_rate : float, default=1e-4
        Adam learning rate (the release's value).
    milestones : sequence of int, default=(50, 100)
        Epochs after which the learning rate is multiplied by 0.1.
    average_last : int, default=1
        Report the mean test accuracy over the last ``average_last`` epochs;
        the paper averages over the last 100.
    device : str or torch.device, default="cpu"
        Where to train.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and dropout.

    Returns
    -------
    accuracy : float
        Test accuracy (averaged over the last ``average_last`` epochs).

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import mlp_probe
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 50)
    >>> F = rng.normal(size=(100, 5)) + 4 * (y == "b")[:, None]
    >>> acc = mlp_probe(F[::2], y[::2], F[1::2], y[1::2], epochs=20,
    ...                 learning_rate=1e-2, random_state=0)
    >>> acc >= 0.95
    True
    """
    F_train, y_train, F_test, y_test = _check_probe_data(F_train, y_train, F_test, y_test)
    check_training_params(epochs, batch_size, learning_rate)
    check_scalar(hidden, "hidden", numbers.Integral, min_val=1)
    check_scalar(dropout, "dropout", numbers.Real, min_val=0.0, max_val=1.0,
                 include_boundaries="left")
    check_scalar(average_last, "average_last", numbers.Integral, min_val=1,
                 max_val=epochs)
    if len(F_train) < 2:
        raise ValueError("mlp_probe needs at least n_samples=2 training samples.")
    dev = as_device(device)

    labels = LabelEncoder().fit(y_train)
    n_classes = len(labels.classes_)
    scaler = StandardScaler().fit(F_train)
    X_tr = torch.from_numpy(scaler.transform(F_train).astype(np.float32)).to(dev)
    X_te = torch.from_numpy(scaler.transform(F_test).astype(np.float32)).to(dev)
    t_tr = torch.from_numpy(labels.transform(y_train)).to(dev)

    seed = seed_from(random_state)
    gen = torch.Generator().manual_seed(seed)
    dropout_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    model = nn.Sequential(
        seeded_linear(X_tr.shape[1], hidden, gen),
        SeededDropout(dropout, dropout_gen),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        seeded_linear(hidden, n_classes, gen),
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma=0.1)

    accuracies = []
    for epoch in range(epochs):
        model.train()
        for idx in minibatches(len(X_tr), batch_size, gen):
            idx = idx.to(dev)
            loss = F.cross_entropy(model(X_tr[idx]), t_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if epoch >= epochs - average_last:
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model(b).argmax(1) for b in X_te.split(4096)])
            accuracies.append(np.mean(labels.classes_[pred.cpu().numpy()] == y_test))
    return float(np.mean(accuracies))


_PROBES: dict[str, Callable[..., float]] = {"linear": linear_probe, "mlp": mlp_probe}


def probe_table(
    models: Mapping[str, object],
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    layers: Sequence[str] = LAYERS,
    probe="linear",
    **probe_kwargs,
) -> dict[str, dict[str, float]]:
    """Probe accuracy of several models on several layers.

    Parameters
    ----------
    models : dict of str to model
        Row name to model. A model is either

        * a fitted estimator with ``extract_features(X, layer)`` (e.g.
          :class:`skdim.DeepInfoMax`): probed once per layer in ``layers``;
        * a baseline that maps inputs to features -- a fitted transformer
          (anything with ``transform``) or a callable ``f(X) -> features``
          such as ``lambda X: X.reshape(len(X), -1)`` for raw pixels. Layers
          do not apply to a baseline: its row has the single column
          ``"features"`` (rather than the same number repeated under each
          layer, which would read as three measurements).
    X_train, X_test : array-like
        Inputs the models accept (e.g. images).
    y_train, y_test : array-like of shape (n_samples,)
        Labels.
    layers : sequence of str, default=("conv", "fc", "y")
        Layers passed to ``extract_features`` (the paper's three).
    probe : {"linear", "mlp"} or callable, default="linear"
        :func:`linear_probe`, :func:`mlp_probe`, or any callable with their
        signature ``probe(F_train, y_train, F_test, y_test, **kw) -> float``.
    **probe_kwargs
        Passed to the probe (e.g. ``random_state=0``).

    Returns
    -------
    table : dict of str to dict of str to float
        ``table[model_name][column]`` is the test accuracy; columns are the
        layers, or ``"features"`` for baselines. Print with
        :func:`format_table`.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import probe_table, format_table
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> X = rng.normal(size=(100, 4)) + 5 * y[:, None]
    >>> table = probe_table({"raw": lambda X: X}, X[::2], y[::2], X[1::2], y[1::2],
    ...                     random_state=0)
    >>> table
    {'raw': {'features': 1.0}}
    >>> print(format_table(table))
    model  features
    raw      100.00
    """
    if not isinstance(models, Mapping) or len(models) == 0:
        raise ValueError("models must be a non-empty dict of name -> model.")
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer, e.g. ('conv', 'fc', 'y').")
    if isinstance(probe, str):
        if probe not in _PROBES:
            raise ValueError(f"probe={probe!r} is not one of {sorted(_PROBES)} or a callable.")
        probe = _PROBES[probe]
    elif not callable(probe):
        raise TypeError(
            f"probe must be 'linear', 'mlp' or a callable, got {type(probe).__name__}."
        )

    table: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        if hasattr(model, "extract_features"):
            row = {}
            for layer in layers:
                F_tr = model.extract_features(X_train, layer)
                F_te = model.extract_features(X_test, layer)
                row[layer] = float(probe(F_tr, y_train, F_te, y_test, **probe_kwargs))
        else:
            features = getattr(model, "transform", model)
            if not callable(features):
                raise TypeError(
                    f"models[{name!r}] must have extract_features, be a fitted "
                    f"transformer or a callable X -> features; got {type(model).__name__}."
                )
            row = {"features": float(probe(features(X_train), y_train,
                                           features(X_test), y_test, **probe_kwargs))}
        table[str(name)] = row
    return table


def format_table(table: Mapping[str, Mapping[str, float]], *, percent: bool = True,
                 decimals: int = 2) -> str:
    """Plain-text table of :func:`probe_table` results.

    Rows are models, columns the union of all rows' columns in first-seen
    order; a cell a row lacks prints as ``-``. Numbers are right-aligned.

    Parameters
    ----------
    table : dict of str to dict of str to float
        As returned by :func:`probe_table`.
    percent : bool, default=True
        Print accuracies as percentages, the paper's unit.
    decimals : int, default=2
        Digits after the decimal point.

    Returns
    -------
    text : str
        The table, one line per model after a header line.

    Examples
    --------
    >>> from skdim.evaluation import format_table
    >>> print(format_table({"DIM(L)": {"conv": 0.6325, "fc": 0.5406, "y": 0.4962},
    ...                     "pixels": {"features": 0.39}}))
    model    conv     fc      y  features
    DIM(L)  63.25  54.06  49.62         -
    pixels      -      -      -     39.00
    """
    columns: list[str] = []
    for row in table.values():
        columns += [c for c in row if c not in columns]
    scale = 100.0 if percent else 1.0
    cells = [["model", *columns]]
    for name, row in table.items():
        cells.append([str(name)] + [
            f"{scale * row[c]:.{decimals}f}" if c in row else "-" for c in columns
        ])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns) + 1)]
    lines = ["  ".join([r[0].ljust(widths[0])]
                       + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]).rstrip()
             for r in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Nearest neighbours in code space (appendix A.4)
# --------------------------------------------------------------------------


def nearest_neighbors(codes_query, codes_reference, n_neighbors: int = 5):
    """Nearest reference codes of each query code under the L1 distance.

    The paper's nearest-neighbour analysis (appendix A.4) uses the L1
    (cityblock) distance, which suits codes matched to a uniform prior.

    Parameters
    ----------
    codes_query : array-like of shape (n_queries, n_components)
        Codes to look up (e.g. one test image per class).
    codes_reference : array-like of shape (n_reference, n_components)
        Codes to search.
    n_neighbors : int, default=5
        Neighbours per query, at most ``n_reference``.

    Returns
    -------
    distances : ndarray of shape (n_queries, n_neighbors)
        L1 distances, ascending along each row.
    indices : ndarray of shape (n_queries, n_neighbors)
        Row indices into ``codes_reference``. A query that is itself in the
        reference set finds itself first.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import nearest_neighbors
    >>> ref = np.array([[0.0, 0.0], [3.0, 0.0], [2.0, 2.0]])
    >>> dist, ind = nearest_neighbors([[0.0, 2.9]], ref, n_neighbors=2)
    >>> ind
    array([[0, 2]])
    >>> dist
    array([[2.9, 2.9]])
    """
    codes_query = check_array(codes_query, input_name="codes_query")
    codes_reference = check_array(codes_reference, input_name="codes_reference")
    if codes_query.shape[1] != codes_reference.shape[1]:
        raise ValueError(
            f"codes_query has {codes_query.shape[1]} components but codes_reference "
            f"has {codes_reference.shape[1]}."
        )
    check_scalar(n_neighbors, "n_neighbors", numbers.Integral, min_val=1,
                 max_val=len(codes_reference))
    index = NearestNeighbors(n_neighbors=n_neighbors, metric="manhattan")
    index.fit(codes_reference)
    return index.kneighbors(codes_query)


def _displayable(images, name: str) -> np.ndarray:
    """(n, H, W) or (n, H, W, 3) floats in [0, 1] for imshow."""
    is_uint8 = np.asarray(images).dtype == np.uint8
    x = images_to_nchw(images, name)
    if is_uint8:
        x = x / 255.0
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        # Floats outside [0, 1]: min-max scale the whole batch at once so
        # that relative brightness between images is kept.
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    x = x.permute(0, 2, 3, 1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def plot_nearest_neighbors(images_query, images_reference, indices, *, fig=None,
                           titles: bool = True):
    """Show each query image next to its nearest neighbours.

    One row per query: the query in the first column, then its neighbours in
    order of proximity (as in the paper's figure 8).

    Parameters
    ----------
    images_query : array-like
        The query images, (n, H, W), (n, H, W, C) or (n, C, H, W) with the
        layout rule of :func:`ms_ssim`; uint8, floats in [0, 1], or other
        floats (min-max scaled over the batch for display).
    images_reference : array-like
        The images searched, same layout.
    indices : array-like of int, shape (n_queries, n_neighbors)
        Row indices into ``images_reference``, e.g. from
        :func:`nearest_neighbors`.
    fig : matplotlib Figure, default=None
        Figure to draw in; None creates one with ``matplotlib.pyplot``.
    titles : bool, default=True
        Label the columns ("query", "1", "2", ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, holding ``n_queries * (n_neighbors + 1)`` axes.

    Examples
    --------
    >>> from skdim.evaluation import nearest_neighbors, plot_nearest_neighbors
    >>> _, ind = nearest_neighbors(codes_test[:5], codes_train)  # doctest: +SKIP
    >>> fig = plot_nearest_neighbors(X_test[:5], X_train, ind)   # doctest: +SKIP
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "plot_nearest_neighbors needs matplotlib: pip install skdim[plot]"
        ) from exc
    query = _displayable(images_query, "images_query")
    reference = _displayable(images_reference, "images_reference")
    indices = check_array(indices, dtype=None, input_name="indices")
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"indices must be integers, got dtype {indices.dtype}.")
    if len(indices) != len(query):
        raise ValueError(
            f"indices has {len(indices)} rows but there are {len(query)} query images."
        )
    if indices.min() < 0 or indices.max() >= len(reference):
        raise ValueError(
            f"indices must lie in [0, {len(reference) - 1}] (rows of images_reference)."
        )
    if fig is None:
        import matplotlib.pyplot as plt

        n_rows, n_cols = indices.shape[0], indices.shape[1] + 1
        fig = plt.figure(figsize=(1.2 * n_cols, 1.2 * n_rows))
    axes = fig.subplots(indices.shape[0], indices.shape[1] + 1, squeeze=False)
    cmap = "gray" if query.ndim == 3 else None
    for row, neighbours in enumerate(indices):
        shown = [query[row]] + [reference[j] for j in neighbours]
        for col, (ax, image) in enumerate(zip(axes[row], shown)):
            ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if titles and row == 0:
                ax.set_title("query" if col == 0 else str(col), fontsize=8)
    return fig
