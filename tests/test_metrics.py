"""Tests for skdim.metrics: MINE and NDM against closed forms.

Accuracy cases use correlated Gaussians, whose mutual information and total
correlation are known exactly:

* MI: pairs ``(X_k, Z_k)`` with correlation ``rho``, independent across k:
  ``I = -d/2 log(1 - rho^2)``.
* TC: for a correlation matrix ``R``, ``TC = -1/2 log det R``.

The bands are those of the issue (calibrated over several seeds; the values
reached with the fixed seeds here are within about half of each band, see
the comments). Every estimate runs the default number of steps on 10,000
rows, a few seconds on two cores.
"""

from __future__ import annotations

import math
import warnings
import sys

import numpy as np
import pytest
import torch

from skdim.metrics import mine_mutual_information, neural_dependency_measure
from skdim.nn.ndm import shuffle_columns

MI_LEVELS = (0.0, 1.0, 2.0, 3.0)
TC_LEVELS = (0.0, 0.5, 1.0, 2.0)


def correlated_pairs(n: int, d: int, mi: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """X, Z in R^d with I(X; Z) = mi nats, split evenly over d independent pairs."""
    rng = np.random.default_rng(seed)
    rho = math.sqrt(-math.expm1(-2.0 * mi / d))
    x = rng.standard_normal((n, d))
    z = rho * x + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, d))
    return x, z


def correlated_factors(n: int, d: int, tc: float, seed: int) -> np.ndarray:
    """d Gaussian factors in d/2 correlated pairs with total correlation tc nats."""
    rng = np.random.default_rng(seed)
    pairs = d // 2
    rho = math.sqrt(-math.expm1(-2.0 * tc / pairs))
    a = rng.standard_normal((n, pairs))
    b = rho * a + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, pairs))
    z = np.empty((n, d))
    z[:, 0::2], z[:, 1::2] = a, b
    return z


def gaussian_tc(z: np.ndarray) -> float:
    return -0.5 * float(np.linalg.slogdet(np.corrcoef(z, rowvar=False))[1])


def rescale(a: np.ndarray, seed: int) -> np.ndarray:
    """Per-column scales from 1e-2 to 1e3 and offsets of about +-100."""
    rng = np.random.default_rng(seed)
    scales = 10.0 ** np.linspace(-2, 3, a.shape[1])
    offsets = rng.uniform(-120, 120, a.shape[1])
    return a * rng.permutation(scales) + offsets


# ---------------------------------------------------------------------------
# MINE accuracy (d=5, n=10,000, default settings, one fixed seed)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mine_estimates():
    out = {}
    for mi in MI_LEVELS:
        x, z = correlated_pairs(10_000, 5, mi, seed=11)
        out[mi] = mine_mutual_information(x, z, random_state=0)
    return out


def test_mine_independent_is_zero(mine_estimates):
    # Band from the issue; measured -0.002.
    assert abs(mine_estimates[0.0]) <= 0.05


@pytest.mark.parametrize("mi", [1.0, 2.0, 3.0])
def test_mine_within_band(mine_estimates, mi):
    # 0.8 I - 0.05 <= est <= I + 0.15 (issue); measured 0.93 / 1.90 / 2.82.
    est = mine_estimates[mi]
    assert 0.8 * mi - 0.05 <= est <= mi + 0.15, (mi, est)


def test_mine_strictly_increasing(mine_estimates):
    values = [mine_estimates[mi] for mi in MI_LEVELS]
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_mine_rescaling_invariant(mine_estimates):
    x, z = correlated_pairs(10_000, 5, 2.0, seed=11)
    est = mine_mutual_information(rescale(x, 1), rescale(z, 2), random_state=0)
    # Issue: at most 0.15. Standardising inside in float64 makes the two runs
    # nearly identical; without it, columns at 1e3 dominate and training fails.
    assert abs(est - mine_estimates[2.0]) <= 0.15


def test_mine_high_mi_is_finite():
    # No estimator is reliable near 6 nats from 3,000 held-out rows; assert
    # only a finite value that does not exceed the truth by more than noise.
    x, z = correlated_pairs(10_000, 5, 6.0, seed=3)
    est = mine_mutual_information(x, z, n_steps=100, random_state=0)
    assert np.isfinite(est)
    assert est < 6.0 + 0.15


