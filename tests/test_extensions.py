"""The paper's training extensions through DIMObjective, train_step and
DeepInfoMax.fit: occlusion, coordinate prediction, multiple globals and
augmentation (paper section 4.3, table 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skdim import DeepInfoMax
from skdim.nn.objective import DIMConfig, DIMObjective, frozen_batchnorm_stats
from skdim.nn.seeding import build_seeded
from skdim.nn.trainer import DIMTrainer
from skdim.nn.bounds import mi_lower_bound
from skdim.nn.crops import CropEncoder
from skdim.nn.encoders import build_encoder, feature_shapes
from skdim.nn.multiple_globals import block_mask
from skdim.nn.augment import augment_batch
from skdim.nn.occlusion import occlusion_mask

EXTENSIONS_OFF = dict(
    occlusion=False,
    coordinate_weight=0.0,
    relative_coordinate_weight=0.0,
    multiple_globals=False,
    augment=False,
)
SMALL = dict(n_components=3, batch_size=16, critic_units=32, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def digits(digits_images):
    return digits_images[:48].astype(np.float32)


@pytest.fixture(scope="module")
def plain_codes(digits):
    return DeepInfoMax(max_epochs=1, **SMALL).fit(digits).transform(digits)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("params", [{}, dict(alpha=0.5, beta=0.1, gamma=0.0, mi_estimator="infonce",
                                             n_negatives=20)])
def test_extensions_off_is_the_plain_method(digits, params):
    """Switching every extension off explicitly draws the same random numbers
    and computes exactly the default run (the recorded codes of the plain
    method are checked by tests/test_golden.py)."""
    plain = DeepInfoMax(max_epochs=2, **SMALL, **params).fit(digits)
    off = DeepInfoMax(max_epochs=2, **SMALL, **params, **EXTENSIONS_OFF).fit(digits)
    np.testing.assert_array_equal(off.transform(digits[:6]), plain.transform(digits[:6]))
    assert set(plain.history_[-1]) <= {"epoch", "local_mi", "global_mi", "prior", "discriminator", "loss", "precision"}


EXTENSION_CASES = {
    "occlusion": (dict(occlusion=True), []),
    "coordinate": (dict(coordinate_weight=1.0), ["coordinate"]),
    "relative_coordinate": (dict(relative_coordinate_weight=0.5), ["relative_coordinate"]),
    "multiple_globals": (dict(multiple_globals=True), ["multiple_globals_mi"]),
    "augment": (dict(augment=True), []),
    "augment_strong": (dict(augment="strong"), []),
    "cross_view": (dict(augment=True, cross_view=True, alpha=0.5), ["global_mi"]),
}


@pytest.mark.parametrize("case", sorted(EXTENSION_CASES))
def test_each_extension_runs_through_fit(digits, plain_codes, case):
    params, keys = EXTENSION_CASES[case]
    dim = DeepInfoMax(max_epochs=1, **SMALL, **params).fit(digits)
    codes = dim.transform(digits)
    assert codes.shape == (48, 3) and codes.dtype == np.float32
    hist = dim.history_[-1]
    for key in ["local_mi", "loss", *keys]:
        assert np.isfinite(hist[key]), key
    # The extension changes training (or, for multiple globals, the encoder).
    assert np.abs(codes - plain_codes).max() > 1e-4
    # Seeded: the same random_state gives the same codes.
    again = DeepInfoMax(max_epochs=1, **SMALL, **params).fit(digits).transform(digits)
    np.testing.assert_array_equal(codes, again)


def test_all_extensions_together_on_signals():
    X = np.random.default_rng(0).normal(size=(24, 40)).astype(np.float32)
    dim = DeepInfoMax(
        max_epochs=1, **{**SMALL, "batch_size": 8}, occlusion=True, coordinate_weight=0.5,
        relative_coordinate_weight=0.5, augment=True, multiple_globals=True,
    ).fit(X)
    assert dim.transform(X).shape == (24, 3)
    assert {"coordinate", "relative_coordinate", "multiple_globals_mi"} <= set(dim.history_[-1])
    assert isinstance(dim.encoder_, CropEncoder)


def test_parameters_are_sklearn_parameters():
    params = DeepInfoMax().get_params()
    for name, default in EXTENSIONS_OFF.items():
        assert params[name] == default and type(params[name]) is type(default)
    cloned = clone(DeepInfoMax(occlusion=True, coordinate_weight=0.3))
    assert cloned.occlusion is True and cloned.coordinate_weight == 0.3


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(occlusion="yes"), "'occlusion' parameter of DeepInfoMax must be an instance of 'bool'"),
        (dict(augment=1), "'augment' parameter of DeepInfoMax must be an instance of 'bool'"),
        (dict(multiple_globals=None), "'multiple_globals' parameter of DeepInfoMax must be"),
        (dict(coordinate_weight=-1.0), r"'coordinate_weight' parameter of DeepInfoMax must be a float in the range \[0.0, inf\)"),
        (dict(relative_coordinate_weight=np.inf), "'relative_coordinate_weight' parameter of DeepInfoMax must be"),
        (dict(multiple_globals=True, encoder="conv"), "needs the strided-crop encoder"),
        (dict(multiple_globals=True, beta=0.0, alpha=1.0), "beta must be > 0"),
        (dict(encoder="crops", local_layer=1), "local_layer must be None"),
        (dict(encoder="cropz"), "'encoder' parameter of DeepInfoMax must be a str among"),
        (dict(augment="heavy"), "'augment' parameter of DeepInfoMax must be .* a str among"),
        (dict(cross_view=True), "cross_view=True .* needs augment"),
        (dict(cross_view=True, augment=True, occlusion=True), "turn off occlusion"),
    ],
)
def test_invalid_parameters(digits, params, match):
    with pytest.raises(ValueError, match=match):
        DeepInfoMax(max_epochs=1, **{**SMALL, **params}).fit(digits)


def test_crops_encoder_by_name(digits):
    dim = DeepInfoMax(max_epochs=1, encoder="crops", output_layer="conv", **SMALL).fit(digits)
    assert isinstance(dim.encoder_, CropEncoder)
    assert dim.transform(digits[:4]).shape == (4, 256 * 4 * 4)


def test_occlusion_needs_room(digits):
    X = np.random.default_rng(0).normal(size=(8, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 2 positions"):
        DeepInfoMax(max_epochs=1, occlusion=True, **{**SMALL, "batch_size": 4}).fit(X)


def test_warm_start_cannot_switch_on_a_predictor_that_was_not_built(digits):
    dim = DeepInfoMax(max_epochs=1, warm_start=True, **SMALL).fit(digits)
    dim.set_params(coordinate_weight=1.0)
    with pytest.raises(ValueError, match="coordinate_weight is on, but this model was built without"):
        dim.fit(digits)
    assert dim.n_iter_ == 1


# ---------------------------------------------------------------------------
# Objective-level checks: what each extension feeds to which module.


class _Spy(torch.nn.Module):
    """Records the inputs of every encoder pass (and of summarize)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []
        self.summarized: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.inner(x)

    def summarize(self, local):
        self.summarized.append(local.detach().clone())
        return self.inner.summarize(local)


