"""MINEScorer and NDMScorer: the neural estimators as scikit-learn scorers.

A scorer is a callable ``scorer(estimator, X, y=None) -> float`` where
greater is better; it works wherever scikit-learn takes ``scoring=``
(``cross_val_score``, ``cross_validate`` with several metrics,
``GridSearchCV``, ...). Both scorers here read the *codes* of a fitted
estimator (see :meth:`_CodeScorer.codes`) and estimate a property of them.
"""

from __future__ import annotations

import numbers
import sys
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Options

from .metrics import (
    MINE_CONSTRAINTS,
    NDM_CONSTRAINTS,
    mine_mutual_information,
    neural_dependency_measure,
)

__all__ = ["MINEScorer", "NDMScorer"]


class _CodeScorer(BaseEstimator):
    """Shared code extraction; parameters follow the scikit-learn estimator rules.

    ``BaseEstimator`` provides ``get_params``/``set_params`` and a readable
    repr; ``__call__`` never writes to ``self``, so one scorer object can be
    shared by folds, candidates and worker processes.
    """

    def codes(self, estimator, X) -> np.ndarray:
        """The codes of ``X`` under a fitted ``estimator``.

        * ``step`` given: ``estimator`` must be a :class:`~sklearn.pipeline.Pipeline`;
          the codes are the output of that step (name or index), i.e.
          ``estimator[: index + 1].transform(X)``.
        * A Pipeline whose last step predicts (has ``predict``) or does not
          transform: the output of the steps before it,
          ``estimator[:-1].transform(X)``.
        * Otherwise ``estimator.transform(X)``.
        """
        step = self.step
        if step is not None:
            if not isinstance(estimator, Pipeline):
                raise ValueError(
                    f"step={step!r} names a Pipeline step, but the scored estimator is a "
                    f"{type(estimator).__name__}. Use step=None to score "
                    "estimator.transform(X)."
                )
            names = [name for name, _ in estimator.steps]
            if isinstance(step, str):
                if step not in names:
                    raise ValueError(f"step={step!r} is not a step of the Pipeline; its steps are {names}.")
                index = names.index(step)
            elif isinstance(step, numbers.Integral) and not isinstance(step, bool):
                if not -len(names) <= step < len(names):
                    raise ValueError(f"step={step} is out of range for a Pipeline of {len(names)} steps.")
                index = step % len(names)
            else:
                raise TypeError(f"step must be a step name, an integer index or None; got {step!r}.")
            return estimator[: index + 1].transform(X)
        if isinstance(estimator, Pipeline):
            last = estimator.steps[-1][1]
            predicts = hasattr(last, "predict") or not hasattr(last, "transform")
            if last not in (None, "passthrough") and predicts:
                if len(estimator.steps) < 2:
                    raise ValueError(
                        "The Pipeline has a single predicting step and no step that "
                        "produces codes."
                    )
                return estimator[:-1].transform(X)
            return estimator.transform(X)
        if not hasattr(estimator, "transform"):
            raise TypeError(
                f"{type(estimator).__name__} has no transform method, so it has no codes "
                "to score. Pass a transformer, or a Pipeline whose last step predicts."
            )
        return estimator.transform(X)


