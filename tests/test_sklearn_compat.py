"""scikit-learn compatibility of DeepInfoMax.

Every check of ``sklearn.utils.estimator_checks`` runs, unmodified and with no
expected failures, on small configurations that cover the main switches:
DIM(L) with JSD and the default prior, DIM(G) with infoNCE, the
concat-and-convolve critic with DV and a unit-sphere prior, and the fc/conv
output layers. The tabular arrays of those checks (1 to 10 features) are read
as 1-channel signals, so the size-agnostic 1-D encoder is exercised too.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdim import DeepInfoMax

TINY = dict(max_epochs=2, batch_size=16, critic_units=16, random_state=0)

ESTIMATORS = [
    DeepInfoMax(n_components=2, **TINY),
    DeepInfoMax(n_components=3, alpha=1.0, beta=0.0, gamma=1.0, mi_estimator="infonce", **TINY),
    DeepInfoMax(n_components=2, local_critic="concat", mi_estimator="dv", prior="unit_sphere", **TINY),
    DeepInfoMax(n_components=2, gamma=0.0, output_layer="fc", n_negatives=3, **TINY),
    DeepInfoMax(n_components=2, prior="gaussian", output_layer="conv", precision="bfloat16", **TINY),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_default_parameters_pass_a_smoke_fit():
    # The defaults (64 components, 512-unit critics) on a tabular array.
    X = np.random.default_rng(0).normal(size=(20, 5))
    est = DeepInfoMax(max_epochs=1, random_state=0).fit(X)
    assert est.transform(X).shape == (20, 64)


def test_clone_and_get_params_round_trip():
    est = DeepInfoMax(n_components=7, alpha=0.5, beta=0.1, image_shape=(8, 8), random_state=3)
    params = est.get_params()
    assert params["image_shape"] == (8, 8) and params["n_components"] == 7
    twin = clone(est)
    assert twin.get_params() == params
    assert not hasattr(twin, "encoder_")


def test_tags():
    tags = DeepInfoMax().__sklearn_tags__()
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    assert tags.input_tags.three_d_array
    assert not tags.non_deterministic  # seeded, never "non-deterministic" to hide it
    assert not tags.input_tags.sparse


def test_grid_search_and_cross_validation_in_a_pipeline():
    X, y = load_digits(return_X_y=True)
    X, y = X[:160], y[:160]
    pipe = Pipeline(
        [
            ("dim", DeepInfoMax(n_components=8, image_shape=(8, 8), max_epochs=1, batch_size=32, critic_units=8, random_state=0)),
            ("svm", LinearSVC()),
        ]
    )
    search = GridSearchCV(pipe, {"dim__alpha": [0.0, 0.5], "dim__beta": [0.0, 1.0]}, cv=2, error_score="raise")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_["dim"].n_iter_ == 1
    scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
