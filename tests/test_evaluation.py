"""Tests for skdim.evaluation (paper section 4.1 evaluation toolkit).

The estimator-facing tools are tested against ``FakeDIM``, a stand-in with
the public interface ``DeepInfoMax`` provides (``encoder_``, ``preprocess``,
``extract_features``, ``device_``), so they do not depend on DIM training.
"""

from __future__ import annotations

import pickle
import sys
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.base import BaseEstimator, clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors
from torch import Tensor, nn

from skdim.evaluation._ms_ssim import MS_SSIM_WEIGHTS, ms_ssim_config
from skdim.evaluation import (
    FineTunedClassifier,
    finetune,
    format_table,
    linear_probe,
    mlp_probe,
    ms_ssim,
    nearest_neighbors,
    plot_nearest_neighbors,
    probe_table,
    reconstruction_ms_ssim,
)

# --------------------------------------------------------------------------
# Helpers and a stand-in estimator
# --------------------------------------------------------------------------


@contextmanager
def global_rng_untouched():
    """Fail if the block draws from NumPy's or torch's global RNG."""
    np_before = np.random.get_state()
    torch_before = torch.get_rng_state()
    yield
    np_after = np.random.get_state()
    assert np.array_equal(np_before[1], np_after[1]) and np_before[2] == np_after[2]
    assert torch.equal(torch_before, torch.get_rng_state())


class EncoderOutput(NamedTuple):
    local: Tensor
    conv: Tensor
    fc: Tensor
    y: Tensor


class TinyEncoder(nn.Module):
    """8x8 grayscale -> local 8x4x4, conv 16x2x2, fc 32, y 4."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.y = nn.Linear(32, 4)

    def forward(self, x: Tensor) -> EncoderOutput:
        local = self.c1(x)
        conv = self.c2(local)
        fc = self.fc(conv.flatten(1))
        return EncoderOutput(local, conv, fc, self.y(fc))


class FakeDIM(BaseEstimator):
    """An untrained random encoder behind DeepInfoMax's evaluation interface."""

    def __init__(self, n_components=4, random_state=0):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X=None, y=None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self.encoder_ = TinyEncoder().eval()
        self.device_ = "cpu"
        return self

    def preprocess(self, X) -> Tensor:
        X = np.asarray(X, dtype=np.float32).reshape(-1, 1, 8, 8)
        return torch.from_numpy(X / 16.0)

    def extract_features(self, X, layer) -> np.ndarray:
        self.encoder_.eval()
        with torch.no_grad():
            out = getattr(self.encoder_(self.preprocess(X)), layer)
        return out.flatten(1).numpy()


@pytest.fixture(scope="module")
def digits(digits_xy):
    X, y = digits_xy
    return X[:600], y[:600], X[600:900], y[600:900]


@pytest.fixture(scope="module")
def fake_dim():
    return FakeDIM().fit()


def blobs(n=100, d=5, shift=5.0, seed=0, labels=(0, 1)):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.asarray(labels), n // len(labels))
    codes = (y[:, None] == np.asarray(labels)[None]).argmax(1)
    return rng.normal(size=(len(y), d)) + shift * codes[:, None], y


