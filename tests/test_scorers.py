"""Tests for skdim.MINEScorer and skdim.NDMScorer.

The scorers must run inside scikit-learn's three entry points
(``cross_val_score``, ``cross_validate`` with several metrics, with and
without ``y``, and ``GridSearchCV`` with two workers), return exactly the
metric of the codes they document, keep no state, and follow the
greater-is-better convention (NDM negated). DeepInfoMax is kept tiny (8
codes, one epoch, 32-unit critics) and the estimators run a few steps: these
tests check plumbing and conventions; accuracy is tested in test_metrics.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skdim import DeepInfoMax, MINEScorer, NDMScorer
from skdim.metrics import mine_mutual_information, neural_dependency_measure


class _Identity(StandardScaler):
    """A transformer whose codes are the (standardised) input."""

FAST_MINE = dict(n_steps=15, batch_size=32)
FAST_NDM = dict(n_steps=15, batch_size=32, hidden_layer_sizes=(64, 32))


@pytest.fixture(scope="module")
def digits(digits_images, digits_xy):
    return digits_images[:240], digits_xy[1][:240]


def small_dim(**kw) -> DeepInfoMax:
    params = dict(
        n_components=8, max_epochs=1, critic_units=32, batch_size=32, device="cpu",
        random_state=0,
    )
    params.update(kw)
    return DeepInfoMax(**params)


def dim_pipeline(**kw) -> Pipeline:
    return Pipeline([("dim", small_dim(**kw)), ("clf", LogisticRegression(max_iter=300))])


@pytest.fixture(scope="module")
def fitted_pipe(digits):
    X, y = digits
    return dim_pipeline().fit(X, y)


# ---------------------------------------------------------------------------
# What is scored
# ---------------------------------------------------------------------------


def test_scores_equal_the_metrics_of_the_codes(fitted_pipe, digits):
    X, y = digits
    codes = fitted_pipe["dim"].transform(X)
    mine = MINEScorer(random_state=4, **FAST_MINE)
    ndm = NDMScorer(random_state=4, **FAST_NDM)
    expected_mi = mine_mutual_information(X, codes, random_state=4, **FAST_MINE)
    expected_ndm = neural_dependency_measure(codes, random_state=4, **FAST_NDM)
    # The last step predicts, so the codes are the output of the steps before it.
    assert mine(fitted_pipe, X, y) == expected_mi
    assert ndm(fitted_pipe, X, y) == -expected_ndm
    # The transformer on its own gives the same codes and the same scores.
    assert mine(fitted_pipe["dim"], X) == expected_mi
    assert NDMScorer(sign=1, random_state=4, **FAST_NDM)(fitted_pipe["dim"], X) == expected_ndm


def test_ndm_scorer_is_negated_by_default():
    # neg_ convention: -NDM, so that lower dependence scores higher.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3_000, 1))
    dependent = np.hstack([a, a + 0.3 * rng.normal(size=(3_000, 1))])
    independent = rng.normal(size=(3_000, 2))
    identity = FunctionTransformer().fit(dependent)
    scorer = NDMScorer(n_steps=150, hidden_layer_sizes=(64, 32))
    s_dep, s_ind = scorer(identity, dependent), scorer(identity, independent)
    assert s_dep < -0.5  # true TC of the dependent pair: 1.2 nats
    assert s_ind > s_dep  # independent codes are preferred
    assert NDMScorer(sign=1, n_steps=150, hidden_layer_sizes=(64, 32))(identity, dependent) == -s_dep


def test_code_extraction_rules():
    X = np.random.default_rng(0).normal(size=(30, 5))
    y = np.arange(30) % 2
    scorer = MINEScorer()
    pca = PCA(n_components=3).fit(X)
    # A transformer: its transform.
    np.testing.assert_array_equal(scorer.codes(pca, X), pca.transform(X))
    # A Pipeline ending in a predictor: the steps before it.
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(3)), ("clf", LogisticRegression())])
    pipe.fit(X, y)
    np.testing.assert_array_equal(scorer.codes(pipe, X), pipe[:-1].transform(X))
    # A Pipeline ending in a transformer: the whole pipeline.
    tpipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(3))]).fit(X)
    np.testing.assert_array_equal(scorer.codes(tpipe, X), tpipe.transform(X))
    # A named or indexed step.
    np.testing.assert_array_equal(
        MINEScorer(step="scale").codes(pipe, X), pipe["scale"].transform(X)
    )
    np.testing.assert_array_equal(MINEScorer(step=1).codes(pipe, X), pipe[:2].transform(X))
    np.testing.assert_array_equal(MINEScorer(step=-2).codes(pipe, X), pipe[:2].transform(X))


def test_code_extraction_errors():
    X = np.random.default_rng(0).normal(size=(30, 5))
    y = np.arange(30) % 2
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(TypeError, match="has no transform method"):
        MINEScorer().codes(clf, X)
    pipe = Pipeline([("pca", PCA(3)), ("clf", LogisticRegression())]).fit(X, y)
    with pytest.raises(ValueError, match="not a step of the Pipeline"):
        MINEScorer(step="dim").codes(pipe, X)
    with pytest.raises(ValueError, match="out of range"):
        MINEScorer(step=5).codes(pipe, X)
    with pytest.raises(ValueError, match="names a Pipeline step"):
        MINEScorer(step="pca").codes(PCA(3).fit(X), X)
    only_clf = Pipeline([("clf", LogisticRegression())]).fit(X, y)
    with pytest.raises(ValueError, match="no step that produces codes"):
        MINEScorer().codes(only_clf, X)
    with pytest.raises(ValueError, match=r"'sign' parameter of NDMScorer must be an? int among \{(1, -1|-1, 1)\}"):
        NDMScorer(sign=0)(PCA(3).fit(X), X)


def test_codes_with_nan_are_rejected():
    X = np.random.default_rng(0).normal(size=(40, 3))
    bad = FunctionTransformer(lambda a: np.where(a > 1.5, np.nan, a)).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        NDMScorer(**FAST_NDM)(bad, X)
    with pytest.raises(ValueError, match="NaN"):
        MINEScorer(**FAST_MINE)(bad, X)


# ---------------------------------------------------------------------------
# Conventions: no state, seeding, repr, pickling
# ---------------------------------------------------------------------------


def test_no_state_and_reproducible(fitted_pipe, digits):
    X, y = digits
    scorer = NDMScorer(**FAST_NDM)
    before = pickle.dumps(scorer)
    first = scorer(fitted_pipe, X, y)
    assert pickle.dumps(scorer) == before  # nothing written to the scorer
    assert scorer(fitted_pipe, X, y) == first
    assert clone(scorer)(fitted_pipe, X, y) == first
    assert pickle.loads(before)(fitted_pipe, X, y) == first


def test_readable_repr_and_params():
    assert repr(MINEScorer()) == "MINEScorer()"
    assert repr(NDMScorer(sign=1, n_steps=50)) == "NDMScorer(n_steps=50, sign=1)"
    scorer = NDMScorer().set_params(sigmoid=True)
    assert scorer.get_params()["sigmoid"] is True
    assert MINEScorer().get_params()["random_state"] == 0


# ---------------------------------------------------------------------------
# scikit-learn entry points
# ---------------------------------------------------------------------------


def test_cross_val_score(digits):
    X, y = digits
    scores = cross_val_score(dim_pipeline(), X, y, cv=3, scoring=MINEScorer(**FAST_MINE))
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_cross_validate_multimetric_with_y(digits):
    X, y = digits
    result = cross_validate(
        dim_pipeline(), X, y, cv=2,
        scoring={"accuracy": "accuracy", "mi": MINEScorer(**FAST_MINE), "ndm": NDMScorer(**FAST_NDM)},
    )
    assert np.all((result["test_accuracy"] >= 0) & (result["test_accuracy"] <= 1))
    assert np.isfinite(result["test_mi"]).all()
    assert np.isfinite(result["test_ndm"]).all()


def test_cross_validate_without_y(digits):
    X, _ = digits
    result = cross_validate(
        small_dim(), X, cv=2,
        scoring={"mi": MINEScorer(**FAST_MINE), "ndm": NDMScorer(**FAST_NDM)},
    )
    assert np.isfinite(result["test_mi"]).all() and np.isfinite(result["test_ndm"]).all()
    # Fold 0 by hand: fit on the second half, score the first half.
    half = len(X) // 2
    dim = small_dim().fit(X[half:])
    codes = dim.transform(X[:half])
    expected = -neural_dependency_measure(codes, random_state=0, **FAST_NDM)
    assert result["test_ndm"][0] == pytest.approx(expected, abs=1e-6)


def test_grid_search_two_workers(digits):
    X, y = digits
    search = GridSearchCV(
        dim_pipeline(), {"dim__gamma": [0.0, 1.0]}, cv=2, n_jobs=2,
        scoring=NDMScorer(**FAST_NDM),
    )
    search.fit(X, y)
    means = search.cv_results_["mean_test_score"]
    assert np.isfinite(means).all()
    assert search.best_score_ == means.max()
    # Worker processes give the same scores as this process would with the
    # workers' thread count (loky gives each cpu_count // n_jobs threads;
    # another count rounds float sums differently, by about 1e-6).
    import joblib
    import torch

    train, test = next(StratifiedKFold(2).split(X, y))
    before = torch.get_num_threads()
    torch.set_num_threads(max(joblib.cpu_count() // 2, 1))
    try:
        pipe = dim_pipeline(gamma=0.0).fit(X[train], y[train])
        here = NDMScorer(**FAST_NDM)(pipe, X[test], y[test])
    finally:
        torch.set_num_threads(before)
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(here, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mine_scorer_is_stable_on_small_folds(seed):
    """Codes of a 3-epoch DIM on 600 digits, cv=2: the two folds' MINE scores
    must be usable for ranking (they swung from -5.7 to +3.0 nats)."""
    from sklearn.model_selection import cross_validate

    X = load_digits().images[:600]
    dim = DeepInfoMax(n_components=16, max_epochs=3, critic_units=64, random_state=seed)
    scores = cross_validate(dim, X, cv=2, scoring=MINEScorer(random_state=seed))["test_score"]
    assert (scores >= -0.1).all(), scores
    assert abs(scores[0] - scores[1]) <= 1.5, scores


def test_mine_scorer_warns_when_the_held_out_set_is_small():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    with pytest.warns(UserWarning, match=r"18 held-out rows"):
        MINEScorer(n_steps=10)(_Identity().fit(x), x)


def test_mine_verbose_says_what_is_returned(capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    value = MINEScorer(n_steps=40, verbose=1)(_Identity().fit(x), x)
    err = capsys.readouterr().err
    assert f"returned: {value:.4f}" in err


def test_ndm_scorer_sign_must_be_an_int():
    x = np.random.default_rng(0).normal(size=(60, 3))
    with pytest.raises(ValueError, match="'sign' parameter of NDMScorer must be -1 or 1, not a bool"):
        NDMScorer(sign=True, n_steps=5)(_Identity().fit(x), x)
