"""Validation of an estimator's input ``X``, without writing to the estimator.

``validate_data(estimator, X, reset=True)`` records ``n_features_in_`` (and
``feature_names_in_``) on the estimator as a side effect. A fit that then
fails would leave those behind, so :func:`check_input` lets it write to a
shallow copy and returns what it recorded; the estimator publishes it only
when the whole fit succeeded.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import validate_data

from ._layout import Layout, flat_image_hint
from ._sources import is_out_of_core, validate_source


@dataclass(frozen=True)
class Checked:
    """A validated ``X`` and what fit records about it."""

    X: object
    n_features_in: int
    feature_names_in: np.ndarray | None
    input_shape: tuple[int, ...]


def check_sample_shape(shape, fitted_shape: tuple[int, ...] | None, layout: str | None) -> None:
    """Compare per-sample shapes before ``validate_data``, so that a 3-D/4-D
    mismatch is not reported as a feature-count mismatch."""
    if shape is None or len(shape) < 2 or fitted_shape is None:
        return
    sample = tuple(int(s) for s in shape[1:])
    if sample == fitted_shape or (len(sample) == 1 and len(fitted_shape) == 1):
        # Equal, or 2-D arrays: validate_data's standard n_features message.
        return
    raise ValueError(
        f"X has per-sample shape {sample}, but the estimator was fitted on per-sample shape "
        f"{fitted_shape} (layout {layout!r}); transform needs the same shape and layout as fit."
    )


def check_input(estimator, X, *, reset: bool) -> Checked:
    """Validate ``X`` for ``estimator`` (``reset=True``: as a new fit's data).

    Memory maps, h5py/zarr arrays and datasets are checked block by block
    (:func:`~skdim._data.validate_source`); everything else goes through
    scikit-learn's ``validate_data``. Nothing is written to ``estimator``.
    """
    fitted_shape = None if reset else getattr(estimator, "input_shape_", None)
    check_sample_shape(getattr(X, "shape", None), fitted_shape, getattr(estimator, "layout_", None))
    name = type(estimator).__name__
    if is_out_of_core(X):
        n_features = None if reset else getattr(estimator, "n_features_in_", None)
        X = validate_source(X, name=name, n_features=n_features)
        names = None if reset else getattr(estimator, "feature_names_in_", None)
        n_in = int(X.shape[1])
    else:
        target = copy.copy(estimator) if reset else estimator
        X = validate_data(target, X, reset=reset, allow_nd=True, dtype="numeric",
                          ensure_all_finite=True, ensure_min_samples=1, ensure_min_features=1)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold numbers (bool, integer or float); got dtype {X.dtype}.")
        if X.dtype == np.float16 or X.dtype.kind == "b":
            X = X.astype(np.float32)
        n_in = int(target.n_features_in_)
        names = getattr(target, "feature_names_in_", None)
    check_sample_shape(X.shape, fitted_shape, getattr(estimator, "layout_", None))
    return Checked(X, n_in, names, tuple(int(s) for s in X.shape[1:]))


def check_min_samples(n_samples: int, name: str) -> None:
    if n_samples < 2:
        raise ValueError(
            f"n_samples={n_samples}: {name} needs at least 2 samples, since negative pairs "
            "are drawn from other images in the batch."
        )


def warn_if_flat_images(layout: Layout, input_layout: str, image_shape) -> None:
    """Warn when 1-D signals resolved by default look like flattened square images."""
    if layout.layout != "NL" or input_layout != "auto" or image_shape is not None:
        return
    hint = flat_image_hint(layout.spatial[0])
    if hint:
        warnings.warn(
            f"X is read as 1-D signals of length {layout.spatial[0]}, but {hint}: if the rows "
            "are flattened images, pass image_shape=(H, W) or (H, W, C) so that the encoder "
            "sees them as images; pass input_layout='NL' to keep signals and silence this.",
            UserWarning, stacklevel=4,
        )