def _objective(inner, shape, **kwargs):
    spy = _Spy(inner)
    shapes = feature_shapes(inner, inner.in_channels, shape)
    kwargs.setdefault("use_local", True)
    kwargs.setdefault("use_global", False)
    return build_seeded(1, lambda: DIMObjective(spy, shapes, 4, critic_units=16, **kwargs)), spy


def train_step(objective, x, config, generator):
    """One training step of a bare objective (no discriminator)."""
    return DIMTrainer(objective, None, config, learning_rate=1e-2).train_step(x, generator)


def _conv_encoder(shape=(16, 16)):
    return build_seeded(0, lambda: build_encoder("conv", 1, shape, 4, local_layer=-2))


def test_occlusion_feeds_the_critics_an_occluded_code():
    objective, spy = _objective(_conv_encoder(), (16, 16), use_global=True)
    x = torch.randn(6, 1, 16, 16, generator=_g(1))
    config = DIMConfig(occlusion=True, alpha=1.0)
    code, terms = objective(x, config, _g(7))
    assert len(spy.inputs) == 2 and torch.equal(spy.inputs[0], x)
    mask = occlusion_mask(6, (16, 16), _g(7))  # the first draws of the step
    torch.testing.assert_close(spy.inputs[1], x * mask[:, None])
    # Returned code (for the prior and transform) is the full input's.
    full = objective.encoder.inner(x)
    occluded = objective.encoder.inner(spy.inputs[1])
    torch.testing.assert_close(code, full.y)
    # Both critics score full-input features against the occluded code.
    for name, critic, feats in (
        ("local_mi", objective.local_critic, full.local),
        ("global_mi", objective.global_critic, full.conv),
    ):
        expected = mi_lower_bound(*critic(feats, occluded.y), "jsd")
        torch.testing.assert_close(terms[name], expected)