@pytest.mark.parametrize("bound", ["jsd", "infonce"])
def test_mine_other_bounds(bound):
    # A smaller, shorter run (4,000 rows, 300 steps): measured 1.02 (jsd) and
    # 1.07 (infonce) at a true 1 nat; the band is the issue's.
    x, z = correlated_pairs(4_000, 5, 1.0, seed=5)
    est = mine_mutual_information(x, z, bound=bound, n_steps=300, random_state=0)
    assert 0.75 <= est <= 1.15


def test_infonce_capped_by_log_held_out_rows():
    # 10 nats of true MI but only 60 held-out rows: infoNCE scores each row
    # against 60 candidates and can never exceed log(60).
    x, z = correlated_pairs(200, 5, 10.0, seed=0)
    with pytest.warns(UserWarning, match="batch_size"):
        est = mine_mutual_information(x, z, bound="infonce", n_steps=100, random_state=0)
    assert est <= math.log(60) + 1e-9
    assert est > 0.5 * math.log(60)


# ---------------------------------------------------------------------------
# MINE on images
# ---------------------------------------------------------------------------


def quadrant_images(n: int, mi: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """White-noise 8x8 images; Z_k is correlated with the mean of quadrant k.

    The quadrant means, scaled to unit variance, are standard normal, so the
    MI is that of 4 correlated pairs.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8))
    quads = x.reshape(n, 2, 4, 2, 4).mean(axis=(2, 4)).reshape(n, 4) * 4.0
    rho = math.sqrt(-math.expm1(-2.0 * mi / 4))
    z = rho * quads + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, 4))
    return x, z


def test_mine_images_accuracy():
    x, z = quadrant_images(4_000, 1.0, seed=0)
    est = mine_mutual_information(x, z, n_steps=300, random_state=0)
    # The signal is spread thinly over 16 pixels per quadrant, with 2,520
    # training rows; measured 0.85 at a true 1 nat. Band of the issue.
    assert 0.75 <= est <= 1.15


def test_mine_image_layouts_agree():
    # The same images in every layout become the same tensors, so the value
    # is the same (to float rounding of the channel statistics).
    x, z = quadrant_images(600, 1.0, seed=0)
    kw = dict(n_steps=20, batch_size=64, random_state=0)
    est = mine_mutual_information(x, z, **kw)
    assert mine_mutual_information(x[..., None], z, **kw) == pytest.approx(est, abs=1e-5)
    assert mine_mutual_information(x[:, None], z, **kw) == pytest.approx(est, abs=1e-5)
    flat = x.reshape(len(x), -1)
    assert mine_mutual_information(flat, z, image_shape=(8, 8), **kw) == pytest.approx(est, abs=1e-5)
    # Without image_shape the flat rows are vectors: an MLP, another value.
    assert mine_mutual_information(flat, z, **kw) != pytest.approx(est, abs=1e-5)


def test_mine_uint8_images():
    x, z = quadrant_images(1_000, 1.0, seed=1)
    x8 = np.clip(x * 40 + 128, 0, 255).astype(np.uint8)
    est = mine_mutual_information(x8[..., None], z, n_steps=50, random_state=0)
    assert np.isfinite(est)


# ---------------------------------------------------------------------------
# NDM accuracy (d=8, n=10,000, default settings)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ndm_estimates():
    out = {}
    for tc in TC_LEVELS:
        z = correlated_factors(10_000, 8, tc, seed=21)
        out[tc] = neural_dependency_measure(z, random_state=0)
    return out


def test_ndm_data_has_stated_tc():
    # The generator itself: the sample TC matches the target within sampling error.
    z = correlated_factors(10_000, 8, 1.0, seed=21)
    assert gaussian_tc(z) == pytest.approx(1.0, abs=0.05)


def test_ndm_independent_gaussian(ndm_estimates):
    # Issue band 0.03; measured -0.001.
    assert abs(ndm_estimates[0.0]) <= 0.03


def test_ndm_independent_uniform():
    z = np.random.default_rng(4).uniform(size=(10_000, 8))
    assert abs(neural_dependency_measure(z, random_state=0)) <= 0.03


@pytest.mark.parametrize("tc", [0.5, 1.0, 2.0])
def test_ndm_within_band(ndm_estimates, tc):
    # 0.8 TC - 0.05 <= est <= TC + 0.15; measured 0.47 / 0.93 / 1.93.
    est = ndm_estimates[tc]
    assert 0.8 * tc - 0.05 <= est <= tc + 0.15, (tc, est)


def test_ndm_strictly_increasing(ndm_estimates):
    values = [ndm_estimates[tc] for tc in TC_LEVELS]
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_ndm_rescaling_invariant(ndm_estimates):
    z = correlated_factors(10_000, 8, 1.0, seed=21)
    est = neural_dependency_measure(rescale(z, 3), random_state=0)
    assert abs(est - ndm_estimates[1.0]) <= 0.15


@pytest.mark.parametrize("kw", [{"sigmoid": True}, {"bound": "jsd"}])
def test_ndm_options_within_band(kw):
    # sigmoid is monotone per column, so the true TC is unchanged; the JSD
    # discriminator's logit also converges to the log density ratio.
    z = correlated_factors(6_000, 8, 1.0, seed=8)
    est = neural_dependency_measure(z, n_steps=200, random_state=0, **kw)
    assert 0.75 <= est <= 1.15


def test_ndm_single_column_is_zero():
    z = np.random.default_rng(0).normal(size=(100, 1))
    assert neural_dependency_measure(z, batch_size=32, random_state=0) == 0.0


# ---------------------------------------------------------------------------
# The per-column shuffle
# ---------------------------------------------------------------------------


def test_shuffle_breaks_correlation_and_keeps_columns():
    z = torch.from_numpy(correlated_factors(10_000, 8, 2.0, seed=0))
    out = shuffle_columns(z, torch.Generator().manual_seed(0))
    # Each column holds exactly its own values.
    assert torch.equal(out.sort(dim=0).values, z.sort(dim=0).values)
    # Correlations of 0.76 between paired factors drop to sampling noise,
    # sd 1/sqrt(n) = 0.01; the bound 0.05 is five sd.
    before = np.corrcoef(z.numpy(), rowvar=False)
    after = np.corrcoef(out.numpy(), rowvar=False)
    off = ~np.eye(8, dtype=bool)
    assert np.abs(before[off]).max() > 0.7
    assert np.abs(after[off]).max() <= 0.05


def test_shuffle_never_moves_whole_rows():
    # With 2 rows, independent permutations would coincide (moving whole rows
    # and keeping the joint) half of the time; the shuffle must never do it.
    z = torch.tensor([[0.0, 10.0, 20.0], [1.0, 11.0, 21.0]])
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        out = shuffle_columns(z, g)
        rows = {tuple(r) for r in out.tolist()}
        assert rows != {tuple(r) for r in z.tolist()}
    # Larger batches: no row of the shuffle is an original row far more often
    # than chance (~1/n^2 per row for 3 columns).
    z = torch.arange(300.0).reshape(100, 3)
    out = shuffle_columns(z, g)
    same = (out == z[(out[:, :1] // 3).long().squeeze(1)]).all(dim=1).sum()
    assert int(same) <= 2


def test_shuffle_is_seeded():
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    a = shuffle_columns(z, torch.Generator().manual_seed(5))
    b = shuffle_columns(z, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# Seeding, bad input, documented edge cases
# ---------------------------------------------------------------------------


def test_seeded_and_leaves_global_rng_alone():
    x, z = correlated_pairs(600, 2, 1.0, seed=0)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = mine_mutual_information(x, z, n_steps=20, batch_size=64, random_state=3)
    b = mine_mutual_information(x, z, n_steps=20, batch_size=64, random_state=3)
    c = neural_dependency_measure(z, n_steps=20, batch_size=64, random_state=3)
    d = neural_dependency_measure(z, n_steps=20, batch_size=64, random_state=3)
    assert a == b and c == d
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_different_row_counts():
    with pytest.raises(ValueError, match="same number of rows"):
        mine_mutual_information(np.zeros((10, 2)), np.zeros((9, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input(bad):
    x = np.random.default_rng(0).normal(size=(50, 2))
    x_bad = x.copy()
    x_bad[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        mine_mutual_information(x_bad, x)
    with pytest.raises(ValueError, match="NaN|infinity"):
        mine_mutual_information(x, x_bad)
    with pytest.raises(ValueError, match="NaN|infinity"):
        neural_dependency_measure(x_bad)


def test_too_few_rows():
    x = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match="at least 2 training rows and 2 held-out rows"):
        mine_mutual_information(x, x)
    with pytest.raises(ValueError, match="at least 2 training rows and 2 held-out rows"):
        neural_dependency_measure(x)


def test_batch_larger_than_training_rows_is_clipped():
    x, z = correlated_pairs(60, 2, 1.0, seed=0)
    with pytest.warns(UserWarning, match="batch_size=256 is larger"):
        est = mine_mutual_information(x, z, n_steps=20, random_state=0)
    assert np.isfinite(est)
    with pytest.warns(UserWarning, match="batch_size=256 is larger"):
        est = neural_dependency_measure(z, n_steps=20, random_state=0)
    assert np.isfinite(est)


def test_constant_column_contributes_nothing():
    x, z = correlated_pairs(3_000, 3, 1.0, seed=2)
    z_const = np.hstack([z, np.full((len(z), 1), 7.0)])
    kw = dict(n_steps=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # documented behaviour, not a warning
        with_const = mine_mutual_information(x, z_const, **kw)
        ndm_const = neural_dependency_measure(z_const, **kw)
    # The constant column becomes zeros; only the random initialisation
    # differs. 0.1 is about three seed-to-seed standard deviations here.
    assert with_const == pytest.approx(mine_mutual_information(x, z, **kw), abs=0.1)
    assert np.isfinite(ndm_const) and abs(ndm_const) <= 0.05


def test_all_constant_codes_give_zero_not_nan():
    x = np.random.default_rng(0).normal(size=(500, 3))
    z = np.ones((500, 2))
    est = mine_mutual_information(x, z, n_steps=20, random_state=0)
    assert np.isfinite(est) and abs(est) <= 0.05
    assert abs(neural_dependency_measure(z, n_steps=20, random_state=0)) <= 0.05


# scikit-learn's declarative validation: "The 'name' parameter of <function>
# must be <constraint>. Got <value> instead." (InvalidParameterError is a
# ValueError). \w+ is the function's name: the same cases run for both.
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"bound": "nce"}, r"'bound' parameter of \w+ must be a str among \{.*\}\. Got 'nce'"),
        ({"n_steps": 0}, r"'n_steps' parameter of \w+ must be an int in the range \[1, inf\)"),
        ({"batch_size": 1}, r"'batch_size' parameter of \w+ must be an int in the range \[2, inf\)"),
        ({"learning_rate": -1.0},
         r"'learning_rate' parameter of \w+ must be a float in the range \(0\.0, inf\)"),
        ({"held_out_fraction": 1.0},
         r"'held_out_fraction' parameter of \w+ must be a float in the range \(0\.0, 1\.0\)"),
        ({"validation_fraction": -0.1},
         r"'validation_fraction' parameter of \w+ must be a float in the range \[0\.0, 1\.0\)"),
        ({"hidden_layer_sizes": (64, 0)},
         r"'hidden_layer_sizes' parameter of \w+ must be an int >= 1 or a tuple of ints >= 1"),
        ({"ema_rate": 0.0}, r"'ema_rate' parameter of \w+ must be a float in the range \(0\.0, 1\.0\]"),
        ({"patience": 0}, r"'patience' parameter of \w+ must be an int in the range \[1, inf\) or None"),
        ({"return_std": "yes"}, r"'return_std' parameter of \w+ must be an instance of 'bool'"),
    ],
)
def test_bad_parameters(kw, match):
    x = np.zeros((20, 2))
    with pytest.raises(ValueError, match=match):
        mine_mutual_information(x, x, **kw)
    if "bound" not in kw:
        with pytest.raises(ValueError, match=match):
            neural_dependency_measure(x, **kw)


def test_ndm_rejects_infonce():
    with pytest.raises(
        ValueError,
        match=r"'bound' parameter of neural_dependency_measure must be a str among \{.*\}\. "
        r"Got 'infonce' instead",
    ):
        neural_dependency_measure(np.zeros((20, 2)), bound="infonce")


def test_divergence_raises_instead_of_nan():
    # An absurd learning rate makes the objective overflow within a few
    # steps: an error that says what to do, never a NaN estimate.
    x, z = correlated_pairs(400, 2, 3.0, seed=0)
    with pytest.raises(FloatingPointError, match="diverged.*learning_rate"):
        mine_mutual_information(x, z, learning_rate=1e12, n_steps=30, batch_size=64, random_state=0)
    with pytest.raises(FloatingPointError, match="diverged.*learning_rate"):
        neural_dependency_measure(z, learning_rate=1e12, n_steps=30, batch_size=64, random_state=0)


# ---------------------------------------------------------------------------
# Slow: the prior lowers the dependence of DeepInfoMax codes (paper, A.5)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_prior_lowers_ndm_of_deepinfomax_codes():
    """Codes trained with the prior (gamma=1) are less dependent than without.

    All 1,797 digits, 16 codes, 15 epochs, three seeds (a few minutes on two
    cores). NDM is measured on sigmoid(Y), the space where the uniform prior
    is matched; the true total correlation is the same as that of Y (it is
    invariant to monotone maps of each column), and the sigmoid version
    varied 3x less across estimator seeds on these codes. Measured gaps
    NDM(gamma=0) - NDM(gamma=1) for seeds 0, 1, 2: 0.97, 0.70, 0.25 nats
    (mean 0.64) with two threads, 0.50, 1.19, 0.81 (mean 0.83) with one
    (thread count changes float rounding, hence training). The stated
    margin is a mean gap of at least 0.3 nats, each seed's gap above 0.
    """
    from sklearn.datasets import load_digits

    from skdim import DeepInfoMax

    X = load_digits().images
    gaps = []
    for seed in range(3):
        ndm = {}
        for gamma in (0.0, 1.0):
            dim = DeepInfoMax(
                n_components=16, gamma=gamma, max_epochs=15, batch_size=64,
                critic_units=64, device="cpu", random_state=seed,
            )
            codes = dim.fit_transform(X)
            ndm[gamma] = neural_dependency_measure(codes, sigmoid=True, random_state=seed)
        gaps.append(ndm[0.0] - ndm[1.0])
        assert ndm[1.0] < ndm[0.0], (seed, ndm)
    assert np.mean(gaps) >= 0.3, gaps


# ---------------------------------------------------------------------------
# Memory and scale (reliability)
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_mine_memory_is_linear_in_the_rows():
    """1e5 rows x 2 columns under a 1.5 GiB address-space cap: the held-out
    bound must not hold an n x n score matrix (it took 8.8 GB)."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import resource, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        from skdim.metrics import mine_mutual_information
        rng = np.random.default_rng(0)
        x = rng.normal(size=(100_000, 1))
        z = x + rng.normal(size=(100_000, 1))
        mi = mine_mutual_information(x, z, n_steps=50, device="cpu", random_state=0)
        # VmHWM: this process's own peak (ru_maxrss can carry pytest's across fork + exec).
        with open("/proc/self/status") as f:
            peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 2**20
        print(mi, peak)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    mi, peak_gib = map(float, out.stdout.split())
    assert peak_gib < 1.5, peak_gib
    assert 0.1 < mi < 0.5  # true value 0.5 log 2 = 0.35


@pytest.mark.parametrize("scale", [1e-13, 1e-9, 1e9])
def test_mine_and_ndm_are_invariant_to_column_scale(scale):
    x, z = correlated_pairs(2000, 2, 1.0, seed=3)
    kw = dict(n_steps=100, device="cpu", random_state=0)
    z_scaled = z.copy()
    z_scaled[:, 0] = z_scaled[:, 0] * scale + 7 * scale
    reference = mine_mutual_information(x, z, **kw)
    assert reference > 0.5
    assert mine_mutual_information(x, z_scaled, **kw) == pytest.approx(reference, abs=1e-3)
    factors = correlated_factors(2000, 4, 1.0, seed=4)
    scaled = factors.copy()
    scaled[:, 1] *= scale
    ndm = neural_dependency_measure(factors, **kw)
    assert ndm > 0.5
    assert neural_dependency_measure(scaled, **kw) == pytest.approx(ndm, abs=1e-3)


def test_mine_standard_error_is_available():
    x, z = correlated_pairs(3000, 2, 1.0, seed=5)
    mi, se = mine_mutual_information(x, z, n_steps=200, device="cpu", random_state=0,
                                     return_std=True)
    assert 0.0 < se < 0.2
    assert mi == mine_mutual_information(x, z, n_steps=200, device="cpu", random_state=0)
    ndm, ndm_se = neural_dependency_measure(correlated_factors(3000, 4, 1.0, seed=6), n_steps=100,
                                            device="cpu", random_state=0, return_std=True)
    assert 0.0 < ndm_se < 0.2 and ndm > 0.5


# ---------------------------------------------------------------------------
# skdim.nn.mine / skdim.nn.ndm: the O(n) held-out bound, standard errors,
# early stopping, and the boundary of the PyTorch core
# ---------------------------------------------------------------------------


def _random_net(seed: int = 0, d: int = 2):
    from skdim.nn.mine import StatisticsNetwork, make_branch
    from skdim.nn.seeding import build_seeded

    return build_seeded(
        seed, lambda: StatisticsNetwork(make_branch(d, (16,), 8), make_branch(d, (16,), 8))
    ).eval()


def _all_pairs_bound(net, x, z, bound):
    """The bound over every held-out pair, from the full n x n score matrix."""
    from skdim.nn.bounds import dv_mi, infonce_mi, split_pair_scores

    with torch.no_grad():
        pos, neg = split_pair_scores(net(x, z).double())
    return float(infonce_mi(pos, neg) if bound == "infonce" else dv_mi(pos, neg))


@pytest.mark.parametrize("bound", ["dv", "jsd", "infonce"])
def test_held_out_bound_is_all_pairs_within_one_block(bound):
    from skdim.nn.mine import held_out_bound

    net = _random_net()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 2, generator=g)
    z = x + torch.randn(300, 2, generator=g)
    expected = _all_pairs_bound(net, x, z, bound)
    for seed in (0, 1):  # one block: the partition seed plays no role
        assert held_out_bound(net, x, z, bound, block=300, seed=seed) == pytest.approx(
            expected, abs=1e-9
        )


