"""Classification probes on frozen features (paper section 4.1, tables 1 and 4).

Public names are re-exported by :mod:`skdim.evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d
from torch import nn

from .._runtime import resolve_device, seed_from
from ..nn.sampling import batch_indices
from ..nn.seeding import SeededDropout, build_seeded, seeded_generator
from ._utils import LAYERS, TRAINING_CONSTRAINTS

__all__ = ["linear_probe", "mlp_probe", "probe_table", "format_table"]

_FEATURE_CONSTRAINTS: dict[str, list] = {
    "F_train": ["array-like"],
    "y_train": ["array-like"],
    "F_test": ["array-like"],
    "y_test": ["array-like"],
}


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


@validate_params(
    {
        **_FEATURE_CONSTRAINTS,
        "C": [Interval(Real, 0, None, closed="neither")],
        "standardize": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
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
        Seed of the solver (used by the dual solver only). An int always
        gives the same result; None draws one seed from NumPy's global
        ``RandomState`` (so ``np.random.seed`` makes it repeatable), as
        elsewhere in scikit-learn.

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


@validate_params(
    {
        **_FEATURE_CONSTRAINTS,
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        **TRAINING_CONSTRAINTS,
        "milestones": ["array-like"],
        "average_last": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
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

    The paper's classifier of table 1 (section 4.1: an MLP with one hidden
    layer of 200 units and dropout), built as in the official release
    (``cortex_DIM``'s ``Classifier`` with ``fc_args=[(200, True, 0.1,
    "ReLU")]``, trained by its ``ClassificationEvaluator`` with learning rate
    1e-4, batches of 64 and ``MultiStepLR`` at epochs 50 and 100). With the
    defaults the protocol is exactly:

    * **network**: ``Linear(n_features, 200) -> Dropout(p=0.1) ->
      BatchNorm1d(200) -> ReLU -> Linear(200, n_classes)``; the linear layers
      get PyTorch's default initialisation;
    * **input**: the features standardised to zero mean and unit variance
      with statistics of the training set (the release feeds the raw
      features); no data augmentation -- the features are fixed;
    * **loss**: cross-entropy over the classes seen in ``y_train``;
    * **optimizer**: Adam with PyTorch's default betas (0.9, 0.999) and eps
      1e-8 (the release's framework, cortex, defaults to betas (0.5, 0.999)),
      learning rate 1e-4 and no weight decay; the learning rate is multiplied
      by 0.1 after each epoch in ``milestones`` (50 and 100, as in the
      release);
    * **batches**: 64 rows, a fresh shuffle every epoch; a last batch of a
      single row (which BatchNorm cannot train on) is merged into the
      previous batch (:func:`skdim.nn.sampling.batch_indices`), while the
      release drops an incomplete last batch;
    * **length**: 100 epochs; the test accuracy is measured after each of the
      last ``average_last`` epochs (BatchNorm and dropout in eval mode) and
      averaged. The paper trains for 1000 epochs and averages over the last
      100: pass ``epochs=1000, average_last=100`` for that.

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
        Dropout rate after the first linear layer, in [0, 1).
    epochs : int, default=100
        Passes over the training set (the paper trains for 1000).
    batch_size : int, default=64
        Minibatch size, at least 2.
    learning_rate : float, default=1e-4
        Adam learning rate (the release's value).
    milestones : sequence of int, default=(50, 100)
        Epochs after which the learning rate is multiplied by 0.1.
    average_last : int, default=1
        Report the mean test accuracy over the last ``average_last`` epochs
        (at most ``epochs``); the paper averages over the last 100.
    device : str or torch.device, default="cpu"
        Where to train; ``"auto"`` picks CUDA when it is available.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and dropout, each from its own
        :class:`torch.Generator` (PyTorch's global generator is never used).
        An int always gives the same result; None draws one seed from NumPy's
        global ``RandomState`` (so ``np.random.seed`` makes it repeatable),
        as elsewhere in scikit-learn.

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
    if average_last > epochs:
        raise ValueError(
            f"average_last={average_last} must be at most epochs={epochs}: the accuracy "
            "is averaged over the last average_last epochs."
        )
    dev = resolve_device(device)

    labels = LabelEncoder().fit(y_train)
    n_classes = len(labels.classes_)
    scaler = StandardScaler().fit(F_train)
    X_tr = torch.from_numpy(scaler.transform(F_train).astype(np.float32)).to(dev)
    X_te = torch.from_numpy(scaler.transform(F_test).astype(np.float32)).to(dev)
    t_tr = torch.from_numpy(labels.transform(y_train)).to(dev)

    seed = seed_from(random_state)
    shuffle = seeded_generator(seed + 1)
    drop = SeededDropout(dropout, seeded_generator(seed + 2, dev))
    model = build_seeded(seed, lambda: nn.Sequential(
        nn.Linear(X_tr.shape[1], hidden),
        drop,
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma=0.1)

    accuracies = []
    for epoch in range(epochs):
        model.train()
        for rows in batch_indices(len(X_tr), batch_size, shuffle):
            idx = torch.from_numpy(rows).to(dev)
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


@validate_params(
    {
        "models": [Mapping],
        "X_train": "no_validation",  # inputs the models accept
        "y_train": ["array-like"],
        "X_test": "no_validation",
        "y_test": ["array-like"],
        "layers": [str, "array-like"],
        "probe": [StrOptions({"linear", "mlp"}), callable],
    },
    # The probe validates its own keyword arguments, which this function
    # passes on unchecked: nested validation must stay on.
    prefer_skip_nested_validation=False,
)
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
    if len(models) == 0:
        raise ValueError("models must be a non-empty dict of name -> model.")
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer, e.g. ('conv', 'fc', 'y').")
    if isinstance(probe, str):
        probe = _PROBES[probe]

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


@validate_params(
    {
        "table": [Mapping],
        "percent": ["boolean"],
        "decimals": [Interval(Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
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
