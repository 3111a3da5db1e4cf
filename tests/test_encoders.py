import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from skdim.nn.encoders import (
    ENCODERS,
    EncoderOutput,
    build_encoder,
    conv_plan,
    default_local_layer,
    feature_shapes,
    validate_encoder_output,
)


def _inputs(batch, channels, shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *shape, generator=gen)


def _shapes(out):
    return [tuple(t.shape[1:]) for t in out]


@pytest.fixture(scope="module")
def alexnet():
    return build_encoder("alexnet", 3, (64, 64), 64)


# ---------------------------------------------------------------------------
# Paper encoders: exact layer shapes from the paper / DESIGN.md


@pytest.mark.parametrize(
    "local_layer, local_shape",
    [(0, (64, 16, 16)), (1, (128, 8, 8)), (2, (256, 4, 4)), (None, (128, 8, 8))],
)
def test_dcgan_layer_shapes(local_layer, local_shape):
    enc = build_encoder("dcgan", 3, (32, 32), 64, local_layer=local_layer)
    out = enc(_inputs(2, 3, (32, 32)))
    assert isinstance(out, EncoderOutput)
    assert _shapes(out) == [local_shape, (256, 4, 4), (1024,), (64,)]


def test_alexnet_layer_shapes(alexnet):
    alexnet.eval()
    x = _inputs(2, 3, (64, 64))
    with torch.no_grad():
        out = alexnet(x)
        # Every block's output: pools after blocks 0, 1 and 4 (64 -> 31 -> 15 -> 7).
        h, block_shapes = x, []
        for block in alexnet.blocks:
            h = block(h)
            block_shapes.append(tuple(h.shape[1:]))
    assert _shapes(out) == [(384, 15, 15), (192, 7, 7), (4096,), (64,)]
    assert block_shapes == [(96, 31, 31), (192, 15, 15), (384, 15, 15), (384, 15, 15), (192, 7, 7)]
    linears = [m for m in alexnet.fc if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(192 * 7 * 7, 4096), (4096, 4096)]


def test_mnist_layer_shapes():
    enc = build_encoder("mnist", 1, (28, 28), 64)
    assert _shapes(enc(_inputs(2, 1, (28, 28)))) == [(128, 7, 7), (128, 7, 7), (1024,), (64,)]
    enc = build_encoder("mnist", 1, (28, 28), 64, local_layer=0)
    assert _shapes(enc(_inputs(2, 1, (28, 28))))[0] == (64, 14, 14)


@pytest.mark.parametrize(
    "shape, name, kernel",
    [((32, 32), "dcgan", (4, 4)), ((64, 64), "alexnet", (3, 3)), ((28, 28), "mnist", (5, 5))],
)
def test_auto_picks_paper_encoders(shape, name, kernel):
    auto = build_encoder("auto", 3, shape, 8)
    ref = build_encoder(name, 3, shape, 8)
    assert str(auto) == str(ref)
    assert auto.blocks[0][0].kernel_size == kernel


def test_auto_picks_size_agnostic_encoders():
    assert str(build_encoder("auto", 1, (8, 8), 4)) == str(build_encoder("conv", 1, (8, 8), 4))
    assert str(build_encoder("auto", 1, (7,), 4)) == str(build_encoder("conv1d", 1, (7,), 4))
    assert isinstance(build_encoder("auto", 1, (7,), 4).blocks[0][0], nn.Conv1d)


# ---------------------------------------------------------------------------
# Size-agnostic encoders


@pytest.mark.parametrize(
    "shape, expected",
    [
        # (local (next-to-last block), conv (last block), fc width)
        ((1, 1), [(128, 1, 1), (256, 1, 1), (256,)]),
        ((8, 8), [(128, 4, 4), (256, 4, 4), (1024,)]),
        ((28, 28), [(256, 7, 7), (512, 3, 3), (1024,)]),  # 28 -> 28, 14, 7, 3
        ((32, 32), [(128, 8, 8), (256, 4, 4), (1024,)]),
        ((64, 64), [(256, 8, 8), (512, 4, 4), (1024,)]),
        ((96, 96), [(512, 6, 6), (512, 3, 3), (1024,)]),
        ((8, 100), [(512, 4, 6), (512, 4, 3), (1024,)]),
        ((3, 5), [(128, 3, 2), (256, 3, 2), (1024,)]),
        ((1, 7), [(128, 1, 3), (256, 1, 3), (768,)]),
    ],
)
def test_conv_shapes(shape, expected):
    enc = build_encoder("conv", 3, shape, 5, local_layer=-2)
    out = enc(_inputs(2, 3, shape))
    assert _shapes(out) == [*expected, (5,)]
    assert all(t.dtype == torch.float32 for t in out)


