import pytest
import torch

from skdim.nn.seeding import build_seeded
from skdim.nn.crops import CropEncoder, build_crop_encoder, crop_geometry, extract_crops
from skdim.nn.encoders import EncoderOutput


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "side, crop, stride", [(32, 8, 4), (64, 16, 8), (96, 24, 12)]
)
def test_paper_geometry(side, crop, stride):
    # 25% crops with a 12.5% stride: 7 crops per axis (paper section 4.2).
    c, starts = crop_geometry(side)
    assert c == crop and starts == [stride * k for k in range(7)]
    assert starts[-1] + c == side


def test_uneven_sides_cover_the_input():
    for side in (1, 5, 17, 28, 33):
        c, starts = crop_geometry(side)
        assert len(starts) == 7 and starts[0] == 0 and starts[-1] + c == side
        assert starts == sorted(starts)


def test_extract_crops_matches_slicing():
    x = _x(2, 3, 12, 10)
    (ch, sh), (cw, sw) = crop_geometry(12), crop_geometry(10)
    crops = extract_crops(x, (ch, cw), (sh, sw))
    assert crops.shape == (2, 7, 7, 3, ch, cw)
    for i, a in enumerate(sh):
        for j, b in enumerate(sw):
            assert torch.equal(crops[:, i, j], x[:, :, a : a + ch, b : b + cw])
    s = _x(2, 1, 16)
    c, starts = crop_geometry(16)
    crops = extract_crops(s, (c,), (starts,))
    assert crops.shape == (2, 7, 1, c)
    assert torch.equal(crops[:, 3], s[:, :, starts[3] : starts[3] + c])


@pytest.mark.parametrize(
    "channels, shape, local, conv",
    [(3, (32, 32), (128, 7, 7), (256, 4, 4)), (1, (8, 8), (128, 7, 7), (256, 4, 4)), (2, (20,), (128, 7), (256, 4))],
)
def test_output_shapes(channels, shape, local, conv):
    enc = build_crop_encoder(channels, shape, 16)
    out = enc(_x(3, channels, *shape))
    assert isinstance(out, EncoderOutput)
    assert [tuple(t.shape[1:]) for t in out] == [local, conv, (1024,), (16,)]


def test_local_feature_sees_only_its_crop():
    enc = build_seeded(0, lambda: CropEncoder(3, (32, 32), 8)).eval()
    x = _x(1, 3, 32, 32)
    with torch.no_grad():
        base = enc.local_features(x)
        y = x.clone()
        y[:, :, 28:, 28:] += 5.0  # only inside the last crop (24..31); crop 5 ends at 27
        moved = enc.local_features(y)
    changed = (moved - base).abs().amax(dim=1)[0] > 1e-6
    expected = torch.zeros(7, 7, dtype=torch.bool)
    expected[6, 6] = True
    assert torch.equal(changed, expected)


def test_summarize_is_the_head_of_forward():
    enc = build_seeded(0, lambda: CropEncoder(1, (16, 16), 4)).eval()
    x = _x(2, 1, 16, 16)
    with torch.no_grad():
        full = enc(x)
        again = enc.summarize(enc.local_features(x))
    for a, b in zip(full, again):
        assert torch.equal(a, b)


def test_errors():
    with pytest.raises(ValueError, match="local_layer must be None"):
        build_crop_encoder(3, (32, 32), 8, local_layer=1)
    with pytest.raises(ValueError, match="input_shape"):
        build_crop_encoder(3, (4, 4, 4), 8)
    with pytest.raises(ValueError, match="n_components"):
        build_crop_encoder(3, (32, 32), 0)
    enc = build_crop_encoder(3, (32, 32), 8)
    with pytest.raises(ValueError, match="built for inputs of shape"):
        enc(_x(2, 3, 16, 16))