class MINEScorer(_CodeScorer):
    """Score a representation by the MINE estimate of ``I(X; codes)``, in nats.

    ``scorer(estimator, X, y=None)`` computes the codes of ``X`` (see
    Notes) and returns :func:`skdim.metrics.mine_mutual_information` between
    ``X`` and the codes. Greater is better. ``y`` is ignored.

    Parameters
    ----------
    bound : {"auto", "dv", "jsd", "infonce"}, default="auto"
        See :func:`~skdim.metrics.mine_mutual_information`: ``"auto"`` is
        infoNCE below 1,000 held-out rows, DV from there on.
    n_steps : int, default=500
        Maximum optimisation steps of the statistics network.
    batch_size : int or "auto", default="auto"
        Rows per mini-batch (``"auto"``: 64 for images, 256 otherwise).
    learning_rate : float, default=1e-3
        Initial Adam learning rate (cosine decay).
    hidden_layer_sizes : int or tuple of int, default=(128, 128)
        Hidden layers of each branch of the statistics network.
    embedding_dim : int, default=64
        Size of the embeddings whose inner product scores a pair.
    held_out_fraction : float, default=0.3
        Fraction of the scored rows on which the bound is reported.
    validation_fraction : float, default=0.1
        Fraction of the other rows used for early stopping (at least
        ``min(100, n_train // 3)`` rows, at most 2,048).
    patience : int or None, default=5
        Validation checks without improvement before training stops.
    image_shape : tuple, default=None
        Shape of one image when ``X`` is flat images.
    input_layout : str, default="auto"
        Layout of ``X``, as in :class:`~skdim.DeepInfoMax`.
    step : str, int or None, default=None
        Name or index of the Pipeline step whose output is scored.
    device : str, default="auto"
        Device of the statistics network.
    random_state : int, RandomState instance or None, default=0
        Seeds the estimator. An int (the default) scores every model with the
        same split, batches and initial weights, which keeps scores
        comparable; a RandomState instance is consumed by each call.
    verbose : int, default=0
        Progress of each estimate, to stderr; the last line of each call
        says what is returned (``returned: <value>``).

    Notes
    -----
    The codes are ``estimator.transform(X)``; for a
    :class:`~sklearn.pipeline.Pipeline` whose last step predicts (e.g. a
    classifier after :class:`~skdim.DeepInfoMax`) they are the output of the
    steps before it, ``pipe[:-1].transform(X)``; ``step`` picks another step.

    For a deterministic encoder of continuous inputs the true ``I(X; Y)`` is
    infinite, so the score is a *relative* measure of how much of ``X`` the
    codes keep, comparable across models scored on the same rows with the
    same parameters and seed. With the default ``bound="auto"`` on fewer
    than 1,000 held-out rows it is an infoNCE bound and cannot exceed
    ``log(n_held_out)``; DV on more rows cannot exceed it by much either.

    **Small folds.** Each fold holds out only ``held_out_fraction`` of its
    own rows: 300 scored rows leave 90. A warning names the number of
    held-out rows when it is below what the bound needs (50 for infoNCE, 200
    for DV). Measured spread, ``cross_validate(DeepInfoMax(n_components=16,
    max_epochs=3, critic_units=64, random_state=s), load_digits().images[:600],
    cv=2, scoring=MINEScorer(random_state=s))``, two threads, 300 scored
    rows per fold (90 held out, infoNCE, cap ``log 90 = 4.50``): for
    ``s = 0, ..., 5`` the folds scored 2.94 / 2.77, 2.47 / 2.97,
    2.17 / 2.67, 2.66 / 3.50, 2.79 / 2.80 and 3.32 / 3.09 nats -- a
    fold-to-fold difference of 0.01 to 0.83 nats (mean 0.37), with standard
    errors of 0.13 to 0.41 nats for one fold.
    Before early stopping, the minimum validation size and infoNCE for small
    held-out sets, the same runs gave DV folds such as 3.41 / -0.10,
    2.24 / -5.45 and 2.92 / 1.51 nats (DV on 90 rows had standard errors
    of up to 1.5 nats). To see the uncertainty of one score, call
    :func:`~skdim.metrics.mine_mutual_information` with ``return_std=True``.

    **Cost.** Training stops early once the validation estimate stops
    improving, and image batches default to 64 rows. On 2,000 CIFAR-10
    images and the codes of a 3-epoch :class:`~skdim.DeepInfoMax`
    (``cv=3``, 667 scored rows per fold) a score took about 5 s of CPU on one
    thread, against 2 to 3.5 s for :class:`NDMScorer` (170 to 200 s before,
    when the statistics network trained for all 500 steps on batches of
    256).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import cross_val_score
    >>> from skdim import DeepInfoMax, MINEScorer
    >>> X = load_digits().images[:300]
    >>> dim = DeepInfoMax(n_components=8, max_epochs=1, critic_units=32, random_state=0)
    >>> scores = cross_val_score(dim, X, cv=2, scoring=MINEScorer(n_steps=20, batch_size=32))
    >>> scores.shape
    (2,)
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in MINE_CONSTRAINTS.items() if k not in ("X", "Z", "return_std")},
        "step": [str, Integral, None],
    }

    def __init__(
        self,
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
        image_shape=None,
        input_layout="auto",
        step=None,
        device="auto",
        random_state=0,
        verbose=0,
    ):
        self.bound = bound
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.hidden_layer_sizes = hidden_layer_sizes
        self.embedding_dim = embedding_dim
        self.held_out_fraction = held_out_fraction
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.image_shape = image_shape
        self.input_layout = input_layout
        self.step = step
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __call__(self, estimator, X, y=None) -> float:
        """Estimate ``I(X; codes)`` in nats for the fitted ``estimator``.

        Parameters
        ----------
        estimator : fitted estimator
            A transformer or a Pipeline (see the class Notes).
        X : array-like of shape (n_samples, ...)
            Input rows, in the layout ``estimator`` accepts.
        y : array-like, default=None
            Ignored.

        Returns
        -------
        score : float
            The MI estimate (greater is better).

        Raises
        ------
        ValueError
            ``InvalidParameterError`` when a parameter of the scorer is
            invalid (checked against ``_parameter_constraints`` first).
        """
        self._validate_params()
        codes = self.codes(estimator, X)
        return mine_mutual_information(
            X,
            codes,
            bound=self.bound,
            n_steps=self.n_steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            hidden_layer_sizes=self.hidden_layer_sizes,
            embedding_dim=self.embedding_dim,
            held_out_fraction=self.held_out_fraction,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            image_shape=self.image_shape,
            input_layout=self.input_layout,
            device=self.device,
            random_state=self.random_state,
            verbose=self.verbose,
        )


class NDMScorer(_CodeScorer):
    """Score the dependence between code dimensions by the negated NDM (``neg_`` convention).

    NDM (:func:`skdim.metrics.neural_dependency_measure`) is the total
    correlation of the codes: *lower* means more independent factors. Like
    scikit-learn's ``neg_log_loss``, the scorer returns ``-NDM`` by default
    so that greater is better in model selection; ``sign=1`` returns NDM
    itself (for reporting, not for maximising). ``y`` is ignored.

    Parameters
    ----------
    sigmoid : bool, default=False
        Measure ``sigmoid(codes)`` instead of the codes (the paper's figures
        measured the codes without the sigmoid).
    sign : {-1, 1}, default=-1
        The score is ``sign * NDM``.
    bound : {"dv", "jsd"}, default="dv"
        Training objective of the discriminator; reported by DV.
    n_steps : int, default=300
        Maximum optimisation steps of the discriminator.
    batch_size : int, default=256
        Rows per mini-batch.
    learning_rate : float, default=1e-3
        Initial Adam learning rate (cosine decay).
    hidden_layer_sizes : int or tuple of int, default=(1000, 200)
        Hidden layers of the discriminator (the official sizes).
    held_out_fraction : float, default=0.3
        Fraction of the scored rows on which the KL is reported.
    validation_fraction : float, default=0.1
        Fraction of the other rows used for early stopping (at least
        ``min(100, n_train // 3)`` rows, at most 2,048).
    patience : int or None, default=5
        Validation checks without improvement before training stops.
    n_shuffles : int, default=10
        Shuffles of the held-out rows for the partition term.
    step : str, int or None, default=None
        Name or index of the Pipeline step whose output is scored.
    device : str, default="auto"
        Device of the discriminator.
    random_state : int, RandomState instance or None, default=0
        Seeds the estimator; an int keeps scores comparable across models.
    verbose : int, default=0
        Progress of each estimate, to stderr; the last line of each call
        says what is returned (``returned: <sign * NDM>``).

    Notes
    -----
    The codes are found as for :class:`MINEScorer`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import cross_val_score
    >>> from skdim import DeepInfoMax, NDMScorer
    >>> X = load_digits().images[:300]
    >>> dim = DeepInfoMax(n_components=8, max_epochs=1, critic_units=32, random_state=0)
    >>> neg_ndm = cross_val_score(dim, X, cv=2, scoring=NDMScorer(n_steps=20, batch_size=32))
    >>> ndm = -neg_ndm  # the dependence itself, in nats
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in NDM_CONSTRAINTS.items() if k not in ("Z", "return_std")},
        "sign": [Options(Integral, {-1, 1})],
        "step": [str, Integral, None],
    }

    def __init__(
        self,
        *,
        sigmoid=False,
        sign=-1,
        bound="dv",
        n_steps=300,
        batch_size=256,
        learning_rate=1e-3,
        hidden_layer_sizes=(1000, 200),
        held_out_fraction=0.3,
        validation_fraction=0.1,
        patience=5,
        n_shuffles=10,
        step=None,
        device="auto",
        random_state=0,
        verbose=0,
    ):
        self.sigmoid = sigmoid
        self.sign = sign
        self.bound = bound
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.hidden_layer_sizes = hidden_layer_sizes
        self.held_out_fraction = held_out_fraction
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_shuffles = n_shuffles
        self.step = step
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __call__(self, estimator, X, y=None) -> float:
        """Return ``sign * NDM`` of the codes of ``X`` (``-NDM`` by default).

        Parameters
        ----------
        estimator : fitted estimator
            A transformer or a Pipeline (see :class:`MINEScorer`).
        X : array-like of shape (n_samples, ...)
            Input rows.
        y : array-like, default=None
            Ignored.

        Returns
        -------
        score : float
            ``-NDM`` by default: greater is better (more independent codes).

        Raises
        ------
        ValueError
            ``InvalidParameterError`` when a parameter of the scorer is
            invalid (checked against ``_parameter_constraints`` first).
        """
        self._validate_params()
        if isinstance(self.sign, (bool, np.bool_)):  # True == 1 passes the Options check
            raise ValueError(f"The 'sign' parameter of NDMScorer must be -1 or 1, not a bool. "
                             f"Got {self.sign!r} instead.")
        ndm = neural_dependency_measure(
            self.codes(estimator, X),
            sigmoid=self.sigmoid,
            bound=self.bound,
            n_steps=self.n_steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            hidden_layer_sizes=self.hidden_layer_sizes,
            held_out_fraction=self.held_out_fraction,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            n_shuffles=self.n_shuffles,
            device=self.device,
            random_state=self.random_state,
            verbose=self.verbose,
        )
        score = float(self.sign) * ndm
        if self.verbose:
            print(f"NDMScorer: sign * NDM = {self.sign} * {ndm:.4f}; returned: {score:.4f}",
                  file=sys.stderr)
        return score
