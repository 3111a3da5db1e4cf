"""Tests for skdim._training: batching, the two-player train step, the epoch
loop, divergence detection and seeded construction.

The train-step tests use a tiny 8x8 encoder and spy on the two optimizers'
``step`` methods, so that each player's update is observed in isolation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skdim._training import (
    DIMConfig,
    DIMObjective,
    DivergenceError,
    autocast,
    batch_indices,
    build_discriminator,
    build_seeded,
    make_optimizers,
    seeded_generator,
    train_epoch,
    train_step,
)
from skdim.nn.encoders import build_encoder, feature_shapes
from skdim.nn.priors import discriminator_loss, prior_transform, sample_prior

# ------------------------------------------------------------------ batching


@pytest.mark.parametrize("n, bs", [(10, 3), (64, 64), (65, 64), (66, 64), (7, 2), (2, 5), (129, 64)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_indices_cover_every_index_once(n, bs, shuffle):
    batches = list(batch_indices(n, bs, seeded_generator(0), shuffle=shuffle))
    allidx = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    assert all(len(b) >= 2 for b in batches)  # contrastive bounds need 2 images
    assert all(np.all(np.diff(b) > 0) for b in batches)  # sorted within a batch
    assert all(len(b) == bs for b in batches[:-1])


def test_batch_indices_merge_a_trailing_singleton():
    sizes = [len(b) for b in batch_indices(65, 64, seeded_generator(0))]
    assert sizes == [65]
    sizes = [len(b) for b in batch_indices(129, 64, seeded_generator(0))]
    assert sizes == [64, 65]
    sizes = [len(b) for b in batch_indices(66, 64, seeded_generator(0))]
    assert sizes == [64, 2]


def test_batch_indices_without_shuffle_is_in_order():
    batches = list(batch_indices(7, 3, None, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5, 6]]


def test_batch_indices_are_seeded():
    def run(seed):
        return [b.tolist() for b in batch_indices(50, 8, seeded_generator(seed))]

    assert run(3) == run(3)
    assert run(3) != run(4)
    before = torch.get_rng_state()
    run(5)
    assert torch.equal(torch.get_rng_state(), before)


# ----------------------------------------------------------- seeded building


def test_build_seeded_is_reproducible_and_restores_global_rng():
    torch_state = torch.get_rng_state()
    a = build_seeded(7, lambda: nn.Linear(5, 3))
    assert torch.equal(torch.get_rng_state(), torch_state)
    b = build_seeded(7, lambda: nn.Linear(5, 3))
    c = build_seeded(8, lambda: nn.Linear(5, 3))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    # The global generator continues exactly as if nothing had happened.
    expected = torch.rand(3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    build_seeded(1, lambda: nn.Linear(50, 50))
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(torch.rand(3), expected)


def test_seeded_generator():
    assert torch.equal(torch.rand(4, generator=seeded_generator(3)), torch.rand(4, generator=seeded_generator(3)))


def test_autocast_contexts():
    with autocast(torch.device("cpu"), "bfloat16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "float32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# ------------------------------------------------------------- a tiny model


def _model(*, local=True, glob=False, prior=True, n_comp=4, seed=0, lr=1e-3):
    def make():
        encoder = build_encoder("conv", 1, (8, 8), n_comp)
        shapes = feature_shapes(encoder, 1, (8, 8))
        objective = DIMObjective(
            encoder, shapes, n_comp, use_local=local, use_global=glob, critic_units=8
        )
        disc = build_discriminator(n_comp) if prior else None
        return nn.ModuleList([objective, disc]) if prior else nn.ModuleList([objective])

    modules = build_seeded(seed, make)
    objective = modules[0]
    disc = modules[1] if prior else None
    opt, d_opt = make_optimizers(objective, disc, lr)
    return objective, disc, opt, d_opt


def _x(n=16, seed=0):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_dim_objective_builds_only_the_active_critics():
    objective, *_ = _model(local=True, glob=False, prior=False)
    assert objective.local_critic is not None and objective.global_critic is None
    objective, *_ = _model(local=False, glob=True, prior=False)
    assert objective.local_critic is None and objective.global_critic is not None
    code, terms = objective.mi_terms(_x(), DIMConfig(alpha=1.0, beta=0.0))
    assert set(terms) == {"global_mi"} and code.shape == (16, 4)


def test_optimizers_own_disjoint_parameters():
    objective, disc, opt, d_opt = _model()
    main_ids = {id(p) for g in opt.param_groups for p in g["params"]}
    disc_ids = {id(p) for g in d_opt.param_groups for p in g["params"]}
    assert main_ids == {id(p) for p in objective.parameters()}
    assert disc_ids == {id(p) for p in disc.parameters()}
    assert not main_ids & disc_ids
    assert opt.defaults["betas"] == (0.5, 0.999)  # official release's Adam betas


def test_train_step_players_update_separately():
    """The discriminator's step leaves the encoder (and critics) untouched,
    and the encoder's step leaves the discriminator untouched."""
    objective, disc, opt, d_opt = _model()
    events = []
    real_d_step, real_step = d_opt.step, opt.step

    def spy_d_step(*args, **kwargs):
        enc_before, disc_before = _params(objective), _params(disc)
        out = real_d_step(*args, **kwargs)
        events.append(("disc", _same(enc_before, _params(objective)), _same(disc_before, _params(disc))))
        return out

    def spy_step(*args, **kwargs):
        enc_before, disc_before = _params(objective), _params(disc)
        out = real_step(*args, **kwargs)
        events.append(("main", _same(enc_before, _params(objective)), _same(disc_before, _params(disc))))
        return out

    d_opt.step, opt.step = spy_d_step, spy_step
    terms = train_step(objective, disc, opt, d_opt, _x(), DIMConfig(gamma=0.5), seeded_generator(0))
    # (player, encoder unchanged, discriminator unchanged)
    assert events == [("disc", True, False), ("main", False, True)]
    assert set(terms) == {"local_mi", "discriminator", "prior", "loss"}
    assert all(t.ndim == 0 and torch.isfinite(t) and not t.requires_grad for t in terms.values())
    # The total is the weighted sum of the terms (paper eq. 8).
    torch.testing.assert_close(terms["loss"], -terms["local_mi"] + 0.5 * terms["prior"])