@pytest.mark.parametrize("bound", ["dv", "infonce"])
def test_held_out_bound_in_blocks_is_close_to_all_pairs(bound):
    # 2,000 rows in blocks of 250: negatives within blocks only. The
    # partition changes the value far less than the standard error.
    from skdim.nn.mine import held_out_bound

    net = _random_net(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 2, generator=g)
    z = 2 * x + torch.randn(2000, 2, generator=g)
    full = _all_pairs_bound(net, x, z, bound)
    values = [held_out_bound(net, x, z, bound, block=250, seed=s, return_std=True) for s in range(3)]
    se = values[0][1]
    assert all(abs(v - full) < 0.25 * se for v, _ in values), (full, values)
    if bound == "infonce":  # each row competes in a block of 250
        assert all(v <= math.log(250) for v, _ in values)
    # Seeded: the same partition, the same value.
    assert held_out_bound(net, x, z, bound, block=250, seed=0) == values[0][0]


@pytest.mark.parametrize("bound", ["dv", "infonce"])
def test_held_out_standard_error_matches_the_spread_over_samples(bound):
    # A fixed (untrained, random) critic; 150 independent held-out sets of
    # 400 rows. The standard error of one set predicts the spread of the
    # estimates over sets (within 25%: the spread itself is estimated from
    # 150 values, about 6% relative error).
    from skdim.nn.mine import held_out_bound

    net = _random_net(2)
    g = torch.Generator().manual_seed(2)
    values, errors = [], []
    for _ in range(150):
        x = torch.randn(400, 2, generator=g)
        z = 0.8 * x + 0.6 * torch.randn(400, 2, generator=g)
        v, se = held_out_bound(net, x, z, bound, return_std=True)
        values.append(v)
        errors.append(se)
    spread = float(np.std(values, ddof=1))
    assert np.mean(errors) == pytest.approx(spread, rel=0.25), (np.mean(errors), spread)


