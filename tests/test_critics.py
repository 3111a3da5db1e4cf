"""Tests for skdim.nn.critics.

The fast critics compute all ``B x B`` pair scores with one matrix product or
one broadcast; each is compared with a naive re-computation (explicit loops,
explicit concatenations) on small inputs. Tolerances are float32 rounding of
sums over a few hundred terms.
"""

from __future__ import annotations

import pytest
import torch

from skdim.nn.critics import (
    ConcatLocalCritic,
    DotLocalCritic,
    GlobalCritic,
    LocalResidualEmbedding,
    PriorDiscriminator,
    ResidualEmbedding,
    flatten_locations,
)

TOL = dict(rtol=1e-4, atol=1e-5)


def _seeded(factory, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _inputs(b=5, c=6, spatial=(3, 4), d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, *spatial, generator=g), torch.randn(b, d, generator=g)


# ------------------------------------------------------------------ shapes


@pytest.mark.parametrize("spatial", [(3, 4), (7,), (1, 1)])
def test_dot_local_critic_shapes(spatial):
    local, code = _inputs(spatial=spatial)
    critic = _seeded(lambda: DotLocalCritic(6, 4, units=8))
    n_loc = int(torch.tensor(spatial).prod())
    assert critic.scores(local, code).shape == (5, 5, n_loc)
    pos, neg = critic(local, code)
    assert pos.shape == (5, n_loc) and neg.shape == (5, 4 * n_loc)


@pytest.mark.parametrize("n_shifts, b, expected_others", [(8, 5, 4), (2, 5, 2), (None, 5, 4), (8, 12, 8), (None, 2, 1)])
def test_concat_local_critic_shapes(n_shifts, b, expected_others):
    local, code = _inputs(b=b)
    critic = _seeded(lambda: ConcatLocalCritic(6, 4, units=8, n_shifts=n_shifts))
    pos, neg = critic(local, code)
    assert pos.shape == (b, 12) and neg.shape == (b, expected_others * 12)


def test_global_critic_shapes():
    conv, code = _inputs(spatial=(2, 2))
    critic = _seeded(lambda: GlobalCritic(6 * 4, 4, units=8))
    assert critic.scores(conv, code).shape == (5, 5, 1)
    pos, neg = critic(conv, code)
    assert pos.shape == (5, 1) and neg.shape == (5, 4)


def test_prior_discriminator_architecture():
    disc = _seeded(lambda: PriorDiscriminator(64))
    linears = [m for m in disc.modules() if isinstance(m, torch.nn.Linear)]
    # Paper table 10: 64 -> 1000 -> 200 -> 1 with ReLU.
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 1000), (1000, 200), (200, 1)]
    assert disc(torch.zeros(7, 64)).shape == (7,)


def test_flatten_locations():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    flat = flatten_locations(x)
    assert flat.shape == (2, 4, 3)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(flat[b, i * 2 + j], x[b, :, i, j])


# ------------------------------------------------------------- naive references


def _randomise_running_stats(module):
    with torch.no_grad():  # non-trivial running statistics for eval mode
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return module


def _linear_weight(layer):
    """Weight of a Linear or 1x1 convolution as an (out, in) matrix."""
    return layer.weight.reshape(layer.weight.shape[0], -1)


def _residual_reference(emb, x, training: bool):
    """``LayerNorm(W2 relu(BN(W1 x)) + Ws x)`` on rows ``x`` of shape (n, C)."""
    h = x @ _linear_weight(emb.first).T + emb.first.bias
    bn = emb.norm1
    h = torch.nn.functional.batch_norm(
        h, None if training else bn.running_mean, None if training else bn.running_var,
        bn.weight, bn.bias, training=training, eps=bn.eps,
    )
    out = torch.relu(h) @ _linear_weight(emb.second).T + emb.second.bias
    out = out + x @ _linear_weight(emb.shortcut).T + emb.shortcut.bias
    return emb.out_norm(out)


