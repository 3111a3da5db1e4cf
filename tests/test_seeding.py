"""Tests for skdim.nn.seeding: modules built from explicit generators."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from skdim.nn.seeding import SeededDropout, build_seeded, reset_parameters_, seeded_generator


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 2, bias=False))


def test_same_values_as_seeding_the_global_generator():
    """For standard layers, build_seeded reproduces what torch.manual_seed +
    ordinary construction gives, bit for bit (so results recorded before it
    existed still hold)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        reference = _net()
    built = build_seeded(11, _net)
    for (name, a), (_, b) in zip(reference.state_dict().items(), built.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_global_generator_is_never_used():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    build_seeded(1, lambda: nn.Linear(50, 50))
    assert torch.equal(torch.get_rng_state(), state)


def test_existing_modules_captured_by_the_factory_are_kept():
    encoder = nn.Linear(3, 3)
    before = encoder.weight.detach().clone()
    combo = build_seeded(2, lambda: nn.Sequential(encoder, nn.Linear(3, 1)))
    assert combo[0] is encoder and torch.equal(encoder.weight, before)
    assert not combo[1].weight.is_meta


def test_custom_layers_are_built_for_real_and_reproducibly():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4))

    state = torch.get_rng_state()
    a, b = build_seeded(3, Custom), build_seeded(3, Custom)
    assert torch.equal(a.w, b.w) and not a.w.is_meta
    assert torch.equal(torch.get_rng_state(), state)


def test_threads_building_at_once_get_their_own_values():
    expected = {seed: build_seeded(seed, _net).state_dict() for seed in range(6)}
    results = {}

    def work(seed):
        for _ in range(5):
            results.setdefault(seed, []).append(build_seeded(seed, _net).state_dict())

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, states in results.items():
        for state in states:
            assert all(torch.equal(state[k], expected[seed][k]) for k in state)


def test_reset_parameters_rejects_unknown_layers():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

    with pytest.raises(TypeError, match="known initialisation rule"):
        reset_parameters_(Custom(), seeded_generator(0))


def test_seeded_dropout_is_reproducible():
    a = SeededDropout(0.3, seeded_generator(1))(torch.ones(100))
    b = SeededDropout(0.3, seeded_generator(1))(torch.ones(100))
    assert torch.equal(a, b) and 0 < int((a == 0).sum()) < 100
