"""Tests for skdim.nn.priors: samplers, the code-to-prior map, the adversarial
losses, the gradient penalty, and (end to end) that prior matching in
:class:`skdim.DeepInfoMax` moves ``sigmoid(Y)`` towards the uniform prior.

Sampler moments are checked against their exact values with tolerances of a
few standard errors of the sample mean (fixed seeds make each check
deterministic; the tolerances say why the fixed draw is not a fluke).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.datasets import load_digits

from skdim import DeepInfoMax
from skdim.nn.priors import (
    PRIORS,
    discriminator_loss,
    gradient_penalty,
    prior_loss,
    prior_transform,
    sample_prior,
)

N = 20000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- samplers


def test_priors_constant():
    assert PRIORS == ("uniform", "gaussian", "unit_ball", "unit_sphere")


@pytest.mark.parametrize("name", PRIORS)
def test_sample_prior_shape_dtype_and_seeding(name):
    a = sample_prior(name, 7, 5, _gen(1))
    assert a.shape == (7, 5) and a.dtype == torch.float32 and a.device.type == "cpu"
    torch.testing.assert_close(a, sample_prior(name, 7, 5, _gen(1)), rtol=0, atol=0)
    assert not torch.equal(a, sample_prior(name, 7, 5, _gen(2)))


@pytest.mark.parametrize("name", PRIORS)
def test_sample_prior_leaves_global_rng_alone(name):
    before = torch.get_rng_state()
    sample_prior(name, 10, 3, _gen(0))
    assert torch.equal(before, torch.get_rng_state())


def test_uniform_support_and_moments():
    z = sample_prior("uniform", N, 4, _gen(0)).double()
    assert z.min() >= 0 and z.max() <= 1
    se_mean = math.sqrt(1 / 12 / N)
    # Mean 1/2 and variance 1/12 of U(0, 1), within 5 standard errors.
    assert torch.allclose(z.mean(0), torch.full((4,), 0.5, dtype=torch.float64), atol=5 * se_mean)
    assert torch.allclose(z.var(0), torch.full((4,), 1 / 12, dtype=torch.float64), atol=5 * math.sqrt(1 / 180 / N))
    for j in range(4):  # and uniform in shape, not only in its first moments
        assert stats.kstest(z[:, j].numpy(), "uniform").statistic < 1.63 / math.sqrt(N)


def test_gaussian_moments():
    z = sample_prior("gaussian", N, 3, _gen(0)).double()
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=5 / math.sqrt(N))
    assert torch.allclose(z.var(0), torch.ones(3, dtype=torch.float64), atol=5 * math.sqrt(2 / N))


@pytest.mark.parametrize("d", [2, 5, 16])
def test_unit_sphere_has_unit_norm_and_no_direction(d):
    z = sample_prior("unit_sphere", N, d, _gen(d)).double()
    torch.testing.assert_close(z.norm(dim=1), torch.ones(N, dtype=torch.float64), rtol=0, atol=1e-6)
    # Isotropic: each coordinate has mean 0 and variance 1/d.
    assert z.mean(0).abs().max() < 5 / math.sqrt(d * N)
    assert torch.allclose(z.pow(2).mean(0), torch.full((d,), 1 / d, dtype=torch.float64), atol=5 * math.sqrt(2 / N) / d)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_unit_ball_radius_follows_r_to_the_d(d):
    z = sample_prior("unit_ball", N, d, _gen(d)).double()
    r = z.norm(dim=1).numpy()
    assert r.max() <= 1 + 1e-6
    # P(R <= t) = t**d for a uniform point in the d-ball, so R**d is U(0, 1).
    # 1.63 / sqrt(N) is the 1% critical value of the one-sample KS statistic.
    assert stats.kstest(r**d, "uniform").statistic < 1.63 / math.sqrt(N)
    # Directions are isotropic: mean zero.
    assert z.mean(0).abs().max() < 5 / math.sqrt(N)


def test_sample_prior_unknown_name():
    with pytest.raises(ValueError, match=r"Unknown prior 'laplace'.*uniform"):
        sample_prior("laplace", 2, 2, _gen())


# --------------------------------------------------------------- prior_transform


def test_prior_transform():
    y = torch.tensor([[-2.0, 0.0, 3.0], [0.5, -0.5, 4.0]])
    y_before = y.clone()
    torch.testing.assert_close(prior_transform("uniform", y), torch.sigmoid(y))
    torch.testing.assert_close(prior_transform("unit_sphere", y), y / y.norm(dim=1, keepdim=True))
    assert torch.equal(prior_transform("gaussian", y), y)
    assert torch.equal(prior_transform("unit_ball", y), y)
    assert torch.equal(y, y_before)  # the code itself is never modified
    with pytest.raises(ValueError, match="Unknown prior"):
        prior_transform("beta", y)


def test_prior_transform_maps_into_support():
    y = 10 * torch.randn(100, 8, generator=_gen(3))
    u = prior_transform("uniform", y)
    assert u.min() >= 0 and u.max() <= 1
    torch.testing.assert_close(prior_transform("unit_sphere", y).norm(dim=1), torch.ones(100))


# --------------------------------------------------------------- losses


def test_losses_known_values():
    zeros = torch.zeros(5)
    # A discriminator at chance scores 0: BCE is log 2 per side.
    torch.testing.assert_close(discriminator_loss(zeros, zeros), torch.tensor(2 * math.log(2)))
    torch.testing.assert_close(prior_loss(zeros), torch.tensor(math.log(2)))
    # A perfect discriminator (real >> 0, fake << 0) has zero loss; then the
    # encoder's non-saturating loss is large (log(1 + e^50) = 50 + tiny).
    big = torch.full((5,), 50.0)
    assert discriminator_loss(big, -big) < 1e-20
    torch.testing.assert_close(prior_loss(-big), torch.tensor(50.0))
    # Stable at extreme scores.
    huge = torch.full((3,), 1e4)
    assert torch.isfinite(discriminator_loss(-huge, huge)) and torch.isfinite(prior_loss(-huge))


def test_losses_equal_binary_cross_entropy():
    g = _gen(4)
    real, fake = 3 * torch.randn(13, generator=g), 3 * torch.randn(9, generator=g)
    expected = F.binary_cross_entropy_with_logits(real, torch.ones(13)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros(9)
    )
    torch.testing.assert_close(discriminator_loss(real, fake), expected)
    # The encoder's loss labels its codes "real" (non-saturating generator loss).
    torch.testing.assert_close(prior_loss(fake), F.binary_cross_entropy_with_logits(fake, torch.ones(9)))


def test_losses_gradient_directions():
    real = torch.zeros(4, requires_grad=True)
    fake = torch.zeros(4, requires_grad=True)
    discriminator_loss(real, fake).backward()
    # The discriminator raises scores of prior samples and lowers those of codes ...
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake2 = torch.zeros(4, requires_grad=True)
    prior_loss(fake2).backward()
    # ... while the encoder wants its codes scored as real: the opposite sign.
    assert (fake2.grad < 0).all()


# --------------------------------------------------------------- gradient penalty


def _mlp(d: int, seed: int = 0) -> torch.nn.Module:
    torch_gen = _gen(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=torch_gen))
    return net


def _disc(net):
    return lambda z: net(z).squeeze(-1)


def test_gradient_penalty_linear_known_value():
    w = torch.tensor([1.0, -2.0, 2.0])
    penalty = gradient_penalty(lambda z: z @ w + 0.3, torch.randn(6, 3, generator=_gen()))
    torch.testing.assert_close(penalty, w.pow(2).sum())  # ||w||^2 = 9 at every sample


def test_gradient_penalty_covers_the_whole_batch():
    net = _mlp(4)
    z = torch.randn(8, 4, generator=_gen(5))
    manual = []
    for i in range(z.shape[0]):
        zi = z[i : i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(zi).sum(), zi)
        manual.append(grad.pow(2).sum())
    expected = torch.stack(manual).mean()
    torch.testing.assert_close(gradient_penalty(_disc(net), z), expected)
    # Every sample contributes: moving any one of them (the first, a middle
    # one, the last) changes the penalty.
    base = gradient_penalty(_disc(net), z)
    for i in (0, 3, 7):
        moved = z.clone()
        moved[i] += 1.0
        assert not torch.isclose(gradient_penalty(_disc(net), moved), base)


def test_gradient_penalty_is_differentiable_in_the_weights():
    net = _mlp(3)
    z = torch.randn(5, 3, generator=_gen(6), requires_grad=True)
    gradient_penalty(_disc(net), z).backward()
    # The input gradient depends on every weight but not on the output bias.
    for p in (net[0].weight, net[0].bias, net[2].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert net[2].bias.grad is None
    assert z.grad is None  # the samples are treated as data, not optimised


# ------------------------------------------------------------- end to end


def _mean_ks_to_uniform(codes: np.ndarray) -> float:
    u = 1.0 / (1.0 + np.exp(-codes.astype(np.float64)))
    return float(np.mean([stats.kstest(u[:, j], "uniform").statistic for j in range(u.shape[1])]))


def test_prior_matching_moves_sigmoid_codes_towards_uniform():
    """Prior matching makes sigmoid(Y) measurably more uniform.

    Statistic: the one-sample Kolmogorov-Smirnov distance between each
    dimension of ``sigmoid(Y)`` and U(0, 1), averaged over the 16 dimensions
    (0 for a perfect match). Two models with the same seed, data (256
    digits) and schedule (96 steps) differ only in ``gamma`` (0 vs 1, the
    DIM(G) weight); the one with the prior term must end at least 0.02 closer
    to uniform. Observed on seeds 0, 1, 2: 0.207 -> 0.144, 0.209 -> 0.159,
    0.217 -> 0.155. (A single dimension's statistic at n=256 has sampling
    noise of about 0.02; the mean over 16 dimensions much less.)
    """
    X = load_digits().images[:256]
    params = dict(
        n_components=16, critic_units=32, batch_size=16, max_epochs=6, learning_rate=1e-3, random_state=0
    )
    free = DeepInfoMax(gamma=0.0, **params).fit(X)
    matched = DeepInfoMax(gamma=1.0, **params).fit(X)
    ks_free = _mean_ks_to_uniform(free.transform(X))
    ks_matched = _mean_ks_to_uniform(matched.transform(X))
    assert ks_matched < ks_free - 0.02, (ks_free, ks_matched)
