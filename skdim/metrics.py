"""Neural estimators of information and dependence (Hjelm et al. 2019, section 4.1).

* :func:`mine_mutual_information` -- MINE: a neural lower bound on the mutual
  information ``I(X; Z)`` between two arrays with the same rows, e.g. images
  and their codes.
* :func:`neural_dependency_measure` -- NDM: the KL divergence between the
  codes and the same codes with every dimension shuffled independently, i.e.
  the total correlation of the code (0 for independent factors).

Both train a small network on one part of the rows, stop early on a
validation part, and report the bound on the rest (``held_out_fraction``),
so an over-fitted network is not rewarded; ``return_std=True`` adds the
standard error of the reported value. Both standardise their inputs in
float64, so the estimates do not change when a column is rescaled or
shifted. Both are in nats and seeded by ``random_state`` without touching
the global random state. Parameters are checked by scikit-learn's
declarative validation (``InvalidParameterError``, a ``ValueError``).

The networks and their training live in the PyTorch core,
:mod:`skdim.nn.mine` and :mod:`skdim.nn.ndm`.

:class:`skdim.MINEScorer` and :class:`skdim.NDMScorer` wrap them as
scikit-learn scorers.
"""

from __future__ import annotations

import math
import sys
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import expit
from sklearn.utils import check_array
from sklearn.utils._param_validation import (
    InvalidParameterError,
    Interval,
    StrOptions,
    validate_params,
)

from ._data import INPUT_LAYOUTS, channel_stats, column_stats, resolve_layout, standardize
from ._data import standardize_columns
from ._runtime import resolve_device, seed_from
from .nn.mine import (
    MINE_BOUNDS,
    StatisticsNetwork,
    held_out_bound,
    make_branch,
    train_statistics_network,
)
from .nn.ndm import NDM_BOUNDS, NDMDiscriminator, held_out_kl, train_discriminator
from .nn.seeding import build_seeded, seeded_generator

__all__ = ["mine_mutual_information", "neural_dependency_measure"]

# bound="auto" reports infoNCE below this many held-out rows, DV from it on.
AUTO_DV_MIN_ROWS = 1000
# batch_size="auto": the cost of an image batch is that of its convolutions,
# proportional to the batch; smaller batches then buy more updates for the
# same cost (see the docstring). Vector batches are cheap; 256 rows give DV
# the negatives it needs.
AUTO_BATCH_IMAGES = 64
AUTO_BATCH_VECTORS = 256
# Validation rows (early stopping) are at least this many, or a third of the
# training rows when there are fewer than 3 * MIN_VALIDATION_ROWS.
MIN_VALIDATION_ROWS = 100
# ... and at most this many (two blocks of negatives).
MAX_VALIDATION_ROWS = 2048
# Fewer held-out rows than this give a warning: (infoNCE) the cap log(n) is
# low; (DV) the partition term rests on a few pairs.
MIN_HELD_OUT = {"infonce": 50, "dv": 200, "jsd": 200}

