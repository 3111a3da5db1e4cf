"""Tests for skdim.nn.bounds: the JSD, DV and infoNCE MI lower bounds.

The bounds are checked against closed forms (separable, constant and shuffled
scores, the exact log density ratio of correlated Gaussians), against naive or
brute-force re-computations on small inputs, and for stability at extreme
scores. Tolerances are stated next to each assertion with their reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from skdim.nn.bounds import (
    MI_ESTIMATORS,
    MineMovingAverage,
    dv_mi,
    infonce_mi,
    jsd_mi,
    mi_lower_bound,
    split_pair_scores,
    subsample_negatives,
)

BOUNDS = {"jsd": jsd_mi, "dv": dv_mi, "infonce": infonce_mi}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _softplus(x: float) -> float:
    # Stable scalar softplus in double precision, for expected values.
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# ---------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("s", [0.5, 3.0, 20.0])
@pytest.mark.parametrize("n_neg", [1, 7, 100])
def test_separable_scores_known_values(s, n_neg):
    b, p = 4, 5
    pos = torch.full((b, p), s, dtype=torch.float64)
    neg = torch.full((b, n_neg), -s, dtype=torch.float64)

    # JSD: -softplus(-s) - softplus(-s); negative, tends to 0 from below.
    jsd = jsd_mi(pos, neg).item()
    assert jsd == pytest.approx(-2 * _softplus(-s), rel=1e-12, abs=1e-300)
    assert jsd < 0

    # DV: E_pos[s] - log E_neg[exp(-s)] = 2s exactly.
    assert dv_mi(pos, neg).item() == pytest.approx(2 * s, rel=1e-12)

    # infoNCE: s - log(e^s + N e^-s) + log(1+N) = log(1+N) - log1p(N e^{-2s}).
    expected = math.log(1 + n_neg) - math.log1p(n_neg * math.exp(-2 * s))
    nce = infonce_mi(pos, neg).item()
    assert nce == pytest.approx(expected, rel=1e-12)
    assert nce <= math.log(1 + n_neg)


def test_separable_scores_limits():
    # Large s: JSD -> 0, infoNCE -> log(1+N) (to float64 precision at s=40).
    pos = torch.full((3, 2), 40.0, dtype=torch.float64)
    neg = torch.full((3, 9), -40.0, dtype=torch.float64)
    assert abs(jsd_mi(pos, neg).item()) < 1e-16
    assert infonce_mi(pos, neg).item() == pytest.approx(math.log(10), abs=1e-15)


@pytest.mark.parametrize("c", [-5.0, -0.3, 0.0, 1.7, 30.0])
def test_identical_scores_known_values(c):
    pos = torch.full((4, 3), c, dtype=torch.float64)
    neg = torch.full((4, 11), c, dtype=torch.float64)
    assert jsd_mi(pos, neg).item() == pytest.approx(
        -_softplus(-c) - _softplus(c), rel=1e-12
    )
    # log mean exp of equal values is the value itself, so DV is 0 (up to the
    # rounding of log(N) subtracted from logsumexp).
    assert dv_mi(pos, neg).item() == pytest.approx(0.0, abs=1e-12)
    # log(1+N) + log(1/(1+N)) = 0.
    assert infonce_mi(pos, neg).item() == pytest.approx(0.0, abs=1e-12)


def test_jsd_zero_scores_is_minus_two_log_two():
    pos, neg = torch.zeros(2, 3), torch.zeros(2, 4)
    assert jsd_mi(pos, neg).item() == pytest.approx(-2 * math.log(2), rel=1e-6)


def _gauss_expectation(f, sigma: float) -> float:
    # E[f(u)], u ~ N(0, sigma^2), by 80-point Gauss-Hermite quadrature.
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w * f(sigma * x)) / math.sqrt(2 * math.pi))


def test_shuffled_scores_give_uninformative_values():
    # Scores from one N(0, 1) pool, labelled positive/negative by a random
    # permutation, i.e. independently of their value. The population values
    # for such an uninformative critic are
    #   JSD:     E[-softplus(-u) - softplus(u)]  (<= -2 log 2),
    #   DV:      E[u] - log E[e^u] = -sigma^2 / 2,
    #   infoNCE: E[u] - E[log(e^u + sum_N e^v)] + log(1+N) -> -sigma^2 / 2
    #            (Jensen gap of the row log-sum-exp ~ Var/2n ~ 2e-3 here).
    sigma, b, p, n = 1.0, 64, 16, 512
    g = _gen(1)
    pool = sigma * torch.randn(b * (p + n), generator=g, dtype=torch.float64)
    pool = pool[torch.randperm(pool.numel(), generator=g)]
    pos, neg = pool[: b * p].reshape(b, p), pool[b * p :].reshape(b, n)

    jsd_expected = _gauss_expectation(
        lambda u: -np.logaddexp(0, -u) - np.logaddexp(0, u), sigma
    )
    assert jsd_expected < -2 * math.log(2)
    # Standard errors with 1024 positives / 32768 negatives: JSD ~0.01,
    # DV ~0.035 (mean of 1024 N(0,1) dominates), infoNCE ~0.035. Tolerances
    # are 5-6 standard errors; an informative labelling is far outside them
    # (checked below).
    assert jsd_mi(pos, neg).item() == pytest.approx(jsd_expected, abs=0.06)
    assert dv_mi(pos, neg).item() == pytest.approx(-(sigma**2) / 2, abs=0.2)
    assert infonce_mi(pos, neg).item() == pytest.approx(-(sigma**2) / 2, abs=0.2)

    # Same pool, labelled by value (largest scores positive): the estimates
    # must leave the uninformative tolerance band, so the check above can fail.
    ranked = pool.sort(descending=True).values
    pos_i, neg_i = ranked[: b * p].reshape(b, p), ranked[b * p :].reshape(b, n)
    assert jsd_mi(pos_i, neg_i).item() > jsd_expected + 0.3
    assert dv_mi(pos_i, neg_i).item() > 1.0
    assert infonce_mi(pos_i, neg_i).item() > 1.0


def test_dv_recovers_gaussian_mi_with_optimal_critic():
    # For (x, z) standard bivariate normal with correlation rho, the optimal
    # DV critic is T = log p(x,z) / (p(x) p(z)); then E_p[T] = MI and
    # E_q[e^T] = 1, so DV with T estimates MI = -1/2 log(1 - rho^2).
    rho, n = 0.5, 200_000
    g = _gen(2)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    z = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, generator=g, dtype=torch.float64)
    z_ind = torch.randn(n, generator=g, dtype=torch.float64)  # product of marginals

    def critic(x, z):
        return -0.5 * math.log(1 - rho**2) - (
            rho**2 * x**2 - 2 * rho * x * z + rho**2 * z**2
        ) / (2 * (1 - rho**2))

    pos = critic(x, z).reshape(-1, 100)
    neg = critic(x, z_ind).reshape(-1, 100)
    true_mi = -0.5 * math.log(1 - rho**2)

    # Sampling error by the delta method: Var(mean T_pos) + Var(log mean e^T_neg)
    # ~ Var_p(T)/n + Var_q(e^T)/(n E_q[e^T]^2). Var_q(e^T) = rho^2/(1-rho^2)
    # (Mehler expansion), so se ~ 2e-3 here while MI ~ 0.144.
    e_neg = neg.exp()
    se = math.sqrt(pos.var().item() / n + e_neg.var().item() / (n * e_neg.mean().item() ** 2))
    assert se < 0.005
    assert dv_mi(pos, neg).item() == pytest.approx(true_mi, abs=5 * se)
    # The same critic through the dispatcher, and a mis-specified (halved)
    # critic must score visibly lower: DV is a lower bound maximised by T.
    assert mi_lower_bound(pos, neg, "dv").item() == dv_mi(pos, neg).item()
    assert dv_mi(pos / 2, neg / 2).item() < true_mi - 10 * se


# ---------------------------------------------------------------------------
# Gradient direction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MI_ESTIMATORS)
def test_gradient_signs(name):
    pos = _randn(5, 4, seed=3, dtype=torch.float64).requires_grad_(True)
    neg = _randn(5, 12, seed=4, dtype=torch.float64).requires_grad_(True)
    est = BOUNDS[name](pos, neg)
    gpos, gneg = torch.autograd.grad(est, (pos, neg))
    assert (gpos > 0).all(), "raising any positive score must raise the estimate"
    assert (gneg < 0).all(), "raising any negative score must lower the estimate"


@pytest.mark.parametrize("name", MI_ESTIMATORS)
def test_finite_perturbation_direction(name):
    fn = BOUNDS[name]
    pos = _randn(3, 4, seed=5, dtype=torch.float64)
    neg = _randn(3, 6, seed=6, dtype=torch.float64)
    base = fn(pos, neg).item()
    assert fn(pos + 0.1, neg).item() > base
    assert fn(pos, neg + 0.1).item() < base


# ---------------------------------------------------------------------------
# Reference implementations
# ---------------------------------------------------------------------------


def _infonce_brute_force(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    # Materialise every positive's 1 + N candidates explicitly.
    b, p = pos.shape
    terms = []
    for i in range(b):
        for j in range(p):
            cand = torch.cat([pos[i, j : j + 1], neg[i]])
            terms.append(torch.log_softmax(cand, dim=0)[0])
    return torch.stack(terms).mean() + math.log(1 + neg.shape[1])


@pytest.mark.parametrize("seed", range(5))
def test_infonce_matches_brute_force(seed):
    g = _gen(seed)
    b, p, n = (int(v) for v in torch.randint(1, 7, (3,), generator=g))
    scale = 3.0
    pos = scale * torch.randn(b, p, generator=g)
    neg = scale * torch.randn(b, n, generator=g)
    ref = _infonce_brute_force(pos.double(), neg.double()).item()
    assert infonce_mi(pos, neg).item() == pytest.approx(ref, abs=1e-5)
    assert infonce_mi(pos.double(), neg.double()).item() == pytest.approx(ref, abs=1e-12)


def test_infonce_on_split_pairs_matches_per_location_candidates():
    # Paper eq. 5 as written in DESIGN.md: positive (i, l) competes against
    # itself and every location of every other image.
    b, l = 4, 3
    scores = _randn(b, b, l, seed=7, dtype=torch.float64)
    terms = []
    for i in range(b):
        others = torch.cat([scores[i, j] for j in range(b) if j != i])
        for loc in range(l):
            cand = torch.cat([scores[i, i, loc : loc + 1], others])
            terms.append(torch.log_softmax(cand, dim=0)[0])
    ref = torch.stack(terms).mean() + math.log(1 + (b - 1) * l)
    pos, neg = split_pair_scores(scores)
    assert infonce_mi(pos, neg).item() == pytest.approx(ref.item(), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_dv_and_jsd_match_naive_formulas(seed):
    pos = _randn(4, 6, seed=seed, dtype=torch.float64)
    neg = _randn(4, 9, seed=seed + 100, dtype=torch.float64)
    dv_naive = pos.mean() - torch.log(torch.exp(neg).mean())
    jsd_naive = -torch.log1p(torch.exp(-pos)).mean() - torch.log1p(torch.exp(neg)).mean()
    assert dv_mi(pos, neg).item() == pytest.approx(dv_naive.item(), abs=1e-12)
    assert jsd_mi(pos, neg).item() == pytest.approx(jsd_naive.item(), abs=1e-12)
    # float32 inputs agree with the float64 formula to float32 precision.
    assert dv_mi(pos.float(), neg.float()).item() == pytest.approx(dv_naive.item(), abs=1e-5)


def test_dv_and_jsd_ignore_row_structure():
    # JSD and DV use the positive and negative sets as a whole.
    pos = _randn(4, 6, seed=8)
    neg = _randn(4, 9, seed=9)
    for fn in (jsd_mi, dv_mi):
        assert fn(pos, neg).item() == pytest.approx(
            fn(pos.reshape(-1), neg.reshape(3, 12)).item(), abs=1e-6
        )


# ---------------------------------------------------------------------------
# infoNCE upper limit and numerical stability
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    b=st.integers(1, 5),
    p=st.integers(1, 6),
    n=st.integers(1, 40),
    log10_scale=st.floats(-3.0, 30.0),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_infonce_never_exceeds_log_candidates(b, p, n, log10_scale, seed, dtype):
    g = _gen(seed)
    scale = 10.0**log10_scale
    pos = scale * torch.randn(b, p, generator=g, dtype=dtype)
    neg = scale * torch.randn(b, n, generator=g, dtype=dtype)
    est = infonce_mi(pos, neg).item()
    assert math.isfinite(est)
    # Allowance: rounding of log(1+N) to the input dtype (<= 1 ulp of ~4).
    assert est <= math.log(1 + n) + 1e-6


@pytest.mark.parametrize("name", MI_ESTIMATORS)
@pytest.mark.parametrize("big", [1e4, 1e30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stability_at_extreme_scores(name, big, dtype):
    fn = BOUNDS[name]
    b, p, n = 3, 4, 10

    def run(pos_val, neg_val):
        pos = torch.full((b, p), pos_val, dtype=dtype, requires_grad=True)
        neg = torch.full((b, n), neg_val, dtype=dtype, requires_grad=True)
        est = fn(pos, neg)
        gpos, gneg = torch.autograd.grad(est, (pos, neg))
        assert torch.isfinite(est)
        assert torch.isfinite(gpos).all() and torch.isfinite(gneg).all()
        return est.item()

    # Separable, anti-separable, and constant +-big. Expected values from the
    # closed forms above.
    expected = {
        "jsd": {
            (big, -big): 0.0,
            (-big, big): -2 * big,
            (big, big): -big,
            (-big, -big): -big,
        },
        "dv": {(big, -big): 2 * big, (-big, big): -2 * big, (big, big): 0.0, (-big, -big): 0.0},
        "infonce": {
            (big, -big): math.log(1 + n),
            (-big, big): -2 * big - math.log(n) + math.log(1 + n),
            (big, big): 0.0,
            (-big, -big): 0.0,
        },
    }[name]
    # Terms like big + log(N) are rounded to the scores' precision, so the
    # result can only be right to a few ulps of |big| (float32 at 1e4: ~1e-3;
    # at 1e30, log(N) is below resolution altogether). 8 ulps allowed.
    atol = 8 * torch.finfo(dtype).eps * big
    for (pv, nv), want in expected.items():
        got = run(pv, nv)
        assert got == pytest.approx(want, rel=1e-6, abs=atol), (pv, nv)
    # Perfect separation involves no such rounding for JSD and infoNCE: their
    # limits (0 and log(1+N)) are reached to float precision.
    if name in ("jsd", "infonce"):
        assert run(big, -big) == pytest.approx(expected[(big, -big)], abs=1e-6)


@pytest.mark.parametrize("name", MI_ESTIMATORS)
def test_stability_mixed_huge_scores(name):
    g = _gen(10)
    pos = (1e4 * torch.randn(4, 5, generator=g)).requires_grad_(True)
    neg = (1e4 * torch.randn(4, 30, generator=g)).requires_grad_(True)
    est = BOUNDS[name](pos, neg)
    gpos, gneg = torch.autograd.grad(est, (pos, neg))
    assert torch.isfinite(est)
    assert torch.isfinite(gpos).all() and torch.isfinite(gneg).all()
    # Agreement with float64 (where nothing saturates at these scales either).
    ref = BOUNDS[name](pos.detach().double(), neg.detach().double()).item()
    assert est.item() == pytest.approx(ref, rel=1e-5, abs=1e-3)


# ---------------------------------------------------------------------------
# Dispatch and validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MI_ESTIMATORS)
def test_mi_lower_bound_dispatch(name):
    pos, neg = _randn(3, 4, seed=11), _randn(3, 7, seed=12)
    assert torch.equal(mi_lower_bound(pos, neg, name), BOUNDS[name](pos, neg))


def test_mi_lower_bound_default_is_jsd():
    pos, neg = _randn(3, 4, seed=13), _randn(3, 7, seed=14)
    assert torch.equal(mi_lower_bound(pos, neg), jsd_mi(pos, neg))


def test_estimator_names():
    assert set(MI_ESTIMATORS) == {"jsd", "infonce", "dv"}


@pytest.mark.parametrize("bad", ["nce", "JSD", "", "mine", None])
def test_mi_lower_bound_unknown_name(bad):
    pos, neg = torch.zeros(2, 2), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="Unknown MI estimator.*jsd.*infonce.*dv"):
        mi_lower_bound(pos, neg, bad)


@pytest.mark.parametrize(
    "pos_shape, neg_shape",
    [((4,), (4, 3)), ((4, 2), (4,)), ((4, 2), (3, 5)), ((2, 2, 2), (2, 4)), ((), (2, 2))],
)
def test_infonce_shape_errors(pos_shape, neg_shape):
    with pytest.raises(ValueError, match=r"infonce_mi expects pos of shape \(B, P\)"):
        infonce_mi(torch.zeros(pos_shape), torch.zeros(neg_shape))


# ---------------------------------------------------------------------------
# split_pair_scores
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("b, l", [(2, 1), (3, 4), (5, 2)])
def test_split_pair_scores_excludes_positives(b, l):
    scores = torch.arange(b * b * l, dtype=torch.float32).reshape(b, b, l)
    pos, neg = split_pair_scores(scores)
    assert pos.shape == (b, l)
    assert neg.shape == (b, (b - 1) * l)
    for i in range(b):
        assert torch.equal(pos[i], scores[i, i])
        expected = torch.cat([scores[i, j] for j in range(b) if j != i])
        # Every off-diagonal score of row i exactly once (values are unique),
        # and none of the positives.
        assert torch.equal(neg[i].sort().values, expected.sort().values)
        assert not torch.isin(scores[i, i], neg[i]).any()
        # Nothing from other anchors' rows leaks in.
        assert torch.isin(neg[i], scores[i]).all()


def test_split_pair_scores_2d():
    scores = torch.arange(16.0).reshape(4, 4)
    pos, neg = split_pair_scores(scores)
    assert torch.equal(pos, torch.diagonal(scores).reshape(4, 1))
    for i in range(4):
        assert torch.equal(
            neg[i].sort().values, scores[i][torch.arange(4) != i].sort().values
        )


def test_split_pair_scores_keeps_gradient():
    scores = _randn(3, 3, 2, seed=15).requires_grad_(True)
    pos, neg = split_pair_scores(scores)
    (pos.sum() + 2 * neg.sum()).backward()
    eye = torch.eye(3, dtype=torch.bool)
    assert (scores.grad[eye] == 1).all() and (scores.grad[~eye] == 2).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 4)])
def test_split_pair_scores_needs_two_items(shape):
    with pytest.raises(ValueError, match="At least 2 items.*B=1"):
        split_pair_scores(torch.zeros(shape))


def test_split_pair_scores_reports_actual_batch_size():
    with pytest.raises(ValueError, match="At least 2 items.*B=0"):
        split_pair_scores(torch.zeros(0, 0, 3))


@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 4), (4,), (2, 2, 2, 2)])
def test_split_pair_scores_shape_errors(shape):
    with pytest.raises(ValueError, match=r"shape \(B, B\) or \(B, B, L\)"):
        split_pair_scores(torch.zeros(shape))


# ---------------------------------------------------------------------------
# subsample_negatives
# ---------------------------------------------------------------------------


def _unique_rows(b: int = 6, n: int = 40) -> torch.Tensor:
    return torch.arange(b * n, dtype=torch.float32).reshape(b, n)


@pytest.mark.parametrize("k", [1, 5, 39])
def test_subsample_negatives_subset_of_row(k):
    neg = _unique_rows()
    out = subsample_negatives(neg, k, generator=_gen(0))
    assert out.shape == (neg.shape[0], k)
    for i in range(neg.shape[0]):
        assert torch.isin(out[i], neg[i]).all()
        assert out[i].unique().numel() == k  # without replacement


def test_subsample_negatives_rows_draw_independently():
    neg = _unique_rows(8, 50)
    out = subsample_negatives(neg, 5, generator=_gen(1))
    cols = [frozenset((out[i] - neg[i, 0]).long().tolist()) for i in range(8)]
    assert len(set(cols)) > 1


def test_subsample_negatives_reproducible_and_local_rng():
    neg = _unique_rows()
    state = torch.get_rng_state()
    a = subsample_negatives(neg, 7, generator=_gen(42))
    b = subsample_negatives(neg, 7, generator=_gen(42))
    c = subsample_negatives(neg, 7, generator=_gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state), "global RNG must be untouched"


@pytest.mark.parametrize("k", [None, 40, 100])
def test_subsample_negatives_keeps_all(k):
    neg = _unique_rows()
    assert torch.equal(subsample_negatives(neg, k, generator=_gen(0)), neg)


def test_subsample_negatives_keeps_gradient():
    neg = _randn(3, 10, seed=16).requires_grad_(True)
    subsample_negatives(neg, 4, generator=_gen(0)).sum().backward()
    assert neg.grad.sum().item() == pytest.approx(12.0)
    assert ((neg.grad == 0) | (neg.grad == 1)).all()


@pytest.mark.parametrize("k", [0, -1, -100])
def test_subsample_negatives_invalid_count(k):
    with pytest.raises(ValueError, match="n_negatives must be >= 1 or None"):
        subsample_negatives(_unique_rows(), k)


# ---------------------------------------------------------------------------
# MineMovingAverage
# ---------------------------------------------------------------------------


def test_mine_loss_value_is_negative_dv():
    mine = MineMovingAverage(rate=0.1)
    for seed in range(3):
        pos, neg = _randn(4, 3, seed=seed), _randn(4, 8, seed=seed + 50)
        assert mine.loss(pos, neg).item() == pytest.approx(-dv_mi(pos, neg).item(), abs=1e-6)


def test_mine_gradient_is_bias_corrected():
    rate = 0.2
    mine = MineMovingAverage(rate=rate)
    pos1 = _randn(3, 2, seed=20, dtype=torch.float64)
    neg1 = _randn(3, 5, seed=21, dtype=torch.float64)
    pos2 = _randn(3, 2, seed=22, dtype=torch.float64).requires_grad_(True)
    neg2 = (_randn(3, 5, seed=23, dtype=torch.float64) + 1.0).requires_grad_(True)

    # First call: the average is the batch mean, so this is the plain DV gradient.
    p1, n1 = pos1.clone().requires_grad_(True), neg1.clone().requires_grad_(True)
    g_pos1, g_neg1 = torch.autograd.grad(mine.loss(p1, n1), (p1, n1))
    dv_pos1, dv_neg1 = torch.autograd.grad(-dv_mi(p1, n1), (p1, n1))
    assert torch.allclose(g_pos1, dv_pos1, atol=1e-12)
    assert torch.allclose(g_neg1, dv_neg1, atol=1e-12)

    # Second call: loss = -(E_pos[u] - ...), gradient
    #   d/dpos = -1/numel(pos),  d/dneg = grad(E_neg[e^u]) / ema = e^u / (numel * ema)
    # with ema = (1 - rate) * mean(e^neg1) + rate * mean(e^neg2).
    ema = (1 - rate) * neg1.exp().mean() + rate * neg2.detach().exp().mean()
    loss = mine.loss(pos2, neg2)
    g_pos2, g_neg2 = torch.autograd.grad(loss, (pos2, neg2))
    assert torch.allclose(g_pos2, torch.full_like(pos2, -1 / pos2.numel()), atol=1e-12)
    want = neg2.detach().exp() / (neg2.numel() * ema)
    assert torch.allclose(g_neg2, want, rtol=1e-10, atol=0)
    assert mine.log_ema.item() == pytest.approx(math.log(ema.item()), rel=1e-12)
    # It differs from the (biased) plain DV gradient, so the check is not vacuous.
    _, dv_neg2 = torch.autograd.grad(-dv_mi(pos2, neg2), (pos2, neg2))
    assert not torch.allclose(g_neg2, dv_neg2, rtol=1e-3)
    assert loss.item() == pytest.approx(-dv_mi(pos2, neg2).item(), abs=1e-12)


def test_mine_rate_one_is_plain_dv():
    # rate=1 keeps no history: every call must give the plain DV gradient.
    mine = MineMovingAverage(rate=1.0)
    for seed in range(3):
        pos = _randn(2, 3, seed=seed, dtype=torch.float64).requires_grad_(True)
        neg = (_randn(2, 4, seed=seed + 9, dtype=torch.float64) * (seed + 1)).requires_grad_(True)
        got = torch.autograd.grad(mine.loss(pos, neg), (pos, neg))
        want = torch.autograd.grad(-dv_mi(pos, neg), (pos, neg))
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(got, want))


def test_mine_stable_at_huge_scores():
    mine = MineMovingAverage(rate=0.5)
    for val in (1e4, -1e4, 1e4):
        pos = torch.full((2, 3), val, requires_grad=True)
        neg = torch.full((2, 5), -val, requires_grad=True)
        loss = mine.loss(pos, neg)
        g = torch.autograd.grad(loss, (pos, neg))
        assert torch.isfinite(loss)
        assert all(torch.isfinite(t).all() for t in g)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.01, 5.0, float("nan")])
def test_mine_rate_validation(rate):
    with pytest.raises(ValueError, match=r"rate must be in \(0, 1\]"):
        MineMovingAverage(rate=rate)
