import itertools

import pytest
import torch
import torch.nn.functional as F

from skdim.nn.coordinates import (
    CoordinatePredictor,
    absolute_coordinate_loss,
    grid_coordinates,
    relative_coordinate_loss,
    relative_offsets,
    sample_sources,
)
from skdim.nn.seeding import build_seeded
from skdim.nn.critics import flatten_locations

G = lambda seed=0: torch.Generator().manual_seed(seed)  # noqa: E731


def _position_map(batch, grid):
    """A local map whose channel a holds the coordinate along axis a."""
    coords = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in grid], indexing="ij")
    return torch.stack(coords).unsqueeze(0).expand(batch, -1, *grid).clone()


@pytest.mark.parametrize("grid", [(3, 4), (5,), (1, 1)])
def test_grid_coordinates_follow_the_flattened_map(grid):
    fmap = _position_map(2, grid)
    flat = flatten_locations(fmap)  # (B, L, n_axes): location l's own coordinates
    assert torch.equal(grid_coordinates(grid), flat[0].long())


def test_relative_offsets_match_a_loop():
    grid = (3, 4)
    source = torch.tensor([0, 5, 11])
    offsets = relative_offsets(source, grid)
    positions = list(itertools.product(range(3), range(4)))
    for b, s in enumerate(source.tolist()):
        for t, (i0, j0) in enumerate(positions):
            i, j = positions[s]
            assert offsets[b, t].tolist() == [i - i0, j - j0]


class _Oracle:
    """Reads coordinates off position-encoding features; confident logits."""

    def __init__(self, grid, relative):
        self.grid, self.relative = grid, relative

    def __call__(self, *parts):
        if self.relative:
            _, src, tgt = parts
            values = src - tgt + torch.tensor([s - 1 for s in self.grid], dtype=torch.float32)
            sizes = [2 * s - 1 for s in self.grid]
        else:
            _, tgt = parts
            values, sizes = tgt, list(self.grid)
        return tuple(
            50.0 * F.one_hot(values[..., a].round().long(), n).float() for a, n in enumerate(sizes)
        )


@pytest.mark.parametrize("grid", [(4, 3), (6,)])
def test_losses_use_the_papers_labels(grid):
    # A predictor that reads the true (i, j) / (i - i', j - j') off the
    # features gets ~0 loss only if the loss's labels are exactly those.
    fmap = _position_map(3, grid)
    code = torch.zeros(3, 2)
    loss = absolute_coordinate_loss(_Oracle(grid, False), fmap, code)
    assert float(loss) < 1e-6
    source = torch.tensor([0, 3, 5])
    loss = relative_coordinate_loss(_Oracle(grid, True), fmap, code, source)
    assert float(loss) < 1e-6
    # The opposite sign convention (target - source) is heavily penalised.
    flipped = _position_map(3, grid).flip(*range(2, 2 + len(grid)))
    assert float(absolute_coordinate_loss(_Oracle(grid, False), flipped, code)) > 10


def test_uniform_predictor_gives_log_classes_per_axis():
    grid = (4, 5)
    zero = lambda *parts: tuple(  # noqa: E731
        torch.zeros(3, 20, n) for n in grid
    )
    loss = absolute_coordinate_loss(zero, torch.randn(3, 2, *grid, generator=G()), torch.zeros(3, 2))
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(4.0 * 5.0))), rel=1e-6)


def test_predictor_is_the_papers_mlp_on_the_concatenation():
    p = build_seeded(0, lambda: CoordinatePredictor((3, 5), (4, 6)))
    hidden = [m for m in p.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in hidden] == [512, 512, 512, 10]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in p.modules()) == 2
    code, feats = torch.randn(2, 3, generator=G(1)), torch.randn(2, 7, 5, generator=G(2))
    logits = p(code[:, None], feats)
    assert [t.shape for t in logits] == [(2, 7, 4), (2, 7, 6)]
    # Same as one linear layer on the explicit concatenation [y, c].
    w = torch.cat([p.inputs[0].weight, p.inputs[1].weight], dim=1)
    cat = torch.cat([code[:, None].expand(-1, 7, -1), feats], dim=-1).reshape(-1, 8)
    h = torch.relu(p.norm1(cat @ w.T))
    h = torch.relu(p.norm2(p.hidden(h)))
    ref = p.out(h).reshape(2, 7, 10)
    torch.testing.assert_close(torch.cat(logits, dim=-1), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="Expected 2 inputs"):
        p(code)


def test_predictor_learns_positions():
    # Trained jointly on features that carry their position, the loss falls
    # far below chance (2 * log 4 = 2.77 nats).
    grid = (4, 4)
    fmap = _position_map(8, grid) + 0.05 * torch.randn(8, 2, *grid, generator=G())
    p = build_seeded(0, lambda: CoordinatePredictor((2, 2), grid, units=64))
    opt = torch.optim.Adam(p.parameters(), lr=1e-2)
    for _ in range(60):
        loss = absolute_coordinate_loss(p, fmap, torch.zeros(8, 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.3


def test_sample_sources_seeded_and_in_range():
    a = sample_sources(1000, 49, torch.Generator().manual_seed(0))
    b = sample_sources(1000, 49, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert int(a.min()) == 0 and int(a.max()) == 48