def test_held_out_kl_standard_error_matches_the_spread_over_samples():
    from skdim.nn.ndm import NDMDiscriminator, held_out_kl
    from skdim.nn.seeding import build_seeded

    disc = build_seeded(0, lambda: NDMDiscriminator(4, (16,))).eval()
    g = torch.Generator().manual_seed(3)
    values, errors = [], []
    for _ in range(150):
        a = torch.randn(400, 2, generator=g)
        z = torch.cat([a, a + torch.randn(400, 2, generator=g)], dim=1)
        v, se = held_out_kl(disc, z, 5, g, return_std=True)
        values.append(v)
        errors.append(se)
    spread = float(np.std(values, ddof=1))
    assert np.mean(errors) == pytest.approx(spread, rel=0.25), (np.mean(errors), spread)


def test_early_stopping_stops_and_keeps_the_best_weights():
    from skdim.nn.mine import EarlyStopping

    net = torch.nn.Linear(1, 1)
    curve = [0.1, 0.5, 0.4, 0.45, 0.3, 0.2, 0.9]
    weights = []

    def validate():
        weights.append(net.weight.detach().clone())
        return curve[len(weights) - 1]

    stop = EarlyStopping(net, validate, n_steps=7, n_checks=7, patience=3)
    stopped_at = None
    for step in range(7):
        with torch.no_grad():
            net.weight.fill_(float(step))
        if stop.update(step):
            stopped_at = step
            break
    # Three checks without beating 0.5 (0.4, 0.45, 0.3): stop after step 4;
    # the late 0.9 is never reached.
    assert stopped_at == 4 and stop.best == 0.5 and stop.best_step == 2
    stop.restore()
    assert torch.equal(net.weight, weights[1])
    # patience=None never stops, but still keeps the best weights.
    never = EarlyStopping(net, iter(curve).__next__, n_steps=7, n_checks=7, patience=None)
    assert not any(never.update(step) for step in range(7)) and never.best == 0.9


