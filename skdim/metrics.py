"""Neural estimators of information and dependence (Hjelm et al. 2019, section 4.1).

* :func:`mine_mutual_information` -- MINE: a neural lower bound on the mutual
  information ``I(X; Z)`` between two arrays with the same rows, e.g. images
  and their codes.
* :func:`neural_dependency_measure` -- NDM: the KL divergence between the
  codes and the same codes with every dimension shuffled independently, i.e.
  the total correlation of the code (0 for independent factors).

Both train a small network on one part of the rows and report the bound on
the other part (``held_out_fraction``), so an over-fitted network is not
rewarded. Both standardise their inputs, so the estimates do not change when
a column is rescaled or shifted. Both are in nats and seeded by
``random_state`` without touching the global random state.

:class:`skdim.MINEScorer` and :class:`skdim.NDMScorer` wrap them as
scikit-learn scorers.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from scipy.special import expit
from sklearn.utils import check_array

from ._data import batch_to_tensor, channel_stats, resolve_layout
from ._runtime import _seed_from, resolve_device
from ._mine import (
    MINE_BOUNDS,
    StatisticsNetwork,
    held_out_bound,
    make_branch,
    split_rows,
    standardize_columns,
    to_tensor,
    train_statistics_network,
)
from ._ndm import NDM_BOUNDS, NDMDiscriminator, held_out_kl, train_discriminator
from ._training import build_seeded, seeded_generator

__all__ = ["mine_mutual_information", "neural_dependency_measure"]


# --------------------------------------------------------------- validation
def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_positive(name: str, value, upper: float | None = None) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and value > 0 and (upper is None or value <= upper)
    if not ok:
        bound = f"in (0, {upper}]" if upper is not None else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}.")
    return float(value)


def _check_fraction(value) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < 1
    if not ok:
        raise ValueError(f"held_out_fraction must be a number in (0, 1); got {value!r}.")
    return float(value)


def _check_hidden(value) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        sizes = tuple(value)
    except TypeError:
        sizes = None
    if sizes is None or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise ValueError(
            f"hidden_layer_sizes must be a tuple of positive integers; got {value!r}."
        )
    return tuple(int(s) for s in sizes)


def _check_choice(name: str, value, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}; got {value!r}.")
    return value


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


def _check_validation_fraction(value) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < 1
    if not ok:
        raise ValueError(f"validation_fraction must be a number in [0, 1); got {value!r}.")
    return float(value)


def _split(
    n: int, held_out_fraction: float, validation_fraction: float, batch_size: int, seed: int, who: str
):
    """``(fit_rows, val_rows or None, eval_rows, batch_size)``.

    ``eval_rows`` report the estimate; ``val_rows``, carved from the other
    rows, select the checkpoint; ``fit_rows`` train.
    """
    train_rows, eval_rows = split_rows(n, held_out_fraction, seed)
    if len(train_rows) < 2 or len(eval_rows) < 2:
        raise ValueError(
            f"{who} needs at least 2 training rows and 2 held-out rows; n_samples={n} "
            f"with held_out_fraction={held_out_fraction} gives {len(train_rows)} and "
            f"{len(eval_rows)}. Pass more rows or change held_out_fraction."
        )
    fit_rows, val_rows = train_rows, None
    if validation_fraction > 0:
        fit, val = split_rows(len(train_rows), validation_fraction, seed + 3)
        # Too few rows for a validation bound: train on all of them instead.
        if len(fit) >= 2 and len(val) >= 2:
            fit_rows, val_rows = train_rows[fit], train_rows[val]
    if batch_size > len(fit_rows):
        warnings.warn(
            f"batch_size={batch_size} is larger than the {len(fit_rows)} training rows; "
            f"using batches of {len(fit_rows)}.",
            UserWarning,
            stacklevel=3,
        )
        batch_size = len(fit_rows)
    return fit_rows, val_rows, eval_rows, batch_size


def _finite(value: float, who: str) -> float:
    if not np.isfinite(value):
        raise FloatingPointError(
            f"{who} produced a non-finite estimate ({value}); the critic diverged. "
            "Try a lower learning_rate or more rows."
        )
    return float(value)


# --------------------------------------------------------------------- MINE
def mine_mutual_information(
    X,
    Z,
    *,
    bound="dv",
    n_steps=500,
    batch_size=256,
    learning_rate=1e-3,
    hidden_layer_sizes=(128, 128),
    embedding_dim=64,
    held_out_fraction=0.3,
    validation_fraction=0.1,
    ema_rate=0.01,
    image_shape=None,
    input_layout="auto",
    device="auto",
    random_state=None,
    verbose=0,
) -> float:
    """Estimate the mutual information ``I(X; Z)`` in nats with MINE.

    A statistics network ``T(x, z) = <f(x), g(z)> + a(x) + b(z)`` is trained
    on a random part of the rows (the best of ten checkpoints chosen on
    validation rows); the bound is evaluated on the remaining
    ``held_out_fraction`` of the rows, with every held-out pair
    ``(x_i, z_j)``, ``i != j``, as a sample of the product of the marginals. ``f`` is an MLP, or a small
    convolutional network followed by an MLP when ``X`` holds images; the
    pair enters through one bilinear layer so that all pairs of a batch are
    scored with one matrix product (Belghazi et al. 2018; Hjelm et al. 2019,
    section 4.1).

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
    bound : {"dv", "jsd", "infonce"}, default="dv"
        ``"dv"``: MINE -- trained on the Donsker-Varadhan bound with MINE's
        moving-average correction of the gradient bias, reported by DV.
        ``"jsd"``: the critic is trained on the Jensen-Shannon objective (more
        stable) and reported by DV. ``"infonce"``: trained and reported by
        infoNCE, which has low variance but can never exceed
        ``log(n_held_out)``.
    n_steps : int, default=500
        Number of optimisation steps (mini-batches).
    batch_size : int, default=256
        Rows per mini-batch; each batch contrasts all ``batch_size**2`` pairs.
        Clipped, with a warning, to the number of training rows.
    learning_rate : float, default=1e-3
        Initial Adam learning rate, decayed to 0 with a cosine schedule.
    hidden_layer_sizes : tuple of int, default=(128, 128)
        Hidden layers (GELU) of the MLP of each branch.
    embedding_dim : int, default=64
        Size of the embeddings ``f(x)`` and ``g(z)`` whose inner product
        scores a pair.
    held_out_fraction : float, default=0.3
        Fraction of rows, chosen at random, on which the bound is reported.
        At least 2 rows must fall on each side.
    validation_fraction : float, default=0.1
        Fraction of the remaining (training) rows set aside to pick the
        checkpoint: the bound is evaluated on them ten times during training
        and the best weights are kept, which stops an over-fitting network
        from lowering the held-out estimate. ``0`` trains on all of them and
        keeps the last weights; so does a split that would leave fewer than 2
        validation rows.
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
        Seeds the split into training and held-out rows, the batches and the
        weights. Pass an int for a reproducible value.
    verbose : int, default=0
        Print the training estimate ten times per run (every step if > 1).

    Returns
    -------
    mi : float
        The estimate in nats on the held-out rows. Independent ``X`` and ``Z``
        give values near 0 (slightly negative ones are estimation noise).

    Raises
    ------
    ValueError
        If ``X`` and ``Z`` have different numbers of rows, hold NaN or
        infinity, or have too few rows for a split.
    FloatingPointError
        If training diverged (non-finite objective or estimate).

    Notes
    -----
    Every column of a vector input is standardised with the mean and standard
    deviation of the training rows (images: per channel), so rescaling or
    shifting a column leaves the estimate unchanged; a constant column
    becomes zeros and contributes nothing.

    When ``Z = E(X)`` for a deterministic encoder ``E`` of continuous ``X``,
    the true ``I(X; Z)`` is infinite. The estimate is then a *relative*
    score: it is comparable across models only when computed on the same
    rows, with the same settings and ``random_state``; no high-confidence
    lower bound from ``n`` samples can exceed about ``log n`` (McAllester and
    Stratos, 2020), and ``bound="infonce"`` is capped at
    ``log(n_held_out)`` by construction.

    Above about 4 nats every estimator from finite samples falls short of the
    truth; this one stays below it (see ``benchmarks/bench_metrics.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.metrics import mine_mutual_information
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 2))
    >>> z = 0.8 * x + 0.6 * rng.normal(size=(2000, 2))  # true MI: 2*-0.5*log(0.36) = 1.02
    >>> mi = mine_mutual_information(x, z, n_steps=300, random_state=0)
    >>> bool(0.8 < mi < 1.1)
    True
    """
    bound = _check_choice("bound", bound, MINE_BOUNDS)
    n_steps = _check_int("n_steps", n_steps, 1)
    batch_size = _check_int("batch_size", batch_size, 2)
    learning_rate = _check_positive("learning_rate", learning_rate)
    hidden = _check_hidden(hidden_layer_sizes)
    embedding_dim = _check_int("embedding_dim", embedding_dim, 1)
    held_out_fraction = _check_fraction(held_out_fraction)
    validation_fraction = _check_validation_fraction(validation_fraction)
    ema_rate = _check_positive("ema_rate", ema_rate, upper=1.0)
    verbose = _check_int("verbose", verbose, 0)
    dev = resolve_device(device)

    X = _check_array(X, "X")
    Z = _check_array(Z, "Z")
    if X.shape[0] != Z.shape[0]:
        raise ValueError(
            f"X and Z must have the same number of rows; got {X.shape[0]} and {Z.shape[0]}."
        )
    Z = Z.reshape(Z.shape[0], -1)
    layout = resolve_layout(X.shape[1:], input_layout, image_shape)
    seed = _seed_from(random_state)
    fit_rows, val_rows, eval_rows, batch_size = _split(
        X.shape[0], held_out_fraction, validation_fraction, batch_size, seed,
        "mine_mutual_information",
    )
    train_rows = fit_rows if val_rows is None else np.concatenate([fit_rows, val_rows])

    z_mean, z_std = standardize_columns(Z, train_rows)
    if layout.is_image:
        c_mean, c_std = channel_stats(X[train_rows], layout)

        def source(rows):
            return lambda idx: batch_to_tensor(X[rows[idx]], layout, c_mean, c_std, dev)

        x_in, x_layout = 0, layout
    else:
        X = X.reshape(X.shape[0], -1)
        x_mean, x_std = standardize_columns(X, train_rows)

        def source(rows):
            x = to_tensor(X[rows], x_mean, x_std, dev)
            return lambda idx: x[torch.as_tensor(idx, device=dev)]

        x_in, x_layout = X.shape[1], None

    def rows_of(rows):
        return source(rows), to_tensor(Z[rows], z_mean, z_std, dev)

    net = build_seeded(
        seed + 2,
        lambda: StatisticsNetwork(
            make_branch(x_in, hidden, embedding_dim, x_layout),
            make_branch(Z.shape[1], hidden, embedding_dim),
        ),
    ).to(dev)
    validate = None
    if val_rows is not None:
        get_val, z_val = rows_of(val_rows)
        validate = lambda: held_out_bound(net, get_val, z_val, bound)  # noqa: E731
    get_fit, z_fit = rows_of(fit_rows)
    train_statistics_network(
        net, get_fit, z_fit, bound=bound, n_steps=n_steps, batch_size=batch_size,
        learning_rate=learning_rate, ema_rate=ema_rate, generator=seeded_generator(seed + 1),
        validate=validate, verbose=verbose,
    )
    get_eval, z_eval = rows_of(eval_rows)
    return _finite(held_out_bound(net, get_eval, z_eval, bound), "mine_mutual_information")


# ---------------------------------------------------------------------- NDM
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
    n_shuffles=10,
    ema_rate=0.01,
    device="auto",
    random_state=None,
    verbose=0,
) -> float:
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
        Number of optimisation steps.
    batch_size : int, default=256
        Rows per mini-batch, each contrasted with a fresh per-column shuffle
        of the batch. Clipped, with a warning, to the number of training rows.
    learning_rate : float, default=1e-3
        Initial Adam learning rate, decayed to 0 with a cosine schedule.
    hidden_layer_sizes : tuple of int, default=(1000, 200)
        Hidden layers (GELU) of the discriminator.
    held_out_fraction : float, default=0.3
        Fraction of rows, chosen at random, on which the KL is reported.
    validation_fraction : float, default=0.1
        Fraction of the remaining (training) rows set aside to pick the
        checkpoint: the bound is evaluated on them ten times during training
        and the best weights are kept, which stops an over-fitting network
        from lowering the held-out estimate. ``0`` trains on all of them and
        keeps the last weights; so does a split that would leave fewer than 2
        validation rows.
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
        Print the training estimate ten times per run (every step if > 1).

    Returns
    -------
    ndm : float
        The estimate in nats; ``>= 0`` up to estimation noise (independent
        columns give small values of either sign). A single column has no
        dependence: ``0.0`` is returned without training.

    Raises
    ------
    ValueError
        If ``Z`` holds NaN or infinity or has too few rows for a split.
    FloatingPointError
        If training diverged.

    Notes
    -----
    Columns are standardised with the training rows' statistics (after the
    sigmoid when ``sigmoid=True``), so the estimate does not change when a
    column is rescaled or shifted. A constant column is independent of
    everything; it becomes zeros and contributes nothing.

    For a Gaussian with correlation matrix ``R`` the true value is
    ``-1/2 log det R``.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.metrics import neural_dependency_measure
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(4000, 4))
    >>> z[:, 1] += z[:, 0]  # TC = -0.5*log(1 - 0.5) = 0.35 nats
    >>> ndm = neural_dependency_measure(z, n_steps=200, random_state=0)
    >>> bool(0.2 < ndm < 0.45)
    True
    """
    sigmoid = bool(sigmoid)
    bound = _check_choice("bound", bound, NDM_BOUNDS)
    n_steps = _check_int("n_steps", n_steps, 1)
    batch_size = _check_int("batch_size", batch_size, 2)
    learning_rate = _check_positive("learning_rate", learning_rate)
    hidden = _check_hidden(hidden_layer_sizes)
    held_out_fraction = _check_fraction(held_out_fraction)
    validation_fraction = _check_validation_fraction(validation_fraction)
    n_shuffles = _check_int("n_shuffles", n_shuffles, 1)
    ema_rate = _check_positive("ema_rate", ema_rate, upper=1.0)
    verbose = _check_int("verbose", verbose, 0)
    dev = resolve_device(device)

    Z = _check_array(Z, "Z")
    Z = Z.reshape(Z.shape[0], -1)
    seed = _seed_from(random_state)
    fit_rows, val_rows, eval_rows, batch_size = _split(
        Z.shape[0], held_out_fraction, validation_fraction, batch_size, seed,
        "neural_dependency_measure",
    )
    if Z.shape[1] == 1:
        return 0.0
    if sigmoid:
        Z = expit(np.asarray(Z, dtype=np.float64))
    train_rows = fit_rows if val_rows is None else np.concatenate([fit_rows, val_rows])
    mean, std = standardize_columns(Z, train_rows)

    disc = build_seeded(seed + 2, lambda: NDMDiscriminator(Z.shape[1], hidden)).to(dev)
    validate = None
    if val_rows is not None:
        z_val, val_generator = to_tensor(Z[val_rows], mean, std, dev), seeded_generator(seed + 4)
        # Fewer shuffles than for the report: checkpoint selection needs only
        # a ranking, and validation then costs ~10% of training, not ~30%.
        n_val_shuffles = min(n_shuffles, 3)
        validate = lambda: held_out_kl(disc, z_val, n_val_shuffles, val_generator)  # noqa: E731
    generator = seeded_generator(seed + 1)
    train_discriminator(
        disc, to_tensor(Z[fit_rows], mean, std, dev), bound=bound, n_steps=n_steps,
        batch_size=batch_size, learning_rate=learning_rate, ema_rate=ema_rate,
        generator=generator, validate=validate, verbose=verbose,
    )
    kl = held_out_kl(disc, to_tensor(Z[eval_rows], mean, std, dev), n_shuffles, generator)
    return _finite(kl, "neural_dependency_measure")