def test_occluded_pass_leaves_batchnorm_running_stats_alone():
    x = torch.randn(8, 1, 16, 16, generator=_g(2))
    stats = []
    for occlusion in (False, True):
        objective, _ = _objective(_conv_encoder(), (16, 16))
        train_step(objective, x, DIMConfig(occlusion=occlusion, gamma=0.0), _g(3))
        stats.append({k: v.clone() for k, v in objective.encoder.state_dict().items() if "running" in k or "num_batches" in k})
    for k in stats[0]:
        assert torch.equal(stats[0][k], stats[1][k]), k
    # ... while the occluded pass itself normalises with its own batch statistics.
    enc = _conv_encoder().train()
    with frozen_batchnorm_stats(enc):
        a = enc(x * 0.5).y
    b = enc(x * 0.5).y
    torch.testing.assert_close(a, b)


def test_multiple_globals_scores_block_codes_against_the_full_map():
    inner = build_seeded(0, lambda: CropEncoder(1, (16, 16), 4))
    objective, spy = _objective(inner, (16, 16), multiple_globals=True)
    x = torch.randn(5, 1, 16, 16, generator=_g(4))
    config = DIMConfig(multiple_globals=True)
    _, terms = objective(x, config, _g(9))
    assert set(terms) == {"local_mi", "multiple_globals_mi"}
    (masked,) = spy.summarized
    full = inner.local_features(x)
    # Every image's block code saw exactly one 3x3 block inside the 7x7 grid.
    seen = (masked != 0).any(dim=1)
    assert torch.equal(seen.sum(dim=(1, 2)), torch.full((5,), 9))
    for b in range(5):
        rows, cols = torch.nonzero(seen[b], as_tuple=True)
        i, j = int(rows.min()), int(cols.min())
        assert torch.equal(seen[b], block_mask(torch.tensor([[i, j]]), (7, 7))[0])
        torch.testing.assert_close(masked[b][:, seen[b]], full[b][:, seen[b]])
    # The shared critic scores the block codes against the full local map.
    block_y = inner.summarize(masked).y
    expected = mi_lower_bound(*objective.multi_global_critic(full, block_y), "jsd")
    torch.testing.assert_close(terms["multiple_globals_mi"], expected)


def test_multiple_globals_needs_a_summarizing_encoder():
    with pytest.raises(ValueError, match="summarize"):
        shapes = feature_shapes(_conv_encoder(), 1, (16, 16))
        DIMObjective(_conv_encoder(), shapes, 4, use_local=True, use_global=False, multiple_globals=True)