def test_prior_gradient_makes_codes_look_real_to_the_discriminator():
    """The encoder's prior step fools the (frozen) discriminator: after it,
    the discriminator scores the new codes as more "real" than the old ones.
    A port whose encoder helped the discriminator would lower the score."""
    objective, disc, opt, d_opt = _model(local=False, lr=1e-4)
    x = _x(32, seed=1)
    config = DIMConfig(alpha=0.0, beta=0.0, gamma=1.0)
    scores = {}
    real_step = opt.step

    def disc_score():
        with torch.no_grad():
            return disc(prior_transform("uniform", objective.encoder(x).y)).mean().item()

    def spy_step(*args, **kwargs):
        scores["before"] = disc_score()  # discriminator already took its step
        out = real_step(*args, **kwargs)
        scores["after"] = disc_score()
        return out

    opt.step = spy_step
    for step in range(3):
        train_step(objective, disc, opt, d_opt, x, config, seeded_generator(step))
        assert scores["after"] > scores["before"], scores


def test_discriminator_step_learns_to_separate():
    """With the encoder frozen, the discriminator's own steps lower its loss
    (prior samples vs codes) on a fixed evaluation set -- it is trained to
    tell codes from prior samples, not to agree with the encoder."""
    objective, disc, opt, d_opt = _model(local=False, lr=1e-3)
    for g in opt.param_groups:  # freeze the encoder to isolate the discriminator
        g["lr"] = 0.0
    x = _x(32, seed=2)
    config = DIMConfig(alpha=0.0, beta=0.0, gamma=1.0)
    real = sample_prior("uniform", 2000, 4, seeded_generator(123))

    def held_out_loss():
        objective.eval()
        with torch.no_grad():
            fake = prior_transform("uniform", objective.encoder(x).y)
            loss = discriminator_loss(disc(real), disc(fake)).item()
        objective.train()
        return loss

    before = held_out_loss()
    for s in range(20):
        train_step(objective, disc, opt, d_opt, x, config, seeded_generator(s))
    after = held_out_loss()
    # Chance is 2 log 2 = 1.386; the drop is small because the gradient
    # penalty keeps the discriminator smooth, but it must be a real drop.
    assert after < before - 0.01, (before, after)