def rings(n=400, seed=0):
    """A disk (label 0) inside a ring (label 1): no line does much better
    than chance (observed 0.49-0.59 over five seeds), a small MLP gets 1.0."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    radius = np.where(y == 0, rng.uniform(0, 0.5, n), rng.uniform(0.8, 1.2, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    order = rng.permutation(n)
    return X[order], y[order]


# --------------------------------------------------------------------------
# Linear and MLP probes
# --------------------------------------------------------------------------


def test_linear_probe_separable_data_is_perfect():
    F, y = blobs()
    assert linear_probe(F[::2], y[::2], F[1::2], y[1::2], random_state=0) == 1.0


def test_linear_probe_standardize_rescues_tiny_informative_feature():
    # The only informative feature has scale 1e-3: without standardisation
    # the L2 penalty on the weight it needs (~1e3) makes the SVM ignore it.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    informative = 1e-3 * ((2 * y - 1) + 0.3 * rng.normal(size=200))
    F = np.column_stack([informative, 5 * rng.normal(size=(200, 5))])
    args = (F[::2], y[::2], F[1::2], y[1::2])
    assert linear_probe(*args, random_state=0) >= 0.98
    assert linear_probe(*args, standardize=False, random_state=0) <= 0.7


def test_mlp_probe_solves_rings_where_linear_probe_cannot():
    X, y = rings()
    args = (X[:300], y[:300], X[300:], y[300:])
    assert linear_probe(*args, random_state=0) < 0.7
    assert mlp_probe(*args, epochs=30, learning_rate=1e-2, random_state=0) >= 0.95


def test_mlp_probe_string_labels_and_unseen_test_labels_count_as_errors():
    F, y = blobs(labels=("cat", "dog"))
    F_test, y_test = F[1::2].copy(), y[1::2].copy()
    y_test[:10] = "eel"  # 10 of 50 test labels never seen in training
    acc = mlp_probe(F[::2], y[::2], F_test, y_test, epochs=20, learning_rate=1e-2,
                    random_state=0)
    assert acc == pytest.approx(40 / 50)


def test_mlp_probe_seeded_and_leaves_global_rng_alone():
    X, y = rings(200, seed=1)
    args = (X[:150], y[:150], X[150:], y[150:])
    with global_rng_untouched():
        a = mlp_probe(*args, epochs=3, learning_rate=1e-2, random_state=7)
        b = mlp_probe(*args, epochs=3, learning_rate=1e-2, random_state=7)
        linear_probe(*args, random_state=7)
    assert a == b


def test_random_state_none_draws_one_seed_from_numpys_global_rng():
    # scikit-learn's convention (skdim._runtime.seed_from): None takes one
    # draw from NumPy's global RandomState, so np.random.seed makes it
    # repeatable, and equals passing RandomState(seed); torch's global
    # generator is never used.
    X, y = rings(200, seed=1)
    args = (X[:150], y[:150], X[150:], y[150:])
    kw = dict(epochs=3, learning_rate=1e-2)
    torch_before = torch.get_rng_state()
    np.random.seed(11)
    a = mlp_probe(*args, random_state=None, **kw)
    after_one = np.random.get_state()[1].copy()
    np.random.seed(11)
    b = mlp_probe(*args, random_state=None, **kw)
    c = mlp_probe(*args, random_state=np.random.RandomState(11), **kw)
    assert a == b == c
    np.random.seed(11)
    np.random.randint(2**31 - 1)  # one draw, as seed_from takes
    np.testing.assert_array_equal(np.random.get_state()[1], after_one)
    assert torch.equal(torch_before, torch.get_rng_state())


def test_mlp_probe_average_last_averages_the_per_epoch_accuracies():
    # Evaluation draws nothing from the generator, so a run of 3 epochs passes
    # through the same states as runs of 1 and 2 epochs.
    X, y = rings(200, seed=2)
    args = (X[:150], y[:150], X[150:], y[150:])
    kw = dict(learning_rate=3e-3, random_state=3)
    per_epoch = [mlp_probe(*args, epochs=e, **kw) for e in (1, 2, 3)]
    assert mlp_probe(*args, epochs=3, average_last=3, **kw) == pytest.approx(np.mean(per_epoch))
    last_two = mlp_probe(*args, epochs=3, average_last=2, **kw)
    assert last_two == pytest.approx(np.mean(per_epoch[1:]))


@pytest.mark.parametrize("probe", [linear_probe, mlp_probe])
def test_probes_reject_bad_input(probe):
    F, y = blobs()
    with pytest.raises(ValueError, match="features"):
        probe(F, y, F[:, :3], y)
    with pytest.raises(ValueError, match="two classes"):
        probe(F, np.zeros(len(F)), F, y)
    with pytest.raises(ValueError):
        probe(F, y[:-1], F, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(epochs=0), "'epochs' parameter"), (dict(batch_size=1), "'batch_size' parameter"),
     (dict(learning_rate=0.0), "'learning_rate' parameter"),
     (dict(epochs=2, average_last=3), "average_last=3"), (dict(dropout=1.0), "'dropout'"),
     (dict(hidden=0), "'hidden' parameter"), (dict(device="gpu:x"), "device='gpu:x'"),
     (dict(device=0), "'device' parameter"), (dict(random_state=-1), "'random_state'")]
)
def test_mlp_probe_rejects_bad_parameters(kwargs, match):
    F, y = blobs()
    with pytest.raises(ValueError, match=match):
        mlp_probe(F, y, F, y, **kwargs)


def test_device_auto_is_accepted():
    F, y = blobs()
    args = (F[::2], y[::2], F[1::2], y[1::2])
    kw = dict(epochs=2, learning_rate=1e-2, random_state=0)
    if not torch.cuda.is_available():  # "auto" is then the CPU: same numbers
        assert mlp_probe(*args, device="auto", **kw) == mlp_probe(*args, device="cpu", **kw)
    else:
        assert 0.0 <= mlp_probe(*args, device="auto", **kw) <= 1.0


# --------------------------------------------------------------------------
# probe_table and format_table
# --------------------------------------------------------------------------


def test_probe_table_routes_each_layer_to_the_probe(digits, fake_dim):
    X_tr, y_tr, X_te, y_te = digits
    seen = []

    def width_probe(F_train, y_train, F_test, y_test, *, scale):
        seen.append((F_train.shape, F_test.shape))
        return F_train.shape[1] * scale

    table = probe_table({"dim": fake_dim, "pixels": lambda X: X}, X_tr, y_tr, X_te, y_te,
                        probe=width_probe, scale=0.001)
    # conv 16x2x2 flattened, fc 32, y 4; the baseline gets the 64 raw pixels
    assert table == {"dim": {"conv": 0.064, "fc": 0.032, "y": 0.004},
                     "pixels": {"features": 0.064}}
    assert [s[0][0] for s in seen] == [600] * 4 and [s[1][0] for s in seen] == [300] * 4


def test_probe_table_values_equal_direct_probes(digits, fake_dim):
    X_tr, y_tr, X_te, y_te = digits
    pca = PCA(n_components=10, random_state=0).fit(X_tr)
    table = probe_table({"dim": fake_dim, "pca": pca}, X_tr, y_tr, X_te, y_te,
                        layers=("fc", "y"), random_state=0)
    for layer in ("fc", "y"):
        expected = linear_probe(fake_dim.extract_features(X_tr, layer), y_tr,
                                fake_dim.extract_features(X_te, layer), y_te, random_state=0)
        assert table["dim"][layer] == expected
    assert table["pca"] == {"features": linear_probe(pca.transform(X_tr), y_tr,
                                                     pca.transform(X_te), y_te,
                                                     random_state=0)}
    assert table["pca"]["features"] > 0.8  # PCA of digits is linearly separable-ish


def test_probe_table_rejects_bad_arguments(digits, fake_dim):
    X_tr, y_tr, X_te, y_te = digits
    with pytest.raises(ValueError, match="'probe' parameter"):
        probe_table({"dim": fake_dim}, X_tr, y_tr, X_te, y_te, probe="svm")
    with pytest.raises(TypeError, match="'probe' parameter"):
        probe_table({"dim": fake_dim}, X_tr, y_tr, X_te, y_te, probe=3)
    with pytest.raises(ValueError, match="'models' parameter"):
        probe_table([fake_dim], X_tr, y_tr, X_te, y_te)
    # the probe still validates the keyword arguments passed on to it
    with pytest.raises(ValueError, match="'epochs' parameter"):
        probe_table({"pixels": lambda X: X}, X_tr, y_tr, X_te, y_te, probe="mlp", epochs=0)
    with pytest.raises(TypeError, match="models\\['bad'\\]"):
        probe_table({"bad": 3}, X_tr, y_tr, X_te, y_te)
    with pytest.raises(ValueError, match="non-empty"):
        probe_table({}, X_tr, y_tr, X_te, y_te)


def test_format_table_aligns_and_marks_missing_cells():
    text = format_table({"DIM(L)": {"conv": 0.6325, "fc": 0.5406, "y": 0.4962},
                         "pixels": {"features": 0.39}})
    assert text.splitlines() == [
        "model    conv     fc      y  features",
        "DIM(L)  63.25  54.06  49.62         -",
        "pixels      -      -      -     39.00",
    ]
    plain = format_table({"m": {"y": 0.5}}, percent=False, decimals=3)
    assert plain == "model      y\nm      0.500"


# --------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------


def test_finetune_learns_and_leaves_the_estimator_alone(digits, fake_dim):
    X_tr, y_tr, X_te, y_te = digits
    names = np.array([f"digit{k}" for k in range(10)])
    before = {k: v.clone() for k, v in fake_dim.encoder_.state_dict().items()}
    with global_rng_untouched():
        clf = finetune(fake_dim, X_tr, names[y_tr], epochs=15, learning_rate=1e-2,
                       random_state=0)
    # digits are easy once the whole encoder trains (the random frozen
    # encoder's y layer alone gives about 0.5 with a linear probe)
    assert clf.score(X_te, names[y_te]) >= 0.9
    assert set(clf.predict(X_te)) <= set(names) and list(clf.classes_) == sorted(names)
    for k, v in fake_dim.encoder_.state_dict().items():
        assert torch.equal(v, before[k]), k
    tuned = clf.encoder_.state_dict()
    assert not torch.equal(tuned["c1.0.weight"], before["c1.0.weight"])  # encoder trained too
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    # eval mode: a row's prediction does not depend on the others
    np.testing.assert_allclose(clf.decision_function(X_te[:1]),
                               clf.decision_function(X_te)[:1], rtol=1e-5, atol=1e-6)
    proba = clf.predict_proba(X_te[:5])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_finetune_is_seeded_pickles_and_supports_layers(digits, fake_dim):
    X_tr, y_tr, X_te, _ = digits
    kw = dict(epochs=2, learning_rate=1e-3, random_state=4)
    a = finetune(fake_dim, X_tr[:200], y_tr[:200], **kw)
    b = finetune(fake_dim, X_tr[:200], y_tr[:200], **kw)
    np.testing.assert_array_equal(a.decision_function(X_te), b.decision_function(X_te))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.decision_function(X_te), c.decision_function(X_te))
    for layer, width in [("conv", 64), ("fc", 32), ("y", 4)]:
        clf = finetune(fake_dim, X_tr[:100], y_tr[:100], layer=layer, epochs=1)
        assert clf.head_.in_features == width


def test_finetuned_classifier_clones_through_frozen_estimator(digits, fake_dim):
    from sklearn.frozen import FrozenEstimator

    X_tr, y_tr, X_te, y_te = digits
    clf = clone(FineTunedClassifier(FrozenEstimator(fake_dim), epochs=1, random_state=0))
    assert clf.fit(X_tr[:100], y_tr[:100]).predict(X_te).shape == (300,)


def test_finetune_errors(digits, fake_dim):
    X_tr, y_tr, X_te, _ = digits
    with pytest.raises(ValueError, match="fitted"):
        finetune(FakeDIM(), X_tr, y_tr, epochs=1)
    with pytest.raises(ValueError, match="'layer' parameter of finetune"):
        finetune(fake_dim, X_tr, y_tr, layer="local", epochs=1)
    with pytest.raises(ValueError, match="'layer' parameter of FineTunedClassifier"):
        FineTunedClassifier(fake_dim, layer="local").fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        finetune(fake_dim, X_tr, y_tr, batch_size=1)
    with pytest.raises(ValueError, match="'estimator' parameter"):
        finetune(object(), X_tr, y_tr, epochs=1)
    with pytest.raises(ValueError, match="device='gpu:x'"):
        finetune(fake_dim, X_tr, y_tr, epochs=1, device="gpu:x")
    with pytest.raises(ValueError, match="two classes"):
        finetune(fake_dim, X_tr, np.zeros(len(X_tr)), epochs=1)
    with pytest.raises(NotFittedError):
        FineTunedClassifier(fake_dim).predict(X_te)


# --------------------------------------------------------------------------
# MS-SSIM
# --------------------------------------------------------------------------


def reference_ms_ssim(x, y, scales, win_size, data_range=1.0):
    """Straightforward MS-SSIM of two (H, W, C) images (Wang et al. 2003).

    A 2-D Gaussian window applied with scipy.ndimage.correlate and cropped to
    the 'valid' part, 2x2 block means for downsampling, per-channel values
    averaged. Written independently of the torch implementation.
    """
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    r = win_size // 2
    t = np.arange(win_size) - r
    g = np.exp(-(t**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for ch in range(x.shape[2]):
        a, b = x[..., ch], y[..., ch]
        value = 1.0
        for j in range(scales):
            h, w = a.shape

            def local_mean(img):
                return ndimage.correlate(img, window, mode="constant")[r:h - r, r:w - r]

            mu_a, mu_b = local_mean(a), local_mean(b)
            var_a = local_mean(a * a) - mu_a**2
            var_b = local_mean(b * b) - mu_b**2
            cov = local_mean(a * b) - mu_a * mu_b
            cs = (2 * cov + c2) / (var_a + var_b + c2)
            lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
            term = np.mean(lum * cs) if j == scales - 1 else np.mean(cs)
            value *= max(term, 0.0) ** weights[j]
            a = a[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
            b = b[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        values.append(value)
    return float(np.mean(values))


def smooth_images(n, h, w, c=None, seed=0):
    """Random smooth images in [0, 1] (blurred noise), (n, h, w[, c])."""
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if c is None else (n, h, w, c)
    sigma = (0, 2, 2) if c is None else (0, 2, 2, 0)
    x = ndimage.gaussian_filter(rng.normal(size=shape), sigma=sigma)
    axes = tuple(range(1, x.ndim))
    x = x - x.min(axis=axes, keepdims=True)
    return x / x.max(axis=axes, keepdims=True)


def noisy(x, level, seed=1):
    return np.clip(x + np.random.default_rng(seed).normal(scale=level, size=x.shape), 0, 1)


@pytest.mark.parametrize(
    "shape, scales, win_size, input_layout",
    [((32, 32, 3), None, None, "auto"), ((40, 48, 1), 2, 11, "auto"),
     ((64, 64, 2), None, None, "NHWC"),  # 2 channels: "auto" cannot tell
     ((176, 176, 1), None, None, "auto"), ((12, 12, 1), None, 5, "NHWC")],
)
def test_ms_ssim_matches_independent_numpy_reference(shape, scales, win_size, input_layout):
    h, w, c = shape
    x = smooth_images(1, h, w, c, seed=3)[0]
    y = noisy(x, 0.1)
    resolved_scales, resolved_win, _ = ms_ssim_config(h, w, scales, win_size)
    expected = reference_ms_ssim(x, y, resolved_scales, resolved_win)
    got = ms_ssim(x[None], y[None], scales=scales, win_size=win_size,
                  input_layout=input_layout)
    assert 0.1 < expected < 0.99  # a non-trivial pair
    assert got[0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "h, w, scales, win_size",
    [(32, 32, 3, 7), (28, 28, 3, 7), (64, 64, 4, 7), (96, 96, 4, 11), (160, 160, 5, 9),
     (176, 200, 5, 11), (8, 8, 1, 7), (6, 9, 1, 5)],
)
def test_ms_ssim_config_small_image_rule(h, w, scales, win_size):
    got_scales, got_win, weights = ms_ssim_config(h, w)
    assert (got_scales, got_win) == (scales, win_size)
    assert sum(weights) == pytest.approx(1.0)
    ratios = np.asarray(weights) / np.asarray(MS_SSIM_WEIGHTS[:scales])
    np.testing.assert_allclose(ratios, ratios[0])  # renormalised, not reshaped
    assert (h // 2 ** (scales - 1)) >= win_size


def test_ms_ssim_config_explicit_requests():
    assert ms_ssim_config(32, 32, win_size=11)[:2] == (2, 11)
    assert ms_ssim_config(32, 32, scales=4)[:2] == (4, 3)
    assert ms_ssim_config(300, 300, scales=2)[:2] == (2, 11)


def test_ms_ssim_identity_is_one():
    for shape in [(4, 32, 32, 3), (2, 3, 64, 64), (3, 176, 176, 1), (5, 8, 8)]:
        x = np.random.default_rng(0).uniform(size=shape)
        np.testing.assert_allclose(ms_ssim(x, x), 1.0, atol=1e-6)
    assert ms_ssim(x[0], x[0]) == pytest.approx(1.0, abs=1e-6)  # single (H, W)
    assert isinstance(ms_ssim(x[0], x[0]), float)


def test_ms_ssim_independent_noise_is_near_zero():
    # Over 200 seeded 32x32x3 pairs the mean is 0.03 and the maximum 0.18:
    # the 7x7 window leaves only 2x2 positions at the coarsest scale.
    rng = np.random.default_rng(123)
    scores = ms_ssim(rng.uniform(size=(50, 32, 32, 3)), rng.uniform(size=(50, 32, 32, 3)))
    assert scores.mean() < 0.06 and scores.max() < 0.25


def test_ms_ssim_symmetric_and_decreasing_with_noise():
    x = smooth_images(4, 32, 32, 3, seed=5)
    y = noisy(x, 0.2)
    np.testing.assert_allclose(ms_ssim(x, y), ms_ssim(y, x), rtol=0, atol=1e-12)
    levels = [0.01, 0.03, 0.1, 0.2, 0.4]
    scores = np.array([ms_ssim(x, noisy(x, s)) for s in levels])  # (levels, n)
    assert np.all(np.diff(scores, axis=0) < 0)


def test_ms_ssim_layouts_dtypes_and_range():
    x = smooth_images(3, 32, 32, 3, seed=6)
    y = noisy(x, 0.1)
    nhwc = ms_ssim(x, y)
    nchw = ms_ssim(x.transpose(0, 3, 1, 2), y.transpose(0, 3, 1, 2))
    tensors = ms_ssim(torch.from_numpy(x), torch.from_numpy(y))
    scaled = ms_ssim(255 * x, 255 * y, data_range=255)
    for other in (nchw, tensors, scaled):
        np.testing.assert_allclose(other, nhwc, rtol=0, atol=1e-10)
    gray = ms_ssim(x[..., 0], y[..., 0])
    np.testing.assert_allclose(gray, ms_ssim(x[..., :1], y[..., :1]), atol=1e-12)
    assert nhwc.shape == (3,)


def test_ms_ssim_ambiguous_layout_raises_and_input_layout_resolves_it():
    # (n, 3, 8, 3) as in the estimator: both end axes could hold channels.
    x = smooth_images(2, 8, 8, 3, seed=7)  # (2, 8, 8, 3) channels-last
    y = noisy(x, 0.1)
    ambiguous_x, ambiguous_y = x[:, :3], y[:, :3]  # (2, 3, 8, 3): rows 0-2, channels last
    with pytest.raises(ValueError, match="img1.*input_layout='NHWC'"):
        ms_ssim(ambiguous_x, ambiguous_y)
    nhwc = ms_ssim(ambiguous_x, ambiguous_y, input_layout="NHWC", win_size=3)
    nchw = ms_ssim(ambiguous_x.transpose(0, 3, 1, 2), ambiguous_y.transpose(0, 3, 1, 2),
                   input_layout="NCHW", win_size=3)
    np.testing.assert_allclose(nhwc, nchw, rtol=0, atol=1e-12)
    # read the other way round, the same arrays are different images
    other = ms_ssim(ambiguous_x, ambiguous_y, input_layout="NCHW", win_size=3)
    assert not np.allclose(other, nhwc)
    with pytest.raises(ValueError, match="channel axis"):
        ms_ssim(np.zeros((1, 32, 32, 2)), np.zeros((1, 32, 32, 2)))  # 2 channels
    with pytest.raises(ValueError, match="'input_layout' parameter"):
        ms_ssim(x, y, input_layout="NCL")
    with pytest.raises(ValueError, match="needs a 4-D"):
        ms_ssim(x[..., 0], y[..., 0], input_layout="NHWC")


def test_ms_ssim_clamps_anticorrelated_terms_to_zero():
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3))
    np.testing.assert_array_equal(ms_ssim(x, 1 - x), 0.0)


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [((2, 32, 32), (2, 32, 31), {}, "same shape"),
     ((1, 2, 2), (1, 2, 2), {}, "too small"),
     ((1, 32, 32), (1, 32, 32), dict(scales=3, win_size=11), "too small"),
     ((1, 32, 32), (1, 32, 32), dict(win_size=8), "odd"),
     ((1, 32, 32), (1, 32, 32), dict(scales=6), "'scales' parameter"),
     ((1, 32, 32), (1, 32, 32), dict(win_size=1), "'win_size' parameter"),
     ((1, 32, 32), (1, 32, 32), dict(data_range=0), "'data_range' parameter"),
     ((1, 1, 32, 32, 3), (1, 1, 32, 32, 3), {}, "batch of images")],
)
def test_ms_ssim_rejects_bad_input(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ms_ssim(np.zeros(a), np.zeros(b), **kwargs)


def test_ms_ssim_rejects_nan():
    x = np.zeros((1, 32, 32))
    x[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ms_ssim(x, np.zeros_like(x))


# --------------------------------------------------------------------------
# Reconstruction MS-SSIM
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smooth16():
    return smooth_images(300, 16, 16, seed=1)


def test_reconstruction_ms_ssim_tracks_information_in_codes(smooth16):
    images = smooth16
    informative = images.reshape(len(images), -1)  # the codes contain the image
    noise = np.random.default_rng(2).normal(size=(len(images), 32))
    kw = dict(epochs=15, random_state=0)
    high = reconstruction_ms_ssim(informative[:240], images[:240], informative[240:],
                                  images[240:], **kw)
    low = reconstruction_ms_ssim(noise[:240], images[:240], noise[240:], images[240:], **kw)
    # observed: about 0.9 and 0.1
    assert high > 0.8
    assert low < 0.3


def test_reconstruction_ms_ssim_is_seeded_and_accepts_uint8(smooth16):
    u8 = np.round(smooth16[:100] * 255).astype(np.uint8)[..., None]  # (n, H, W, 1)
    codes = np.random.default_rng(0).normal(size=(100, 8))
    args = (codes[:80], u8[:80], codes[80:], u8[80:])
    with global_rng_untouched():
        a = reconstruction_ms_ssim(*args, epochs=2, random_state=1)
    assert reconstruction_ms_ssim(*args, epochs=2, random_state=1) == a
    b = reconstruction_ms_ssim(codes[:80], u8[:80] / 255.0, codes[80:], u8[80:] / 255.0,
                               epochs=2, random_state=1)
    # torch and NumPy may round x / 255 differently in the last bit
    assert b == pytest.approx(a, abs=1e-9)


def test_reconstruction_ms_ssim_errors(smooth16):
    codes = smooth16.reshape(len(smooth16), -1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reconstruction_ms_ssim(codes, 2 * smooth16, codes, smooth16, epochs=1)
    with pytest.raises(ValueError, match="components"):
        reconstruction_ms_ssim(codes, smooth16, codes[:, :5], smooth16, epochs=1)
    with pytest.raises(ValueError, match="too small"):
        reconstruction_ms_ssim(codes, smooth16, codes, smooth16, win_size=11, scales=2,
                               epochs=1)
    with pytest.raises(ValueError, match="'epochs' parameter"):
        reconstruction_ms_ssim(codes, smooth16, codes, smooth16, epochs=0)
    ambiguous = np.repeat(smooth16[:20, :3, :, None], 3, axis=-1)  # (20, 3, 16, 3)
    with pytest.raises(ValueError, match="images_train.*input_layout"):
        reconstruction_ms_ssim(codes[:20], ambiguous, codes[:20], ambiguous, epochs=1)
    score = reconstruction_ms_ssim(codes[:20], ambiguous, codes[:20], ambiguous, epochs=1,
                                   input_layout="NCHW", win_size=3, random_state=0)
    assert 0.0 <= score <= 1.0


# --------------------------------------------------------------------------
# Nearest neighbours
# --------------------------------------------------------------------------


def test_nearest_neighbors_uses_l1_not_l2():
    # From the origin: A = (3, 0) is at L1 3 / L2 3, B = (2, 2) at L1 4 / L2 2.83.
    reference = np.array([[10.0, 10.0], [2.0, 2.0], [3.0, 0.0]])
    dist, ind = nearest_neighbors([[0.0, 0.0]], reference, n_neighbors=2)
    np.testing.assert_array_equal(ind, [[2, 1]])
    np.testing.assert_allclose(dist, [[3.0, 4.0]])
    l2 = NearestNeighbors(n_neighbors=2).fit(reference).kneighbors([[0.0, 0.0]])[1]
    np.testing.assert_array_equal(l2, [[1, 2]])  # the case does tell the metrics apart


def test_nearest_neighbors_finds_self_first_and_validates():
    codes = np.random.default_rng(0).uniform(size=(30, 6))
    dist, ind = nearest_neighbors(codes[:5], codes, n_neighbors=4)
    np.testing.assert_array_equal(ind[:, 0], np.arange(5))
    assert dist.shape == (5, 4) and np.all(np.diff(dist, axis=1) >= 0)
    with pytest.raises(ValueError, match="n_neighbors"):
        nearest_neighbors(codes, codes[:3], n_neighbors=4)
    with pytest.raises(ValueError, match="components"):
        nearest_neighbors(codes[:, :2], codes)


@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


@pytest.mark.parametrize("layout", ["nhwc_uint8", "nchw_float", "gray"])
def test_plot_nearest_neighbors_grid(agg, layout):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    expected_first = images[0] / 255.0
    if layout == "nchw_float":
        images = images.transpose(0, 3, 1, 2) / 255.0
    elif layout == "gray":
        images = images[..., 0] / 255.0
        expected_first = expected_first[..., 0]
    _, ind = nearest_neighbors(rng.normal(size=(3, 4)), rng.normal(size=(20, 4)), 4)
    fig = plot_nearest_neighbors(images[:3], images, ind)
    assert len(fig.axes) == 3 * 5
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array()), expected_first)
    shown = np.asarray(fig.axes[1].images[0].get_array())  # first neighbour of query 0
    assert shown.shape == expected_first.shape
    own = agg.figure()
    assert plot_nearest_neighbors(images[:3], images, ind, fig=own) is own


def test_plot_nearest_neighbors_validates(agg):
    images = np.zeros((5, 8, 8))
    with pytest.raises(ValueError, match="indices must lie"):
        plot_nearest_neighbors(images[:1], images, [[5]])
    with pytest.raises(ValueError, match="rows"):
        plot_nearest_neighbors(images[:2], images, [[1]])
    ambiguous = np.zeros((5, 3, 8, 3))
    with pytest.raises(ValueError, match="images_query.*input_layout"):
        plot_nearest_neighbors(ambiguous[:1], ambiguous, [[0]])
    fig = plot_nearest_neighbors(ambiguous[:1], ambiguous, [[0]], input_layout="NCHW")
    assert np.asarray(fig.axes[0].images[0].get_array()).shape == (8, 3, 3)


def test_plot_nearest_neighbors_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install skdim\[plot\]"):
        plot_nearest_neighbors(np.zeros((1, 8, 8)), np.zeros((2, 8, 8)), [[0]])


# --------------------------------------------------------------------------
# The real estimator honours the interface the tools rely on
# --------------------------------------------------------------------------


def test_tools_run_on_a_fitted_deep_infomax(digits):
    from skdim import DeepInfoMax

    X_tr, y_tr, X_te, y_te = digits
    images = (np.concatenate([X_tr, X_te]) / 16.0).reshape(-1, 8, 8).astype(np.float32)
    tr, te = images[:150], images[600:700]
    dim = DeepInfoMax(n_components=8, max_epochs=1, critic_units=64, random_state=0).fit(tr)
    table = probe_table({"dim": dim}, tr, y_tr[:150], te, y_te[:100], random_state=0)
    assert set(table["dim"]) == {"conv", "fc", "y"}
    assert all(0.3 < v <= 1.0 for v in table["dim"].values())  # chance is 0.1
    for layer in ("conv", "fc", "y"):
        clf = finetune(dim, tr, y_tr[:150], layer=layer, epochs=1, random_state=0)
        assert clf.head_.in_features == dim.extract_features(te[:2], layer).shape[1]
        assert clf.predict(te).shape == (100,)
