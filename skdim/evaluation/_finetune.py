"""Semi-supervised fine-tuning of a fitted DIM encoder (paper section 4.1).

Public names are re-exported by :mod:`skdim.evaluation`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import HasMethods, StrOptions, validate_params
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d
from torch import Tensor, nn

from .._runtime import resolve_device, seed_from
from ..nn.sampling import batch_indices
from ..nn.seeding import build_seeded, seeded_generator
from ._utils import LAYERS, TRAINING_CONSTRAINTS

__all__ = ["FineTunedClassifier", "finetune"]

_NOT_FITTED = (
    "estimator must be a fitted DeepInfoMax (it has no encoder_); fit it first, and wrap "
    "it in sklearn.frozen.FrozenEstimator to clone."
)


class FineTunedClassifier(ClassifierMixin, BaseEstimator):
    """A DIM encoder fine-tuned end to end with a linear head on labels.

    The paper's semi-supervised evaluation (section 4.1): a small network on
    top of the encoder, with the whole encoder trained on the labels. ``fit``
    deep-copies ``estimator.encoder_`` (the estimator itself is never
    modified), puts a linear layer on the chosen layer's output and trains
    both with Adam and cross-entropy, on shuffled minibatches (a last batch
    of one row is merged into the previous one). Inputs go through the
    estimator's public :meth:`~skdim.DeepInfoMax.preprocess`, exactly as the
    encoder saw them in training; only the public ``preprocess`` and
    ``encoder_`` of the estimator are used.

    Parameters
    ----------
    estimator : fitted DeepInfoMax
        Supplies ``encoder_`` and ``preprocess``. It must already be
        fitted: :func:`sklearn.base.clone` would return an unfitted copy, so
        to use this class in cross-validation wrap the estimator in
        :class:`sklearn.frozen.FrozenEstimator`.
    layer : {"fc", "y", "conv"}, default="fc"
        Encoder output the head reads (``"conv"`` is flattened). ``"fc"``
        puts the head, with the encoder's own fully connected layer, on top
        of the last convolutional layer as in the paper.
    epochs : int, default=20
        Passes over the labelled data.
    batch_size : int, default=64
        Minibatch size, at least 2 (the encoder has BatchNorm layers).
    learning_rate : float, default=1e-4
        Adam learning rate for encoder and head.
    device : str, torch.device or None, default=None
        Where to train: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda:N"``...; None uses the device the estimator was trained on
        (``estimator.device_``, or "cpu" when it has none). Prediction
        always runs on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation and the shuffling, each from its own
        :class:`torch.Generator`. An int always gives the same result; None
        draws one seed from NumPy's global ``RandomState`` (so
        ``np.random.seed`` makes it repeatable), as elsewhere in
        scikit-learn. Layers of the encoder that draw random numbers in
        training mode (none in skdim's encoders) would use PyTorch's global
        generator.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        The fine-tuned copy of the encoder, on the CPU, in eval mode.
    head_ : torch.nn.Linear
        The classification head, on the CPU.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    n_iter_ : int
        Number of epochs run.

    Examples
    --------
    A tiny run on 8x8 digits (real use trains longer on more data):

    >>> from sklearn.datasets import load_digits
    >>> from skdim import DeepInfoMax
    >>> from skdim.evaluation import FineTunedClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200].reshape(-1, 8, 8) / 16.0, y[:200]
    >>> dim = DeepInfoMax(n_components=8, critic_units=32, batch_size=50,
    ...                   max_epochs=1, device="cpu", random_state=0).fit(X)
    >>> clf = FineTunedClassifier(dim, epochs=1, batch_size=50,
    ...                           random_state=0).fit(X, y)
    >>> clf.classes_
    array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> clf.predict(X[:5]).shape, clf.predict_proba(X[:5]).shape
    ((5,), (5, 10))
    >>> bool(0.0 <= clf.score(X, y) <= 1.0)
    True
    >>> clf.encoder_ is dim.encoder_  # a fine-tuned copy; dim is unchanged
    False
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["preprocess"])],
        "layer": [StrOptions(set(LAYERS))],
        **TRAINING_CONSTRAINTS,
        "device": [str, torch.device, None],
    }

    def __init__(self, estimator, *, layer="fc", epochs=20, batch_size=64,
                 learning_rate=1e-4, device=None, random_state=None):
        self.estimator = estimator
        self.layer = layer
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state

    def _features(self, encoder: nn.Module, x: Tensor) -> Tensor:
        return getattr(encoder(x), self.layer).flatten(1)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fine-tune a copy of the encoder and a linear head on ``(X, y)``.

        Parameters
        ----------
        X : array-like
            Inputs in any form ``estimator`` accepts.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : FineTunedClassifier
            The fitted classifier.
        """
        check_is_fitted(self.estimator, "encoder_", msg=_NOT_FITTED)
        y = column_or_1d(y)
        labels = LabelEncoder().fit(y)
        if len(labels.classes_) < 2:
            raise ValueError("y must contain at least two classes.")
        inputs = self.estimator.preprocess(X)
        check_consistent_length(inputs, y)
        device = self.device if self.device is not None else getattr(
            self.estimator, "device_", "cpu")
        dev = resolve_device(device)
        targets = torch.from_numpy(labels.transform(y)).to(dev)
        seed = seed_from(self.random_state)
        shuffle = seeded_generator(seed + 1)

        encoder = copy.deepcopy(self.estimator.encoder_).to(dev)
        encoder.eval()
        with torch.no_grad():
            n_features = self._features(encoder, inputs[:2].to(dev)).shape[1]
        n_classes = len(labels.classes_)
        head = build_seeded(seed, lambda: nn.Linear(n_features, n_classes)).to(dev)
        params = list(encoder.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=self.learning_rate)

        self.loss_curve_ = []
        encoder.train()
        for _ in range(self.epochs):
            total, count = 0.0, 0
            for rows in batch_indices(len(inputs), self.batch_size, shuffle):
                idx = torch.from_numpy(rows)
                xb = inputs[idx].to(dev)
                loss = F.cross_entropy(head(self._features(encoder, xb)), targets[idx.to(dev)])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            self.loss_curve_.append(total / count)
        self.encoder_ = encoder.cpu().eval()
        self.head_ = head.cpu().eval()
        self.classes_ = labels.classes_
        self.n_iter_ = self.epochs
        return self

    def decision_function(self, X) -> np.ndarray:
        """Class logits, shape (n_samples, n_classes).

        Parameters
        ----------
        X : array-like
            Inputs in any form ``estimator`` accepts.

        Returns
        -------
        logits : ndarray of shape (n_samples, n_classes)
            Unnormalised class scores (BatchNorm in eval mode, so rows are
            independent of each other).
        """
        check_is_fitted(self, "head_")
        inputs = self.estimator.preprocess(X)
        self.encoder_.eval()
        with torch.no_grad():
            out = [self.head_(self._features(self.encoder_, b)) for b in inputs.split(256)]
        return torch.cat(out).numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of :meth:`decision_function`).

        Parameters
        ----------
        X : array-like
            Inputs in any form ``estimator`` accepts.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        return torch.softmax(torch.from_numpy(self.decision_function(X)), 1).numpy()

    def predict(self, X) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : array-like
            Inputs in any form ``estimator`` accepts.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self, "head_")
        return self.classes_[self.decision_function(X).argmax(1)]


@validate_params(
    {"X": "no_validation", "y": ["array-like"], **FineTunedClassifier._parameter_constraints},
    prefer_skip_nested_validation=True,
)
def finetune(estimator, X, y, *, layer="fc", epochs=20, batch_size=64,
             learning_rate=1e-4, device=None, random_state=None) -> FineTunedClassifier:
    """Fine-tune a copy of a fitted DIM encoder on labels.

    Shorthand for ``FineTunedClassifier(estimator, ...).fit(X, y)``; see
    :class:`FineTunedClassifier` for the parameters (``device="auto"``
    picks CUDA when available; ``random_state=None`` draws one seed from
    NumPy's global ``RandomState``). ``estimator`` is left unchanged.

    Returns
    -------
    classifier : FineTunedClassifier
        Fitted; has ``predict``, ``predict_proba`` and ``score``.

    Examples
    --------
    A tiny run on 8x8 digits (real use trains longer on more data):

    >>> from sklearn.datasets import load_digits
    >>> from skdim import DeepInfoMax
    >>> from skdim.evaluation import finetune
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200].reshape(-1, 8, 8) / 16.0, y[:200]
    >>> dim = DeepInfoMax(n_components=8, critic_units=32, batch_size=50,
    ...                   max_epochs=1, device="cpu", random_state=0).fit(X)
    >>> clf = finetune(dim, X[:150], y[:150], epochs=2, batch_size=50,
    ...                random_state=0)
    >>> clf.predict(X[150:]).shape
    (50,)
    >>> bool(0.0 <= clf.score(X[150:], y[150:]) <= 1.0)
    True
    """
    return FineTunedClassifier(
        estimator, layer=layer, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, device=device, random_state=random_state,
    ).fit(X, y)