@pytest.mark.parametrize("training", [False, True])
def test_residual_embedding_formula(training):
    emb = _randomise_running_stats(_seeded(lambda: ResidualEmbedding(5, 7))).train(training)
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(1))
    ref = _residual_reference(emb, x.reshape(-1, 5), training).reshape(4, 3, 7)
    torch.testing.assert_close(emb(x), ref, **TOL)


@pytest.mark.parametrize("training", [False, True])
def test_local_residual_embedding_is_the_same_block_at_every_location(training):
    """The 1x1-conv embedding of a map equals the row embedding of its
    (B * L, C) location matrix; in training, BatchNorm pools all B * L rows."""
    emb = _randomise_running_stats(_seeded(lambda: LocalResidualEmbedding(6, 7))).train(training)
    local, _ = _inputs()
    out = emb(local)
    assert out.shape == (5, 12, 7)
    ref = _residual_reference(emb, flatten_locations(local).reshape(-1, 6), training)
    torch.testing.assert_close(out, ref.reshape(5, 12, 7), **TOL)


def test_dot_local_critic_equals_explicit_dot_products():
    local, code = _inputs()
    critic = _seeded(lambda: DotLocalCritic(6, 4, units=8))
    scores = critic.scores(local, code)
    # Same batch, so BatchNorm sees the same statistics as in the critic.
    g = critic.global_embed(code)  # (B, U)
    loc = critic.local_embed(local)  # (B, L, U)
    b, n_loc = local.shape[0], 12
    expected = torch.empty(b, b, n_loc)
    for i in range(b):
        for j in range(b):
            for l in range(n_loc):
                expected[i, j, l] = torch.dot(g[i], loc[j, l])
    torch.testing.assert_close(scores, expected, **TOL)
    pos, neg = critic(local, code)
    for i in range(b):
        torch.testing.assert_close(pos[i], expected[i, i], **TOL)
        others = torch.cat([expected[i, j] for j in range(b) if j != i])
        torch.testing.assert_close(neg[i], others, **TOL)


def _concat_mlp_global(critic: GlobalCritic, conv_flat, code):
    """The paper's form: one linear layer on [conv map ; code], then 512-512-1."""
    w = torch.cat([critic.conv_in.weight, critic.code_in.weight], dim=1)
    h = torch.relu(torch.cat([conv_flat, code]) @ w.T + critic.code_in.bias)
    return critic.out(torch.relu(critic.hidden(h)))


def test_global_critic_equals_mlp_on_explicit_concatenations():
    conv, code = _inputs(spatial=(2, 2), seed=2)
    critic = _seeded(lambda: GlobalCritic(24, 4, units=8))
    scores = critic.scores(conv, code)
    flat = conv.flatten(1)
    for i in range(5):
        for j in range(5):
            torch.testing.assert_close(scores[i, j], _concat_mlp_global(critic, flat[j], code[i]), **TOL)


def _concat_mlp_local(critic: ConcatLocalCritic, feature, code):
    w = torch.cat([critic.local_in.weight, critic.code_in.weight], dim=1)
    h = torch.relu(torch.cat([feature, code]) @ w.T + critic.code_in.bias)
    return critic.out(torch.relu(critic.hidden(h))).squeeze(-1)


@pytest.mark.parametrize("n_shifts", [2, None])
def test_concat_local_critic_equals_explicit_concatenation(n_shifts):
    local, code = _inputs(seed=3)
    critic = _seeded(lambda: ConcatLocalCritic(6, 4, units=8, n_shifts=n_shifts))
    pos, neg = critic(local, code)
    feats = flatten_locations(local)  # (B, L, C)
    b, n_loc = 5, 12
    n_other = b - 1 if n_shifts is None else n_shifts
    for i in range(b):
        for l in range(n_loc):
            torch.testing.assert_close(pos[i, l], _concat_mlp_local(critic, feats[i, l], code[i]), **TOL)
        # Negatives: code i against images i+1, ..., i+n_other (cyclically),
        # every location of each, never image i itself.
        for s in range(1, n_other + 1):
            j = (i + s) % b
            assert j != i
            for l in range(n_loc):
                torch.testing.assert_close(
                    neg[i, (s - 1) * n_loc + l], _concat_mlp_local(critic, feats[j, l], code[i]), **TOL
                )