def test_mine_stops_early_on_an_overfitting_critic(capsys):
    # 300 rows and 2,000 planned steps: the validation estimate peaks long
    # before, training stops, and the last line says how many steps ran.
    x, z = correlated_pairs(300, 2, 1.0, seed=0)
    value = mine_mutual_information(x, z, n_steps=2000, batch_size=64, random_state=0, verbose=1)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    steps_run = int(last.split(" after ")[1].split("/")[0])
    assert steps_run < 1000, last
    assert f"returned: {value:.4f}" in last


def test_auto_bound_is_infonce_on_small_and_dv_on_large_held_out_sets():
    from skdim.metrics import AUTO_DV_MIN_ROWS

    kw = dict(n_steps=5, batch_size=64, random_state=0)
    x, z = correlated_pairs(600, 2, 1.0, seed=0)  # 180 held-out rows
    with pytest.warns(UserWarning, match="180 held-out rows"):
        dv_small = mine_mutual_information(x, z, bound="dv", **kw)
    assert mine_mutual_information(x, z, **kw) == mine_mutual_information(x, z, bound="infonce", **kw)
    assert dv_small != mine_mutual_information(x, z, **kw)
    n = int(AUTO_DV_MIN_ROWS / 0.3) + 10
    x, z = correlated_pairs(n, 2, 1.0, seed=0)
    assert mine_mutual_information(x, z, **kw) == mine_mutual_information(x, z, bound="dv", **kw)