@pytest.mark.parametrize("relative", [False, True])
def test_coordinate_predictor_is_trained_jointly_with_the_encoder(relative):
    # With the coordinate term alone, one step moves both the predictor and
    # the encoder: the predictor's parameters are in the main optimizer.
    kwargs = {"relative_coordinates" if relative else "coordinates": True}
    objective, _ = _objective(_conv_encoder(), (16, 16), use_local=False, **kwargs)
    predictor = objective.relative_predictor if relative else objective.coordinate_predictor
    assert predictor is not None and predictor.n_classes == ((15, 15) if relative else (8, 8))
    trainer = DIMTrainer(objective, None, DIMConfig(beta=0.0, gamma=0.0), learning_rate=1e-2)
    opt = trainer.optimizer
    assert {id(p) for p in predictor.parameters()} <= {id(p) for g in opt.param_groups for p in g["params"]}
    before_pred = [p.clone() for p in predictor.parameters()]
    before_enc = [p.clone() for p in objective.encoder.parameters()]
    name = "relative_coordinate" if relative else "coordinate"
    weight = {f"{name}_weight": 1.0}
    config = DIMConfig(beta=0.0, gamma=0.0, **weight)
    x = torch.randn(6, 1, 16, 16, generator=_g(5))
    trainer.config = config
    terms = trainer.train_step(x, _g(6))
    assert set(terms) == {name, "loss"}
    torch.testing.assert_close(terms["loss"], terms[name])
    assert any(not torch.equal(a, b) for a, b in zip(before_pred, predictor.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_enc, objective.encoder.parameters()))


def test_augment_happens_before_encoding():
    objective, spy = _objective(_conv_encoder(), (16, 16))
    x = torch.randn(6, 1, 16, 16, generator=_g(8))
    train_step(objective, x, DIMConfig(augment=True, gamma=0.0), _g(0))
    (seen,) = spy.inputs
    assert seen.shape == x.shape and not torch.equal(seen, x)
    torch.testing.assert_close(seen, augment_batch(x, _g(0)))


def test_cross_view_scores_each_view_code_against_the_other_views_features():
    objective, spy = _objective(_conv_encoder(), (16, 16), use_global=True)
    x = torch.randn(12, 1, 16, 16, generator=_g(4))  # 6 inputs, two views each
    config = DIMConfig(augment=True, cross_view=True, alpha=1.0, mi_estimator="infonce")
    code, terms = objective(x, config, _g(0))
    assert len(spy.inputs) == 1 and torch.equal(spy.inputs[0], x)  # one joint pass
    out = objective.encoder.inner(x)
    torch.testing.assert_close(code, out.y)  # all 2B codes, for the prior
    y1, y2 = out.y.chunk(2)
    for name, critic, feats in (("local_mi", objective.local_critic, out.local),
                                ("global_mi", objective.global_critic, out.conv)):
        f1, f2 = feats.chunk(2)
        expected = 0.5 * (mi_lower_bound(*critic(f2, y1), "infonce")
                          + mi_lower_bound(*critic(f1, y2), "infonce"))
        torch.testing.assert_close(terms[name], expected)
    with pytest.raises(ValueError, match="two views per input"):
        objective(x[:5], config, _g(0))


@pytest.mark.parametrize("kind", [True, "strong"])
def test_cross_view_step_encodes_two_independent_views(kind):
    objective, spy = _objective(_conv_encoder(), (16, 16))
    x = torch.randn(6, 1, 16, 16, generator=_g(8))
    trainer = DIMTrainer(objective, None, DIMConfig(augment=kind, cross_view=True, gamma=0.0),
                         learning_rate=1e-2)
    trainer.train_step(x, _g(0))
    (seen,) = spy.inputs
    assert seen.shape == (12, 1, 16, 16)
    gen = _g(0)
    name = "crop_flip" if kind is True else kind
    first, second = augment_batch(x, gen, name), augment_batch(x, gen, name)
    torch.testing.assert_close(seen[:6], first)
    torch.testing.assert_close(seen[6:], second)
    assert not torch.allclose(first, second)
    assert trainer.samples == 6  # inputs seen, not views