# ------------------------------------------------------------ row independence


def _perturb_row(x, k):
    x = x.clone()
    x[k] += 3.0
    return x


@pytest.mark.parametrize("kind", ["dot", "concat", "global"])
def test_pair_scores_do_not_depend_on_other_rows(kind):
    """In eval mode the score of pair (i, j) reads only code i and features j."""
    local, code = _inputs(seed=4)
    if kind == "dot":
        critic = _seeded(lambda: DotLocalCritic(6, 4, units=8)).eval()
        score = critic.scores
    elif kind == "global":
        critic = _seeded(lambda: GlobalCritic(72, 4, units=8)).eval()
        score = critic.scores
    else:
        critic = _seeded(lambda: ConcatLocalCritic(6, 4, units=8, n_shifts=None)).eval()

        def score(lm, c):  # rebuild the (B, B, L) table from (pos, neg)
            pos, neg = critic(lm, c)
            b = lm.shape[0]
            table = torch.empty(b, b, pos.shape[1])
            negs = neg.reshape(b, b - 1, -1)
            for i in range(b):
                table[i, i] = pos[i]
                for s in range(1, b):
                    table[i, (i + s) % b] = negs[i, s - 1]
            return table

    with torch.no_grad():
        base = score(local, code)
        k = 2
        moved = score(_perturb_row(local, k), _perturb_row(code, k))
    keep = [i for i in range(5) if i != k]
    torch.testing.assert_close(moved[keep][:, keep], base[keep][:, keep], **TOL)
    assert not torch.allclose(moved[k], base[k])  # the perturbed row did change
    # A sub-batch gives the same scores as the corresponding block.
    with torch.no_grad():
        sub = score(local[:3], code[:3])
    torch.testing.assert_close(sub, base[:3, :3], **TOL)


def test_critics_backpropagate_to_both_inputs():
    local, code = _inputs(seed=5)
    local.requires_grad_(True)
    code.requires_grad_(True)
    critic = _seeded(lambda: DotLocalCritic(6, 4, units=8))
    pos, neg = critic(local, code)
    (pos.sum() - neg.mean()).backward()
    assert local.grad.abs().sum() > 0 and code.grad.abs().sum() > 0


def test_pointwise_gemm_backward_is_exact():
    # The GEMM backward that bfloat16 CPU training uses for 1x1 convolutions
    # must give the convolution's gradients: checked in float64.
    from skdim.nn.critics import _PointwiseGemm

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, 2, dtype=torch.double, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(6, 5, 1, 1, dtype=torch.double, generator=gen, requires_grad=True)
    b = torch.randn(6, dtype=torch.double, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(_PointwiseGemm.apply, (x, w, b))
    assert torch.autograd.gradcheck(_PointwiseGemm.apply, (x, w, None))


def test_local_embedding_bfloat16_gradients_match_plain_convolutions(monkeypatch):
    import skdim.nn.critics as critics

    module = critics.LocalResidualEmbedding(16, 32)
    feature_map = torch.randn(8, 16, 4, 4, generator=torch.Generator().manual_seed(1))

    def grads():
        module.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(feature_map)
        (out.float() ** 2).sum().backward()
        return out.float().detach(), [p.grad.clone() for p in module.parameters()]

    out_gemm, g_gemm = grads()
    monkeypatch.setattr(critics, "_pointwise_conv", lambda conv, x: conv(x))
    out_conv, g_conv = grads()
    torch.testing.assert_close(out_gemm, out_conv)
    for a, b in zip(g_gemm, g_conv):
        # Same products in bfloat16, possibly summed in another order.
        assert float((a - b).norm() / b.norm()) < 1e-2