def test_validation_set_sizes():
    # 300 rows: 210 training rows, of which 10% would be 21 validation rows,
    # too few to see over-fitting; a third of them (70) are used.
    from skdim.metrics import _split

    fit, val, held_out, _ = _split(300, 0.3, 0.1, 32, seed=0, who="test")
    assert (len(fit), len(val), len(held_out)) == (140, 70, 90)
    assert len(set(fit) | set(val) | set(held_out)) == 300
    # Large sets keep the requested fraction.
    fit, val, held_out, _ = _split(10_000, 0.3, 0.1, 32, seed=0, who="test")
    assert (len(fit), len(val), len(held_out)) == (6300, 700, 3000)
    # Very large sets: at most 2,048 validation rows (each check scores
    # every validation row against a block of 1,024); the rest train.
    fit, val, held_out, _ = _split(100_000, 0.3, 0.1, 32, seed=0, who="test")
    assert (len(fit), len(val), len(held_out)) == (70_000 - 2048, 2048, 30_000)


def test_ndm_standard_error_and_single_column():
    z = np.random.default_rng(0).normal(size=(100, 1))
    assert neural_dependency_measure(z, batch_size=32, random_state=0, return_std=True) == (0.0, 0.0)


def test_nn_core_imports_neither_sklearn_nor_the_shell():
    """skdim.nn.mine and skdim.nn.ndm import only torch, numpy, the standard
    library and other modules of skdim.nn."""
    import ast
    from pathlib import Path

    import skdim.nn

    allowed_roots = {"torch", "numpy", "math", "sys", "typing", "__future__"}
    for name in ("mine.py", "ndm.py"):
        tree = ast.parse((Path(skdim.nn.__file__).parent / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
                assert roots <= allowed_roots, (name, roots)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert node.module.split(".")[0] in allowed_roots, (name, node.module)
                else:  # relative: only within skdim.nn
                    assert node.level == 1, (name, node.module)


def test_infinite_learning_rate_is_an_invalid_parameter():
    x = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(ValueError, match="'learning_rate' parameter of mine_mutual_information"):
        mine_mutual_information(x, x, learning_rate=np.inf)
    with pytest.raises(ValueError, match="'learning_rate' parameter of neural_dependency_measure"):
        neural_dependency_measure(x, learning_rate=np.inf)
