"""Tests for skdim.nn.schedules and DeepInfoMax(learning_rate_schedule=...).

* The factor is the closed form: linear warm-up to 1, then (1 + cos(pi t)) / 2
  down to exactly 0 at the end of the horizon.
* The rate every step *uses* follows that curve over max_epochs, over a time
  limit (wall or CPU, whichever ends the run first), and over each warm
  start; partial_fit and "constant" keep the base rate.
* A cosine run interrupted and resumed from its checkpoint ends with the
  weights of the uninterrupted run; resuming with another max_epochs (another
  curve) is refused.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skdim import DeepInfoMax
from skdim.nn.callbacks import Callback, TimeLimit
from skdim.nn.checkpoint import read_checkpoint
from skdim.nn.schedules import LearningRateSchedule, cosine_factor
from skdim.nn.trainer import DIMTrainer

PARAMS = dict(n_components=4, critic_units=16, batch_size=32, max_epochs=3, device="cpu",
              random_state=0, precision="float32", learning_rate=1e-3,
              learning_rate_schedule="cosine")


@pytest.fixture(scope="module")
def X():
    return load_digits().images[:128].astype(np.float32)  # 4 steps per epoch


class RecordRates(Callback):
    """The rate of each optimizer at every step (read after the step, before the schedule)."""

    def __init__(self):
        self.main, self.disc = [], []

    def on_batch_end(self, trainer, logs):
        self.main.append(trainer.optimizer.param_groups[0]["lr"])
        self.disc.append(trainer.d_optimizer.param_groups[0]["lr"])


def test_cosine_factor_closed_form():
    assert cosine_factor(0.0, 0.0) == 1.0 and cosine_factor(1.0, 0.0) == 0.0
    assert cosine_factor(0.5, 0.0) == pytest.approx(0.5)
    assert cosine_factor(0.25, 0.0) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    # Warm-up: linear up to 1 at its end; never 0 at the start.
    assert cosine_factor(0.05, 0.1) == pytest.approx(0.5) and cosine_factor(0.1, 0.1) == 1.0
    assert cosine_factor(0.0, 0.1) == 0.01
    # After the warm-up it only decreases; outside [0, 1] it is clipped.
    values = [cosine_factor(p / 100, 0.02) for p in range(2, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert cosine_factor(1.5) == 0.0 and cosine_factor(-1.0) == 0.01
    with pytest.raises(ValueError, match="warmup"):
        cosine_factor(0.5, 1.0)


def test_schedule_needs_a_horizon():
    with pytest.raises(ValueError, match="horizon"):
        LearningRateSchedule()
    with pytest.raises(ValueError, match="epochs"):
        LearningRateSchedule(0)


def test_rates_follow_the_cosine_over_max_epochs(X):
    record = RecordRates()
    est = DeepInfoMax(**PARAMS, callbacks=[record]).fit(X)
    steps = 12
    expected = [1e-3 * cosine_factor(0.0)] + [1e-3 * cosine_factor(k / steps) for k in range(1, steps)]
    np.testing.assert_allclose(record.main, expected, rtol=1e-12)
    assert record.disc == record.main  # the prior game anneals with the encoder
    assert record.main[-1] < 0.02 * 1e-3
    # Afterwards the optimizers hold the base rate again (pickles, later fits).
    assert est._trainer.optimizer.param_groups[0]["lr"] == 1e-3
    assert est._trainer.d_optimizer.param_groups[0]["lr"] == 1e-3


def test_constant_schedule_and_partial_fit_keep_the_base_rate(X):
    for est, fit in ((DeepInfoMax(**dict(PARAMS, learning_rate_schedule="constant")), "fit"),
                     (DeepInfoMax(**PARAMS), "partial_fit")):
        record = RecordRates()
        est.set_params(callbacks=[record])
        getattr(est, fit)(X)
        assert record.main == [1e-3] * len(record.main) and record.main


def test_cosine_changes_training_and_is_reproducible(X):
    cosine = DeepInfoMax(**PARAMS).fit(X).transform(X)
    again = DeepInfoMax(**PARAMS).fit(X).transform(X)
    constant = DeepInfoMax(**dict(PARAMS, learning_rate_schedule="constant")).fit(X).transform(X)
    np.testing.assert_array_equal(cosine, again)
    assert not np.allclose(cosine, constant)


def test_warm_start_runs_a_new_cycle(X):
    est = DeepInfoMax(**dict(PARAMS, max_epochs=1, warm_start=True)).fit(X)
    record = RecordRates()
    est.set_params(callbacks=[record], max_epochs=2).fit(X)
    assert est.n_iter_ == 3
    # Epochs 2-3 are their own run of 2 epochs: warm-up again, then down to ~0.
    expected = [1e-3 * cosine_factor(0.0)] + [1e-3 * cosine_factor(k / 8) for k in range(1, 8)]
    np.testing.assert_allclose(record.main, expected, rtol=1e-12)


def test_a_cpu_time_limit_is_the_horizon(X):
    # A fake CPU clock that advances one second per step: a 10 s limit ends
    # the run after 10 steps although max_epochs is huge, and the cosine
    # follows the limit: step k + 1 runs at cosine_factor(k / 10).
    now = [0.0]

    class Tick(Callback):
        def on_batch_end(self, trainer, logs):
            now[0] += 1.0

    limit = TimeLimit(10.0, clock=lambda: now[0])
    record = RecordRates()
    est = DeepInfoMax(**dict(PARAMS, max_epochs=10**6), callbacks=[Tick(), limit, record]).fit(X)
    assert est.t_ == 10 * 32 and est.history_[-1]["stopped"] is True
    expected = [1e-3 * cosine_factor(0.0)] + [1e-3 * cosine_factor(k / 10) for k in range(1, 10)]
    np.testing.assert_allclose(record.main, expected, rtol=1e-12)


def test_wall_time_limit_of_the_estimator_is_the_horizon(X, monkeypatch):
    import skdim._estimator as estimator_module

    ticks = iter(range(10**6))
    monkeypatch.setattr(estimator_module, "TimeLimit",
                        lambda seconds: TimeLimit(seconds, clock=lambda: float(next(ticks))))
    record = RecordRates()
    DeepInfoMax(**dict(PARAMS, max_epochs=1000), max_time=12.0, callbacks=[record]).fit(X)
    assert len(record.main) < 20 and record.main[-1] < 0.2e-3


def test_resumed_cosine_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, interrupt_at, X):
    uninterrupted = DeepInfoMax(**PARAMS).fit(X)
    interrupt_at(epoch=2, step=1)
    with pytest.warns(UserWarning, match="interrupted"), pytest.raises(KeyboardInterrupt):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(X)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path)["trainer"]["epoch"] == 2
    resumed = DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(X)
    assert resumed.history_ == uninterrupted.history_
    for (k, a), b in zip(resumed.encoder_.state_dict().items(),
                         uninterrupted.encoder_.state_dict().values()):
        assert torch.equal(a, b), k
    # Another max_epochs is another curve: refused, not silently bent.
    with pytest.raises(ValueError, match=r"max_epochs=3 \(now 5\)"):
        DeepInfoMax(**dict(PARAMS, max_epochs=5), checkpoint_dir=tmp_path).fit(X)


def test_trainer_schedule_resumes_from_a_state_dict(X):
    # The nn core alone: save after epoch 1 of 2, reload, finish with start_epoch=0.
    batches = [torch.as_tensor(X[i:i + 32, None]) for i in range(0, 128, 32)]

    def build():
        return DIMTrainer.build(1, (8, 8), n_components=4, critic_units=16, learning_rate=1e-3)

    full = build()
    full.fit(batches, 2, [LearningRateSchedule(2)])
    half = build()
    half.fit(batches, 1, [LearningRateSchedule(2)])
    rest = build()
    rest.load_state_dict(half.state_dict())
    rest.fit(batches, 1, [LearningRateSchedule(2, start_epoch=0)])
    for a, b in zip(rest.objective.state_dict().values(), full.objective.state_dict().values()):
        assert torch.equal(a, b)