# Constraints shared by both estimators (scikit-learn's declarative checks).
_COMMON_CONSTRAINTS = {
    "n_steps": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "learning_rate": [Interval(Real, 0, np.inf, closed="neither")],
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "held_out_fraction": [Interval(Real, 0, 1, closed="neither")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "patience": [Interval(Integral, 1, None, closed="left"), None],
    "ema_rate": [Interval(Real, 0, 1, closed="right")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "return_std": ["boolean"],
}
MINE_CONSTRAINTS = {
    "X": ["array-like"],
    "Z": ["array-like"],
    "bound": [StrOptions({"auto", *MINE_BOUNDS})],
    "embedding_dim": [Interval(Integral, 1, None, closed="left")],
    "image_shape": ["array-like", None],
    "input_layout": [StrOptions(set(INPUT_LAYOUTS))],
    **_COMMON_CONSTRAINTS,
    "batch_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
}
NDM_CONSTRAINTS = {
    "Z": ["array-like"],
    "sigmoid": ["boolean"],
    "bound": [StrOptions(set(NDM_BOUNDS))],
    "n_shuffles": [Interval(Integral, 1, None, closed="left")],
    **_COMMON_CONSTRAINTS,
}


# --------------------------------------------------------------- validation
def _hidden_sizes(value, caller: str) -> tuple[int, ...]:
    """Element-wise rule the constraint system cannot state: positive ints."""
    sizes = (value,) if isinstance(value, Integral) else tuple(np.ravel(np.asarray(value, dtype=object)))
    if not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise InvalidParameterError(
            f"The 'hidden_layer_sizes' parameter of {caller} must be an int >= 1 or a "
            f"tuple of ints >= 1. Got {value!r} instead."
        )
    return tuple(int(s) for s in sizes)


def _check_array(a, name: str) -> np.ndarray:
    """Finite numeric array with at least one row; 1-D input is one column."""
    a = check_array(
        a, dtype="numeric", ensure_2d=False, allow_nd=True, ensure_all_finite=True,
        input_name=name,
    )
    if a.ndim == 0:
        raise ValueError(f"{name} must have one row per sample; got a scalar.")
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.dtype.kind == "b" or a.dtype == np.float16:
        a = a.astype(np.float32)
    return a


def _split_rows(n: int, n_off: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(kept_rows, n_off split-off rows)``, both sorted, drawn from ``seed`` only."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_off:]), np.sort(order[:n_off])


def _split(
    n: int, held_out_fraction: float, validation_fraction: float, batch_size: int, seed: int, who: str
):
    """``(fit_rows, val_rows or None, eval_rows, batch_size)``.

    ``eval_rows`` report the estimate; ``val_rows``, carved from the other
    rows, select the checkpoint and stop training; ``fit_rows`` train.
    """
    train_rows, eval_rows = _split_rows(n, int(round(held_out_fraction * n)), seed)
    if len(train_rows) < 2 or len(eval_rows) < 2:
        raise ValueError(
            f"{who} needs at least 2 training rows and 2 held-out rows; n_samples={n} "
            f"with held_out_fraction={held_out_fraction} gives {len(train_rows)} and "
            f"{len(eval_rows)}. Pass more rows or change held_out_fraction."
        )
    fit_rows, val_rows = train_rows, None
    if validation_fraction > 0:
        n_train = len(train_rows)
        # A validation set of a few dozen rows cannot see over-fitting (its
        # infoNCE saturates at log n_val): at least MIN_VALIDATION_ROWS, or a
        # third of the training rows when there are fewer than 300.
        n_val = max(int(round(validation_fraction * n_train)),
                    min(MIN_VALIDATION_ROWS, n_train // 3))
        # Each check costs n_val * EVAL_BLOCK pair scores; beyond a few
        # thousand rows a check ranks critics no better, and costs more than
        # the training steps between checks. The rows go back to training.
        n_val = min(n_val, MAX_VALIDATION_ROWS)
        fit, val = _split_rows(n_train, n_val, seed + 3)
        # Too few rows for a validation bound: train on all of them instead.
        if len(fit) >= 2 and len(val) >= 2:
            fit_rows, val_rows = train_rows[fit], train_rows[val]
    if batch_size > len(fit_rows):
        warnings.warn(
            f"batch_size={batch_size} is larger than the {len(fit_rows)} training rows; "
            f"using batches of {len(fit_rows)}.",
            UserWarning,
            stacklevel=4,
        )
        batch_size = len(fit_rows)
    return fit_rows, val_rows, eval_rows, batch_size


def _warn_small_held_out(n_eval: int, bound: str, who: str) -> None:
    if n_eval >= MIN_HELD_OUT[bound]:
        return
    if bound == "infonce":
        why = (f"the infoNCE estimate cannot exceed log({n_eval}) = {math.log(n_eval):.2f} "
               "nats and is noisy")
    else:
        why = ("the DV estimate's partition term rests on a few over-confident pairs "
               "and varies by nats from one split to the next")
    warnings.warn(
        f"{who} reports its estimate on only {n_eval} held-out rows (at least "
        f"{MIN_HELD_OUT[bound]} are advised for bound={bound!r}): {why}. Pass more rows, "
        "a larger held_out_fraction, or use return_std=True to see the uncertainty.",
        UserWarning,
        stacklevel=4,
    )


def _finite(value: float, who: str) -> float:
    if not np.isfinite(value):
        raise FloatingPointError(
            f"{who} produced a non-finite estimate ({value}); the critic diverged. "
            "Try a lower learning_rate or more rows."
        )
    return float(value)


def _returned(who: str, what: str, value: float, std_error: float, n_steps_run: int,
              n_steps: int, verbose) -> None:
    """The last progress line: what the estimate is and exactly what is returned."""
    if verbose:
        print(
            f"{who}: {what} after {n_steps_run}/{n_steps} steps: {value:.4f} nats "
            f"(standard error {std_error:.4f}); returned: {value:.4f}",
            file=sys.stderr,
        )


# --------------------------------------------------------------------- MINE
@validate_params(MINE_CONSTRAINTS, prefer_skip_nested_validation=True)
def mine_mutual_information(
    X,
    Z,
    *,
    bound="auto",
    n_steps=500,
    batch_size="auto",
    learning_rate=1e-3,
    hidden_layer_sizes=(128, 128),
    embedding_dim=64,
    held_out_fraction=0.3,
    validation_fraction=0.1,
    patience=5,
    ema_rate=0.01,
    image_shape=None,
    input_layout="auto",
    device="auto",
    random_state=None,
    verbose=0,
    return_std=False,
):
    """Estimate the mutual information ``I(X; Z)`` in nats with MINE.

    A statistics network ``T(x, z) = <f(x), g(z)> + a(x) + b(z)`` is trained
    on a random part of the rows, with early stopping on validation rows;
    the bound is then evaluated on the remaining ``held_out_fraction`` of the
    rows, which the network never saw. ``f`` is an MLP, or a small
    convolutional network followed by an MLP when ``X`` holds images; the
    pair enters through one bilinear layer so that all pairs of a batch are
    scored with one matrix product (Belghazi et al. 2018; Hjelm et al. 2019,
    section 4.1). The bounds are those of DIM training
    (:mod:`skdim.nn.bounds`); the network and its training are in
    :mod:`skdim.nn.mine`.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        The first variable: vectors ``(n, d)``, or images ``(n, H, W, C)``,
        ``(n, C, H, W)``, ``(n, H, W)``, or flat images with ``image_shape``
        (the layouts :class:`~skdim.DeepInfoMax` accepts; uint8 is scaled to
        ``[0, 1]``). Higher-rank non-image rows are flattened.
    Z : array-like of shape (n_samples, n_features)
        The second variable, e.g. codes. 1-D input is one column; rows of a
        higher rank are flattened.
    bound : {"auto", "dv", "jsd", "infonce"}, default="auto"
        ``"dv"``: MINE -- trained on the Donsker-Varadhan bound with MINE's
        moving-average correction of the gradient bias, reported by DV.
        ``"jsd"``: the critic is trained on the Jensen-Shannon objective (more
        stable) and reported by DV. ``"infonce"``: trained and reported by
        infoNCE, which has a far lower variance but can never exceed
        ``log(n_held_out)``. ``"auto"``: infoNCE when fewer than 1,000 rows
        are held out, DV otherwise (see Notes).
    n_steps : int, default=500
        Maximum number of optimisation steps (mini-batches); the learning
        rate decays to 0 over them. Early stopping usually ends training
        sooner.
    batch_size : int or "auto", default="auto"
        Rows per mini-batch; each batch contrasts all ``batch_size**2`` pairs.
        ``"auto"``: 64 when ``X`` holds images, 256 otherwise. An image batch
        costs its convolutions, in proportion to its rows, and smaller
        batches give more updates for the same cost: on 667 CIFAR-10 images
        and their DIM codes, batches of 64 reached a higher held-out estimate
        (3.3 to 3.7 nats against 2.8) at about a third of the cost of
        batches of 256. Vector rows are cheap, and DV needs the negatives of
        large batches (batches of 64 reached 2.5 instead of 2.8 nats at a
        true 3). Clipped, with a warning, to the number of training rows.
    learning_rate : float, default=1e-3
        Initial Adam learning rate, decayed to 0 with a cosine schedule.
    hidden_layer_sizes : int or tuple of int, default=(128, 128)
        Hidden layers (GELU) of the MLP of each branch.
    embedding_dim : int, default=64
        Size of the embeddings ``f(x)`` and ``g(z)`` whose inner product
        scores a pair.
    held_out_fraction : float, default=0.3
        Fraction of rows, chosen at random, on which the bound is reported.
        At least 2 rows must fall on each side.
    validation_fraction : float, default=0.1
        Fraction of the remaining (training) rows set aside for early
        stopping: the bound is evaluated on them 20 times over ``n_steps``,
        the best weights are kept, and training stops after ``patience``
        checks without improvement. At least ``min(100, n_train // 3)`` rows
        are set aside, because a few dozen validation rows cannot see
        over-fitting. ``0`` trains on all of them for ``n_steps`` and keeps
        the last weights; so does a split that would leave fewer than 2
        validation rows.
    patience : int or None, default=5
        Validation checks without improvement after which training stops.
        ``None``: train for ``n_steps`` (still keeping the best weights).
    ema_rate : float, default=0.01
        Rate of MINE's moving average (``bound="dv"`` only).
    image_shape : tuple, default=None
        Shape of one image when ``X`` is flat images; see ``input_layout``.
    input_layout : {"auto", "NHWC", "NCHW", "NHW", "NCL", "NL"}, default="auto"
        Layout of ``X`` as in :class:`~skdim.DeepInfoMax`. Only image layouts
        use the convolutional branch; signals are treated as vectors.
    device : str, default="auto"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the split into training and held-out rows, the batches, the
        weights and the blocks of negatives. Pass an int for a reproducible
        value.
    verbose : int, default=0
        Print the training estimate ten times per run (every step if > 1)
        and every validation check, to stderr. The last line says what is
        returned: the bound, the number of held-out rows, the steps run, the
        standard error and ``returned: <value>``.
    return_std : bool, default=False
        Also return the standard error of the estimate.

    Returns
    -------
    mi : float
        The estimate in nats on the held-out rows. Independent ``X`` and ``Z``
        give values near 0 (slightly negative ones are estimation noise).
    std_error : float
        Only with ``return_std=True``: the first-order (delta-method)
        standard error of ``mi`` over the held-out rows, for the trained
        network (see :func:`skdim.nn.mine.held_out_bound`). It does not
        include the variation due to training (``random_state``, split).

    Raises
    ------
    ValueError
        If a parameter is invalid (``InvalidParameterError``), if ``X`` and
        ``Z`` have different numbers of rows, hold NaN or infinity, or have
        too few rows for a split.
    FloatingPointError
        If training diverged (non-finite objective or estimate).

    Warns
    -----
    UserWarning
        When fewer rows are held out than the chosen bound needs (50 for
        infoNCE, 200 for DV); the message names the number of held-out rows.
        Also when ``batch_size`` is clipped.

    Notes
    -----
    **What is computed on the held-out rows.** Positives are the ``n`` pairs
    ``(x_i, z_i)``. Negatives are the pairs ``(x_i, z_j)``, ``i != j``, within
    blocks of at most 1,024 rows: a held-out set of up to 1,024 rows is one
    block and every pair is used; a larger one is split into a seeded random
    partition of equal blocks, so memory is ``O(n)`` (plus one block's
    ``1024 x 1024`` scores) and time ``O(n * 1024)``. 1e6 rows of 2 columns
    run in about 1 GB.

    **Choice of bound.** DV's partition term is a mean of ``exp T`` over the
    negatives; on a small held-out set it is dominated by the few pairs the
    network is over-confident on, and its standard error grows like
    ``sqrt(exp(I) / n)``: on 90 held-out rows of DIM codes of digits it
    swung by 6 nats between two folds. infoNCE scores each row against its
    block and cannot exceed ``log(block)``, but varies far less, so
    ``"auto"`` uses it below 1,000 held-out rows (its cap is then at least
    ``log(n_held_out)``, about 4.5 nats for 90 rows).

    **Scale.** Every column of a vector input is standardised in float64 with
    the mean and standard deviation of the training rows (images: per
    channel), so rescaling (by 1e-13 as well as 1e9) or shifting a column
    leaves the estimate unchanged; a constant column (all values equal)
    becomes zeros and contributes nothing.

    When ``Z = E(X)`` for a deterministic encoder ``E`` of continuous ``X``,
    the true ``I(X; Z)`` is infinite. The estimate is then a *relative*
    score: it is comparable across models only when computed on the same
    rows, with the same settings and ``random_state``; no high-confidence
    lower bound from ``n`` samples can exceed about ``log n`` (McAllester and
    Stratos, 2020), and infoNCE is capped at ``log(n_held_out)`` by
    construction.

    Above about 4 nats every estimator from finite samples falls short of the
    truth; this one stays below it (see ``benchmarks/bench_metrics.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.metrics import mine_mutual_information
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 2))
    >>> z = 0.8 * x + 0.6 * rng.normal(size=(2000, 2))  # true MI: 2*-0.5*log(0.36) = 1.02
    >>> mi, se = mine_mutual_information(x, z, n_steps=300, random_state=0, return_std=True)
    >>> bool(0.8 < mi < 1.1), bool(0 < se < 0.1)
    (True, True)
    """
    caller = "mine_mutual_information"
    hidden = _hidden_sizes(hidden_layer_sizes, caller)
    dev = resolve_device(device)
    X = _check_array(X, "X")
    Z = _check_array(Z, "Z")
    if X.shape[0] != Z.shape[0]:
        raise ValueError(
            f"X and Z must have the same number of rows; got {X.shape[0]} and {Z.shape[0]}."
        )
    Z = Z.reshape(Z.shape[0], -1)
    layout = resolve_layout(X.shape[1:], input_layout, image_shape)
    if batch_size == "auto":
        batch_size = AUTO_BATCH_IMAGES if layout.is_image else AUTO_BATCH_VECTORS
    seed = seed_from(random_state)
    fit_rows, val_rows, eval_rows, batch_size = _split(
        X.shape[0], held_out_fraction, validation_fraction, batch_size, seed, caller
    )
    if bound == "auto":
        bound = "infonce" if len(eval_rows) < AUTO_DV_MIN_ROWS else "dv"
    _warn_small_held_out(len(eval_rows), bound, caller)
    train_rows = fit_rows if val_rows is None else np.concatenate([fit_rows, val_rows])

    z_mean, z_std = column_stats(Z, train_rows)
    if layout.is_image:
        c_mean, c_std = channel_stats(X[train_rows], layout)

        def source(rows):
            return lambda idx: standardize(X[rows[idx]], layout, c_mean, c_std, dev)

        x_in, image = 0, (layout.in_channels, layout.spatial)
    else:
        X = X.reshape(X.shape[0], -1)
        x_mean, x_std = column_stats(X, train_rows)

        def source(rows):
            return standardize_columns(X[rows], x_mean, x_std, dev)

        x_in, image = X.shape[1], None

    def rows_of(rows):
        return source(rows), standardize_columns(Z[rows], z_mean, z_std, dev)

    net = build_seeded(
        seed + 2,
        lambda: StatisticsNetwork(
            make_branch(x_in, hidden, embedding_dim, image=image),
            make_branch(Z.shape[1], hidden, embedding_dim),
        ),
    ).to(dev)
    validate = None
    if val_rows is not None:
        x_val, z_val = rows_of(val_rows)
        validate = lambda: held_out_bound(net, x_val, z_val, bound, seed=seed + 6)  # noqa: E731
    x_fit, z_fit = rows_of(fit_rows)
    n_run = train_statistics_network(
        net, x_fit, z_fit, bound=bound, n_steps=n_steps, batch_size=batch_size,
        learning_rate=learning_rate, ema_rate=ema_rate, generator=seeded_generator(seed + 1),
        validate=validate, patience=patience, verbose=verbose,
    )
    del x_fit, z_fit
    x_eval, z_eval = rows_of(eval_rows)
    mi, se = held_out_bound(net, x_eval, z_eval, bound, seed=seed + 5, return_std=True)
    mi = _finite(mi, caller)
    name = {"infonce": "infoNCE", "dv": "DV", "jsd": "DV (JSD critic)"}[bound]
    _returned(caller, f"{name} bound on {len(eval_rows)} held-out rows", mi, se, n_run,
              n_steps, verbose)
    return (mi, se) if return_std else mi


# ---------------------------------------------------------------------- NDM
@validate_params(NDM_CONSTRAINTS, prefer_skip_nested_validation=True)
def neural_dependency_measure(
    Z,
    *,
    sigmoid=False,
    bound="dv",
    n_steps=300,
    batch_size=256,
    learning_rate=1e-3,
    hidden_layer_sizes=(1000, 200),
    held_out_fraction=0.3,
    validation_fraction=0.1,
    patience=5,
    n_shuffles=10,
    ema_rate=0.01,
    device="auto",
    random_state=None,
    verbose=0,
    return_std=False,
):
    """Neural Dependency Measure of the columns of ``Z``, in nats (lower = more independent).

    A discriminator (MLP ``d-1000-200-1``, the official sizes) learns to tell
    rows of ``Z`` from rows whose every column was shuffled independently
    across the batch -- samples of the product of the marginals. The KL
    divergence ``KL(P_Z || prod_k P_{Z_k})``, the total correlation of ``Z``,
    is then estimated with the Donsker-Varadhan bound on held-out rows, whose
    partition term averages over ``n_shuffles`` independent shuffles
    (Hjelm et al. 2019, section 4.1 and appendix A.6).

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_features)
        Codes, e.g. ``DeepInfoMax(...).transform(X)``. 1-D input is one column.
    sigmoid : bool, default=False
        Measure ``sigmoid(Z)`` instead of ``Z``: the space in which the
        uniform prior of DIM is matched. The paper's figures measured ``Z``
        without the sigmoid. The true total correlation is the same for both
        (it is invariant to monotone maps of each column); the estimates can
        differ when the sigmoid saturates.
    bound : {"dv", "jsd"}, default="dv"
        Training objective of the discriminator: DV with MINE's moving-average
        gradient correction, or the Jensen-Shannon (binary classification)
        objective. Both are reported by DV on the held-out rows.
    n_steps : int, default=300
        Maximum number of optimisation steps; the learning rate decays to 0
        over them. Early stopping usually ends training sooner.
    batch_size : int, default=256
        Rows per mini-batch, each contrasted with a fresh per-column shuffle
        of the batch. Clipped, with a warning, to the number of training rows.
    learning_rate : float, default=1e-3
        Initial Adam learning rate, decayed to 0 with a cosine schedule.
    hidden_layer_sizes : int or tuple of int, default=(1000, 200)
        Hidden layers (GELU) of the discriminator.
    held_out_fraction : float, default=0.3
        Fraction of rows, chosen at random, on which the KL is reported.
    validation_fraction : float, default=0.1
        Fraction of the remaining (training) rows set aside for early
        stopping, as in :func:`mine_mutual_information` (at least
        ``min(100, n_train // 3)`` and at most 2,048 rows; the KL on them,
        with 3 fixed shuffles, is checked 20 times over ``n_steps``).
    patience : int or None, default=5
        Validation checks without improvement after which training stops
        (the best weights are kept). ``None``: train for ``n_steps``.
    n_shuffles : int, default=10
        Independent per-column shuffles of the held-out rows used for the
        partition term of the DV bound.
    ema_rate : float, default=0.01
        Rate of MINE's moving average (``bound="dv"`` only).
    device : str, default="auto"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the batches, the shuffles and the weights.
    verbose : int, default=0
        Print the training estimate ten times per run (every step if > 1)
        and every validation check, to stderr; the last line says what is
        returned (``returned: <value>``).
    return_std : bool, default=False
        Also return the standard error of the estimate.

    Returns
    -------
    ndm : float
        The estimate in nats; ``>= 0`` up to estimation noise (independent
        columns give small values of either sign). A single column has no
        dependence: ``0.0`` is returned without training.
    std_error : float
        Only with ``return_std=True``: the first-order (delta-method)
        standard error of ``ndm`` over the held-out rows and the shuffles,
        for the trained discriminator (see :func:`skdim.nn.ndm.held_out_kl`).

    Raises
    ------
    ValueError
        If a parameter is invalid (``InvalidParameterError``), if ``Z`` holds
        NaN or infinity or has too few rows for a split.
    FloatingPointError
        If training diverged.

    Warns
    -----
    UserWarning
        When fewer than 200 rows are held out (the DV estimate is then
        noisy; the message names the number of rows), or ``batch_size`` is
        clipped.

    Notes
    -----
    Columns are standardised in float64 with the training rows' statistics
    (after the sigmoid when ``sigmoid=True``), so the estimate does not
    change when a column is rescaled (by 1e-13 as well as 1e9) or shifted. A
    constant column (all values equal) is independent of everything; it
    becomes zeros and contributes nothing.

    For a Gaussian with correlation matrix ``R`` the true value is
    ``-1/2 log det R``.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.metrics import neural_dependency_measure
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(4000, 4))
    >>> z[:, 1] += z[:, 0]  # TC = -0.5*log(1 - 0.5) = 0.35 nats
    >>> ndm, se = neural_dependency_measure(z, n_steps=200, random_state=0, return_std=True)
    >>> bool(0.2 < ndm < 0.45), bool(0 < se < 0.1)
    (True, True)
    """
    caller = "neural_dependency_measure"
    hidden = _hidden_sizes(hidden_layer_sizes, caller)
    dev = resolve_device(device)
    Z = _check_array(Z, "Z")
    Z = Z.reshape(Z.shape[0], -1)
    seed = seed_from(random_state)
    fit_rows, val_rows, eval_rows, batch_size = _split(
        Z.shape[0], held_out_fraction, validation_fraction, batch_size, seed, caller
    )
    if Z.shape[1] == 1:
        _returned(caller, "a single column (no dependence)", 0.0, 0.0, 0, n_steps, verbose)
        return (0.0, 0.0) if return_std else 0.0
    _warn_small_held_out(len(eval_rows), bound, caller)
    if sigmoid:
        Z = expit(np.asarray(Z, dtype=np.float64))
    train_rows = fit_rows if val_rows is None else np.concatenate([fit_rows, val_rows])
    mean, std = column_stats(Z, train_rows)

    disc = build_seeded(seed + 2, lambda: NDMDiscriminator(Z.shape[1], hidden)).to(dev)
    validate = None
    if val_rows is not None:
        z_val, val_seed = standardize_columns(Z[val_rows], mean, std, dev), seed + 4
        # Fewer shuffles than for the report: early stopping needs only a
        # ranking, and validation then costs ~10% of training, not ~30%. The
        # same shuffles at every check, so that the curve is not noisier
        # than the network.
        n_val_shuffles = min(n_shuffles, 3)
        validate = lambda: held_out_kl(  # noqa: E731
            disc, z_val, n_val_shuffles, seeded_generator(val_seed)
        )
    generator = seeded_generator(seed + 1)
    n_run = train_discriminator(
        disc, standardize_columns(Z[fit_rows], mean, std, dev), bound=bound, n_steps=n_steps,
        batch_size=batch_size, learning_rate=learning_rate, ema_rate=ema_rate,
        generator=generator, validate=validate, patience=patience, verbose=verbose,
    )
    kl, se = held_out_kl(
        disc, standardize_columns(Z[eval_rows], mean, std, dev), n_shuffles, generator,
        return_std=True,
    )
    kl = _finite(kl, caller)
    _returned(caller, f"DV bound on {len(eval_rows)} held-out rows", kl, se, n_run, n_steps,
              verbose)
    return (kl, se) if return_std else kl