def test_train_step_bfloat16_runs_and_keeps_float32_weights():
    objective, disc, opt, d_opt = _model()
    terms = train_step(objective, disc, opt, d_opt, _x(), DIMConfig(precision="bfloat16"), seeded_generator(0))
    assert all(torch.isfinite(t) for t in terms.values())
    assert all(p.dtype == torch.float32 for p in objective.parameters())


# --------------------------------------------------------------- divergence


def test_divergence_error_is_a_floating_point_error():
    assert issubclass(DivergenceError, FloatingPointError)


@pytest.mark.parametrize("prior, term", [(True, "discriminator"), (False, "local_mi")])
def test_train_step_detects_nan_before_updating(prior, term):
    objective, disc, opt, d_opt = _model(prior=prior)
    x = _x()
    x[3, 0, 2, 2] = float("nan")
    before = _params(objective)
    disc_before = _params(disc) if prior else None
    config = DIMConfig(gamma=0.1 if prior else 0.0)
    with pytest.raises(DivergenceError, match=rf"epoch 3, step 5.*{term}"):
        train_step(objective, disc, opt, d_opt, x, config, seeded_generator(0), epoch=2, step=4)
    assert _same(before, _params(objective))
    if prior:
        assert _same(disc_before, _params(disc))


def test_train_step_names_the_mi_term(monkeypatch):
    import skdim._training as training

    objective, _, opt, _ = _model(prior=False)
    monkeypatch.setattr(training, "mi_lower_bound", lambda pos, neg, est: pos.sum() * float("inf"))
    with pytest.raises(DivergenceError, match=r"epoch 1, step 1: the local_mi, loss term"):
        train_step(objective, None, opt, None, _x(), DIMConfig(gamma=0.0), seeded_generator(0))


def test_train_epoch_detects_non_finite_weights():
    objective, disc, opt, d_opt = _model()
    # A parameter outside the loss graph: only the weight check can see it.
    objective.unused = nn.Linear(2, 2)
    with torch.no_grad():
        objective.unused.weight.fill_(float("nan"))
    X = _x(20)
    with pytest.raises(DivergenceError, match=r"epoch 2: weights became non-finite"):
        train_epoch(objective, disc, opt, d_opt, 20, lambda idx: X[idx], DIMConfig(), 8, seeded_generator(0), epoch=1)


# --------------------------------------------------------------- the epoch


def test_train_epoch_returns_the_mean_of_the_steps():
    objective, disc, opt, d_opt = _model()
    X = _x(40)
    seen, steps = [], []
    stats = train_epoch(
        objective, disc, opt, d_opt, 40, lambda idx: (seen.append(idx), X[idx])[1], DIMConfig(),
        16, seeded_generator(0), progress=steps.append,
    )
    assert sorted(np.concatenate(seen).tolist()) == list(range(40))
    assert [len(i) for i in seen] == [16, 16, 8]
    assert set(stats) == {"local_mi", "discriminator", "prior", "loss"}
    for key, value in stats.items():
        assert value == pytest.approx(np.mean([s[key] for s in steps]), rel=1e-5)
    assert objective.training and disc.training


def test_train_epoch_is_reproducible():
    def run():
        objective, disc, opt, d_opt = _model(seed=3)
        X = _x(24, seed=4)
        stats = train_epoch(objective, disc, opt, d_opt, 24, lambda idx: X[idx], DIMConfig(), 8, seeded_generator(9))
        return stats, _params(objective)

    (s1, p1), (s2, p2) = run(), run()
    assert s1 == s2 and _same(p1, p2)


def test_train_epoch_runs_every_step_through_the_given_forward():
    # The hook torch.compile plugs into: a replacement of objective.mi_terms
    # with the same signature is used for every step, and an identical
    # replacement trains identically.
    def run(wrap):
        objective, disc, opt, d_opt = _model(seed=3)
        X = _x(24, seed=4)
        calls = []

        def forward(x, config, generator):
            calls.append(x.shape[0])
            return objective.mi_terms(x, config, generator)

        stats = train_epoch(objective, disc, opt, d_opt, 24, lambda idx: X[idx], DIMConfig(), 8,
                            seeded_generator(9), forward=forward if wrap else None)
        return stats, _params(objective), calls

    (s1, p1, calls), (s2, p2, none) = run(True), run(False)
    assert calls == [8, 8, 8] and none == []
    assert s1 == s2 and _same(p1, p2)