def _receptive_extent(encoder, block, shape):
    """Largest per-axis extent of the input pixels that one central location of ``block`` sees.

    Measured, not computed: the gradient of that location's channels with
    respect to the input is nonzero exactly on its receptive field.
    """
    encoder.eval()
    x = torch.randn(1, 1, *shape, requires_grad=True)
    h = x
    for b in encoder.blocks[: block + 1]:
        h = b(h)
    centre = tuple(s // 2 for s in h.shape[2:])
    h[(0, slice(None), *centre)].sum().backward()
    nonzero = torch.nonzero(x.grad[0, 0])
    return [int(nonzero[:, a].max() - nonzero[:, a].min()) + 1 for a in range(len(shape))]


@pytest.mark.parametrize("shape", [(8, 8), (16, 16), (28, 28), (32, 32), (64, 64), (96, 96),
                                   (128,), (96,), (20,)])
def test_default_local_layer_sees_at_most_half_of_the_input(shape):
    # Local DIM needs features of parts of the input: the default local
    # block is the deepest up to next-to-last whose field is <= half a side.
    torch.manual_seed(0)
    name = "conv1d" if len(shape) == 1 else "conv"
    enc = build_encoder(name, 1, shape, 4)
    local = enc.local_index
    assert local <= len(enc.blocks) - 2
    if local > 0 or all(2 * e <= s for e, s in zip(_receptive_extent(enc, 0, shape), shape)):
        assert all(2 * e <= s for e, s in zip(_receptive_extent(enc, local, shape), shape))
    if local < len(enc.blocks) - 2:
        assert any(2 * e > s for e, s in zip(_receptive_extent(enc, local + 1, shape), shape))


def test_default_local_layer_for_digits_and_cifar():
    digits = build_encoder("conv", 1, (8, 8), 4)
    assert digits.local_index == 0
    # The stem keeps 8x8: the local map has 64 positions, each seeing 3x3 pixels.
    assert tuple(digits(_inputs(2, 1, (8, 8))).local.shape[2:]) == (8, 8)
    assert _receptive_extent(digits, 0, (8, 8)) == [3, 3]
    assert build_encoder("conv", 3, (32, 32), 4).local_index == 1  # = "dcgan"'s block 1
    assert build_encoder("conv1d", 1, (128,), 4).local_index == 3  # next-to-last of 5


def test_default_local_layer_of_a_given_plan():
    halve = ((4,), (2,), (1,))
    # Three halvings of 24: fields 4, 10, 22 pixels; block 1 is the deepest that sees <= 12.
    assert default_local_layer((24,), plan=[halve] * 3) == 1
    assert default_local_layer((24,), plan=None) == default_local_layer((24,)) == 2  # 24, 12, 6, 3
    halve2 = ((4, 4), (2, 2), (1, 1))
    assert default_local_layer((8, 8), plan=[halve2] * 3) == 0


@pytest.mark.parametrize(
    "length, expected",
    [
        (1, [(128, 1), (256, 1), (256,)]),
        (3, [(128, 3), (256, 3), (768,)]),
        (10, [(128, 5), (256, 2), (512,)]),  # 10 -> 10, 5, 2
        (100, [(512, 6), (512, 3), (1024,)]),
    ],
)
def test_conv1d_shapes(length, expected):
    enc = build_encoder("conv1d", 2, (length,), 1, local_layer=-2)
    out = enc(_inputs(2, 2, (length,)))
    assert _shapes(out) == [*expected, (1,)]


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (8, 8), (1,), (4,)])
def test_tiny_inputs_train_and_backpropagate(shape):
    # check_estimator feeds tiny arrays in training mode; every parameter must get a gradient.
    enc = build_encoder("auto", 1, shape, 1).train()
    out = enc(_inputs(3, 1, shape))
    (out.local.sum() + out.conv.sum() + out.fc.sum() + out.y.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


@settings(max_examples=200, deadline=None)
@given(sides=st.lists(st.integers(1, 5000), min_size=1, max_size=2))
def test_conv_plan_kernels_fit_and_final_map_is_small(sides):
    plan = conv_plan(tuple(sides))
    assert len(plan) >= 3
    current = list(sides)
    for kernel, stride, padding in plan:
        assert all(k <= s + 2 * p for k, s, p in zip(kernel, current, padding))
        current = [(s + 2 * p - k) // st + 1 for s, k, st, p in zip(current, kernel, stride, padding)]
        assert min(current) >= 1
    # Every axis ends at 4 or less, and an axis is never shrunk below 2 unless it started there.
    assert all(min(s, 2) <= c <= 4 for s, c in zip(sides, current))
    # The first block keeps the full resolution of axes shorter than 32 and halves the others.
    assert plan[0][1] == tuple(1 if s < 32 else 2 for s in sides)


# ---------------------------------------------------------------------------
# local_layer and input validation


def test_local_layer_negative_index_matches_positive():
    enc = build_encoder("conv", 1, (16, 16), 4, local_layer=-3).eval()
    ref = build_encoder("conv", 1, (16, 16), 4, local_layer=0).eval()
    ref.load_state_dict(enc.state_dict())
    x = _inputs(2, 1, (16, 16))
    with torch.no_grad():
        assert torch.equal(enc(x).local, ref(x).local)
        last = build_encoder("conv", 1, (16, 16), 4, local_layer=-1).eval()
        last.load_state_dict(enc.state_dict())
        out = last(x)
    assert torch.equal(out.local, out.conv)


@pytest.mark.parametrize("name, shape, n_blocks", [("dcgan", (32, 32), 3), ("conv", (96, 96), 5), ("conv1d", (1,), 3)])
@pytest.mark.parametrize("offset", [0, 1])
def test_local_layer_out_of_range(name, shape, n_blocks, offset):
    valid = f"{-n_blocks} to {n_blocks - 1}"
    with pytest.raises(ValueError, match=valid):
        build_encoder(name, 1 if name != "dcgan" else 3, shape, 4, local_layer=n_blocks + offset)
    with pytest.raises(ValueError, match=valid):
        build_encoder(name, 1 if name != "dcgan" else 3, shape, 4, local_layer=-n_blocks - 1 - offset)


@pytest.mark.parametrize("bad", [1.0, "1", True])
def test_local_layer_type(bad):
    with pytest.raises(TypeError, match="local_layer"):
        build_encoder("dcgan", 3, (32, 32), 4, local_layer=bad)


@pytest.mark.parametrize(
    "name, shape, match",
    [
        ("dcgan", (28, 28), r"32x32.*\(28, 28\).*auto"),
        ("dcgan", (32,), "32x32"),
        ("alexnet", (32, 32), "64x64"),
        ("mnist", (32, 32), "28x28"),
        ("conv", (10,), "conv1d"),
        ("conv1d", (8, 8), "'conv'"),
        ("resnet", (32, 32), "Unknown encoder"),
    ],
)
def test_wrong_encoder_for_size(name, shape, match):
    with pytest.raises(ValueError, match=match):
        build_encoder(name, 3, shape, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": ()}, "input_shape"),
        ({"input_shape": (2, 3, 4)}, "input_shape"),
        ({"input_shape": 8}, "input_shape"),
        ({"input_shape": (0, 5)}, "input_shape"),
        ({"input_shape": (8.0, 8)}, "input_shape"),
        ({"in_channels": 0}, "in_channels"),
        ({"n_components": 0}, "n_components"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"name": "auto", "in_channels": 1, "input_shape": (8, 8), "n_components": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_encoder(**args)


def test_numpy_integers_are_accepted():
    # Shapes and grid-searched parameters often arrive as NumPy integers.
    enc = build_encoder("conv", np.int64(1), (np.int64(8), np.int32(8)), np.int64(3), local_layer=np.int64(-1))
    out = enc(_inputs(2, 1, (8, 8)))
    assert _shapes(out) == [(256, 4, 4), (256, 4, 4), (1024,), (3,)]
    assert type(enc.input_shape[0]) is int


def test_name_must_be_a_string():
    with pytest.raises(TypeError, match="factory"):
        build_encoder(lambda *a: None, 1, (8, 8), 2)
    assert ENCODERS == ("auto", "dcgan", "alexnet", "mnist", "conv", "conv1d")


def test_forward_rejects_wrong_input_shape():
    enc = build_encoder("conv", 1, (8, 8), 2)
    with pytest.raises(ValueError, match=r"\(batch, 1, 8, 8\).*\(2, 1, 8, 9\)"):
        enc(torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="built for inputs"):
        enc(torch.zeros(2, 3, 8, 8))


# ---------------------------------------------------------------------------
# Layer semantics


@pytest.mark.parametrize("name, channels, shape", [("dcgan", 3, (32, 32)), ("conv", 1, (8, 8)), ("conv1d", 1, (10,))])
def test_y_is_linear_and_fc_is_post_relu(name, channels, shape):
    enc = build_encoder(name, channels, shape, 8)
    for mode in (True, False):
        enc.train(mode)
        with torch.no_grad():
            out = enc(_inputs(16, channels, shape))
        assert out.y.dtype == torch.float32
        # 128 outputs of a randomly initialised linear layer: all positive has probability ~2^-128.
        assert (out.y < 0).any() and (out.y > 0).any()
        torch.testing.assert_close(out.y, out.fc @ enc.head.weight.T + enc.head.bias)
        assert (out.fc >= 0).all() and (out.conv >= 0).all()


@pytest.mark.parametrize("name, channels, shape", [("dcgan", 3, (32, 32)), ("conv", 1, (5, 9)), ("conv1d", 1, (4,))])
def test_eval_rows_are_independent(name, channels, shape):
    enc = build_encoder(name, channels, shape, 4)
    x = _inputs(6, channels, shape)
    # Give BatchNorm non-trivial running statistics first.
    with torch.no_grad():
        enc.train()(x * 3 + 1)
    enc.eval()
    with torch.no_grad():
        full = enc(x)
        alone = enc(x[2:3])
        other = enc(torch.cat([x[2:3], 10 * x[3:]]))
    for a, b, c in zip(full, alone, other):
        # Float32 round-off only: batched convolutions may sum in a different order.
        torch.testing.assert_close(a[2:3], b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(c[:1], b, rtol=1e-4, atol=1e-5)
    # The check above can fail: in training mode the rows do depend on each other.
    enc.train()
    with torch.no_grad():
        assert not torch.allclose(enc(x).y[2:3], enc(torch.cat([x[2:3], 10 * x[3:]])).y[:1], atol=1e-3)


@pytest.mark.parametrize("name, shape", [("dcgan", (32, 32)), ("mnist", (28, 28)), ("conv", (8, 8)), ("conv1d", (5,))])
def test_conv_and_hidden_linear_layers_have_no_bias(name, shape):
    enc = build_encoder(name, 3, shape, 4)
    convs = [m for m in enc.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert len(convs) == len(enc.blocks) >= 2
    assert all(m.bias is None for m in convs)
    assert all(m.bias is None for m in enc.fc.modules() if isinstance(m, nn.Linear))
    assert isinstance(enc.head, nn.Linear) and enc.head.bias is not None
    n_bn = sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in enc.modules())
    assert n_bn == len(convs) + sum(isinstance(m, nn.Linear) for m in enc.fc.modules())


def test_alexnet_has_no_conv_bias_and_three_pools(alexnet):
    assert all(m.bias is None for m in alexnet.modules() if isinstance(m, nn.Conv2d))
    pools = [i for i, b in enumerate(alexnet.blocks) if isinstance(b[-1], nn.MaxPool2d)]
    assert pools == [0, 1, 4]


def test_encoder_pickles():
    enc = build_encoder("conv", 2, (6, 7), 3).eval()
    clone = pickle.loads(pickle.dumps(enc))
    x = _inputs(3, 2, (6, 7))
    with torch.no_grad():
        for a, b in zip(enc(x), clone(x)):
            assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# feature_shapes and validate_encoder_output


class _UserEncoder(nn.Module):
    """A custom encoder returning a plain tuple, as a user factory would."""

    def __init__(self, in_channels, input_shape, n_components):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * input_shape[0] * input_shape[1], 10)
        self.y = nn.Linear(10, n_components)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        fc = torch.relu(self.fc(h.flatten(1)))
        return h, h, fc, self.y(fc)


def test_feature_shapes_builtin_and_custom():
    enc = build_encoder("dcgan", 3, (32, 32), 64)
    shapes = feature_shapes(enc, 3, (32, 32))
    assert isinstance(shapes, EncoderOutput)
    assert shapes == EncoderOutput(
        torch.Size([2, 128, 8, 8]), torch.Size([2, 256, 4, 4]), torch.Size([2, 1024]), torch.Size([2, 64])
    )
    user = _UserEncoder(2, (5, 4), 3)
    assert feature_shapes(user, 2, (5, 4)) == ((2, 6, 5, 4), (2, 6, 5, 4), (2, 10), (2, 3))


def test_feature_shapes_restores_modes_and_running_stats():
    enc = build_encoder("conv", 1, (8, 8), 2)
    stats = {k: v.clone() for k, v in enc.state_dict().items()}
    enc.train()
    enc.blocks[1].eval()  # a mixed state must come back as it was
    before = [m.training for m in enc.modules()]
    feature_shapes(enc, 1, (8, 8))
    assert [m.training for m in enc.modules()] == before
    for k, v in enc.state_dict().items():
        assert torch.equal(v, stats[k]), k  # eval mode: BatchNorm statistics untouched
    enc.eval()
    feature_shapes(enc, 1, (8, 8))
    assert not any(m.training for m in enc.modules())


def test_feature_shapes_rejects_bad_user_encoder():
    class Bad(nn.Module):
        def forward(self, x):
            return {"y": x.flatten(1)}

    with pytest.raises(TypeError, match="EncoderOutput"):
        feature_shapes(Bad(), 1, (4, 4))


def _good(batch=4):
    return (torch.zeros(batch, 3, 2, 2), torch.zeros(batch, 5, 1), torch.zeros(batch, 7), torch.zeros(batch, 2))


def test_validate_encoder_output_accepts_tuples():
    raw = _good()
    out = validate_encoder_output(raw, 4, n_components=2)
    assert isinstance(out, EncoderOutput)
    assert all(a is b for a, b in zip(out, raw))
    assert validate_encoder_output(list(raw), 4) == out


@pytest.mark.parametrize(
    "out, exc, match",
    [
        (torch.zeros(4, 2), TypeError, "4 tensors; got Tensor"),
        (_good()[:3], TypeError, "length 3"),
        ({"local": 1}, TypeError, "got dict"),
        ((*_good()[:3], [[0.0, 1.0]] * 4), TypeError, "'y' must be a torch.Tensor"),
        ((*_good()[:3], torch.zeros(4, 2, dtype=torch.long)), TypeError, "'y' must be a floating"),
        ((torch.zeros(4, 3), *_good()[1:]), ValueError, "'local'.*rank >= 3"),
        ((_good()[0], torch.zeros(4, 5), *_good()[2:]), ValueError, "'conv'.*rank >= 3"),
        ((*_good()[:2], torch.zeros(4, 7, 1), _good()[3]), ValueError, "'fc'"),
        ((*_good()[:3], torch.zeros(4)), ValueError, "'y'"),
        ((_good()[0], torch.zeros(3, 5, 1), *_good()[2:]), ValueError, "'conv' has leading dimension 3.*4"),
        ((*_good()[:3], torch.zeros(4, 3)), ValueError, "n_components=2"),
    ],
)
def test_validate_encoder_output_rejects(out, exc, match):
    with pytest.raises(exc, match=match):
        validate_encoder_output(out, 4, n_components=2)
