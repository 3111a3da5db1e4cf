"""Tests for skdim.nn.sampling: the one mini-batching rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skdim.nn.sampling import BatchStream, batch_indices, n_batches
from skdim.nn.seeding import seeded_generator


@pytest.mark.parametrize("n, bs", [(10, 3), (64, 64), (65, 64), (66, 64), (7, 2), (2, 5), (129, 64)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_indices_cover_every_index_once(n, bs, shuffle):
    batches = list(batch_indices(n, bs, seeded_generator(0), shuffle=shuffle))
    allidx = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    assert all(len(b) >= 2 for b in batches)  # contrastive bounds need 2 images
    assert all(np.all(np.diff(b) > 0) for b in batches)  # sorted within a batch
    assert all(len(b) == bs for b in batches[:-1])
    assert len(batches) == n_batches(n, bs)


def test_batch_indices_merge_a_trailing_singleton():
    assert [len(b) for b in batch_indices(65, 64, seeded_generator(0))] == [65]
    assert [len(b) for b in batch_indices(129, 64, seeded_generator(0))] == [64, 65]
    assert [len(b) for b in batch_indices(66, 64, seeded_generator(0))] == [64, 2]


@pytest.mark.parametrize("n, bs", [(10, 3), (64, 64), (65, 64), (7, 2), (129, 64)])
def test_drop_and_full_modes(n, bs):
    drop = list(batch_indices(n, bs, seeded_generator(0), last="drop"))
    assert all(len(b) == bs for b in drop) and len(drop) == n // bs == n_batches(n, bs, "drop")
    full = list(batch_indices(n, bs, seeded_generator(0), last="full"))
    assert sum(len(b) for b in full) == n and len(full) == n_batches(n, bs, "full")
    with pytest.raises(ValueError, match="last must be"):
        list(batch_indices(n, bs, last="some"))


def test_batch_indices_without_shuffle_is_in_order():
    batches = list(batch_indices(7, 3, None, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5, 6]]


def test_batch_indices_are_seeded_and_leave_the_global_generator_alone():
    def run(seed):
        return [b.tolist() for b in batch_indices(50, 8, seeded_generator(seed))]

    before = torch.get_rng_state()
    assert run(3) == run(3)
    assert run(3) != run(4)
    assert torch.equal(torch.get_rng_state(), before)


def test_batch_stream_is_endless_without_replacement_within_an_epoch():
    stream = BatchStream(10, 4, seeded_generator(0))
    epoch = [stream.next() for _ in range(2)]  # 10 // 4 = 2 full batches per epoch
    rows = torch.cat(epoch)
    assert len(set(rows.tolist())) == 8  # no row twice within an epoch
    assert all(len(stream.next()) == 4 for _ in range(7))
    with pytest.raises(ValueError, match="larger than the 3 rows"):
        BatchStream(3, 4, seeded_generator(0))
