"""Tests for skdim.nn.trainer.DIMTrainer and skdim.nn.callbacks: the
two-player train step, the epoch loop, divergence detection, the state
dict, and the callback protocol.

The train-step tests use a tiny 8x8 encoder and spy on the two optimizers'
``step`` methods, so that each player's update is observed in isolation.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from skdim.nn import objective as objective_module
from skdim.nn.callbacks import (
    Callback,
    Checkpoint,
    EpochLogger,
    ProgressBar,
    RollbackOnError,
    TimeLimit,
    WarnOnExplodingLoss,
)
from skdim.nn.checkpoint import read_checkpoint
from skdim.nn.objective import DIMConfig, autocast, build_model
from skdim.nn.priors import discriminator_loss, prior_transform, sample_prior
from skdim.nn.seeding import seeded_generator
from skdim.nn.trainer import DivergenceError, DIMTrainer


def _trainer(*, local=True, glob=False, prior=True, n_comp=4, seed=0, lr=1e-3, **config):
    config = DIMConfig(alpha=1.0 if glob else 0.0, beta=1.0 if local else 0.0,
                       gamma=config.pop("gamma", 0.1 if prior else 0.0), **config)
    return DIMTrainer.build(1, (8, 8), n_components=n_comp, critic_units=8, config=config,
                            learning_rate=lr, seed=seed, encoder="conv")


def _x(n=16, seed=0):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _step(trainer, x):
    """One train_step inside an epoch's bookkeeping, as fit does it."""
    trainer._begin_epoch(stream=False)
    trainer._epoch_step = 0
    trainer.objective.train()
    return trainer.train_step(x)


# --------------------------------------------------------------- construction


def test_build_makes_only_the_active_critics():
    t = _trainer(local=True, glob=False, prior=False)
    assert t.objective.local_critic is not None and t.objective.global_critic is None
    assert t.discriminator is None and t.d_optimizer is None
    t = _trainer(local=False, glob=True, prior=False)
    assert t.objective.local_critic is None and t.objective.global_critic is not None
    code, terms = t.objective(_x(), t.config)
    assert set(terms) == {"global_mi"} and code.shape == (16, 4)
    with pytest.raises(ValueError, match="needs a prior discriminator"):
        DIMTrainer(t.objective, None, DIMConfig(gamma=0.5))


def test_optimizers_own_disjoint_parameters():
    t = _trainer()
    main_ids = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    disc_ids = {id(p) for g in t.d_optimizer.param_groups for p in g["params"]}
    assert main_ids == {id(p) for p in t.objective.parameters()}
    assert disc_ids == {id(p) for p in t.discriminator.parameters()}
    assert not main_ids & disc_ids
    assert t.optimizer.defaults["betas"] == (0.5, 0.999)  # official release's Adam betas


def test_modules_are_in_eval_mode_outside_training():
    t = _trainer()
    assert not t.objective.training and not t.discriminator.training
    t.fit([_x()], epochs=1)
    assert not any(m.training for m in t.objective.modules())
    assert not any(m.training for m in t.discriminator.modules())


def test_autocast_contexts():
    with autocast(torch.device("cpu"), "bfloat16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "float32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# ----------------------------------------------------------------- the step


def test_train_step_players_update_separately():
    """The discriminator's step leaves the encoder (and critics) untouched,
    and the encoder's step leaves the discriminator untouched."""
    t = _trainer(gamma=0.5)
    events = []
    real_d_step, real_step = t.d_optimizer.step, t.optimizer.step

    def spy(name, real):
        def step(*args, **kwargs):
            enc_before, disc_before = _params(t.objective), _params(t.discriminator)
            out = real(*args, **kwargs)
            events.append((name, _same(enc_before, _params(t.objective)),
                           _same(disc_before, _params(t.discriminator))))
            return out
        return step

    t.d_optimizer.step, t.optimizer.step = spy("disc", real_d_step), spy("main", real_step)
    terms = _step(t, _x())
    # (player, encoder unchanged, discriminator unchanged)
    assert events == [("disc", True, False), ("main", False, True)]
    assert set(terms) == {"local_mi", "discriminator", "prior", "loss"}
    assert all(v.ndim == 0 and torch.isfinite(v) and not v.requires_grad for v in terms.values())
    # The total is the weighted sum of the terms (paper eq. 8).
    torch.testing.assert_close(terms["loss"], -terms["local_mi"] + 0.5 * terms["prior"])


def test_prior_gradient_makes_codes_look_real_to_the_discriminator():
    """The encoder's prior step fools the (frozen) discriminator: after it,
    the discriminator scores the new codes as more "real" than the old ones.
    A port whose encoder helped the discriminator would lower the score."""
    t = _trainer(local=False, lr=1e-4, gamma=1.0)
    x = _x(32, seed=1)
    scores = {}
    real_step = t.optimizer.step

    def disc_score():
        with torch.no_grad():
            return t.discriminator(prior_transform("uniform", t.encoder(x).y)).mean().item()

    def spy_step(*args, **kwargs):
        scores["before"] = disc_score()  # discriminator already took its step
        out = real_step(*args, **kwargs)
        scores["after"] = disc_score()
        return out

    t.optimizer.step = spy_step
    for _ in range(3):
        _step(t, x)
        assert scores["after"] > scores["before"], scores


def test_discriminator_step_learns_to_separate():
    """With the encoder frozen, the discriminator's own steps lower its loss
    (prior samples vs codes) on a fixed evaluation set -- it is trained to
    tell codes from prior samples, not to agree with the encoder."""
    t = _trainer(local=False, lr=1e-3, gamma=1.0)
    for g in t.optimizer.param_groups:  # freeze the encoder to isolate the discriminator
        g["lr"] = 0.0
    x = _x(32, seed=2)
    real = sample_prior("uniform", 2000, 4, seeded_generator(123))

    def held_out_loss():
        t.objective.eval()
        with torch.no_grad():
            fake = prior_transform("uniform", t.encoder(x).y)
            return discriminator_loss(t.discriminator(real), t.discriminator(fake)).item()

    before = held_out_loss()
    t.fit([x] * 20, epochs=1)
    # Chance is 2 log 2 = 1.386; the drop is small because the gradient
    # penalty keeps the discriminator smooth, but it must be a real drop.
    assert held_out_loss() < before - 0.01


def test_bfloat16_runs_and_keeps_float32_weights():
    t = _trainer(precision="bfloat16")
    terms = _step(t, _x())
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(p.dtype == torch.float32 for p in t.objective.parameters())


# --------------------------------------------------------------- divergence


def test_divergence_error_is_a_floating_point_error():
    assert issubclass(DivergenceError, FloatingPointError)


@pytest.mark.parametrize("prior, term", [(True, "discriminator"), (False, "local_mi")])
def test_nan_is_detected_before_any_update(prior, term):
    batches = [_x(seed=s) for s in range(5)]
    batches[4][3, 0, 2, 2] = float("nan")
    t = _trainer(prior=prior)
    t.fit(batches[:4], epochs=2)
    with pytest.raises(DivergenceError, match=rf"epoch 3, step 5.*{term}"):
        t.fit(batches, epochs=1)
    # The step that saw NaN changed nothing: the state is that of a run that
    # stopped after the 4 good steps of epoch 3.
    reference = _trainer(prior=prior)
    reference.fit(batches[:4], epochs=3)
    assert _same(_params(t.objective), _params(reference.objective))
    if prior:
        assert _same(_params(t.discriminator), _params(reference.discriminator))


def test_the_mi_term_is_named(monkeypatch):
    t = _trainer(prior=False)
    monkeypatch.setattr(objective_module, "mi_lower_bound", lambda pos, neg, est: pos.sum() * float("inf"))
    with pytest.raises(DivergenceError, match=r"epoch 1, step 1: the local_mi, loss term"):
        t.fit([_x()], epochs=1)


def test_non_finite_weights_are_detected():
    t = _trainer()
    # A parameter outside the loss graph: only the weight check can see it.
    t.objective.unused = nn.Linear(2, 2)
    with torch.no_grad():
        t.objective.unused.weight.fill_(float("nan"))
    with pytest.raises(DivergenceError, match=r"epoch 1: weights became non-finite"):
        t.fit([_x(8)], epochs=1)


# ------------------------------------------------------------------ epochs


def test_epoch_entry_is_the_mean_of_the_steps():
    t = _trainer()
    steps = []

    class Spy(Callback):
        def on_batch_end(self, trainer, logs):
            steps.append({k: float(v) for k, v in logs.items()})

    batches = [_x(16, 0), _x(16, 1), _x(8, 2)]
    history = t.fit(batches, epochs=1, callbacks=[Spy()])
    assert [s["batch_size"] for s in steps] == [16, 16, 8]
    entry = history[0]
    assert set(entry) == {"epoch", "local_mi", "discriminator", "prior", "loss", "precision"}
    assert entry["epoch"] == 1 and entry["precision"] == "float32"
    for key in ("local_mi", "discriminator", "prior", "loss"):
        assert entry[key] == pytest.approx(np.mean([s[key] for s in steps]), rel=1e-5)
    assert t.epoch == 1 and t.step == 3


def test_training_is_reproducible():
    def run():
        t = _trainer(seed=3)
        t.fit([_x(8, s) for s in range(3)], epochs=2)
        return t.history, _params(t.objective)

    (h1, p1), (h2, p2) = run(), run()
    assert h1 == h2 and _same(p1, p2)


def test_labelled_batches_and_single_rows():
    t = _trainer()
    with pytest.warns(RuntimeWarning, match="Skipped a batch of one row"):
        t.fit([(_x(8), torch.zeros(8)), _x(1)], epochs=1)
    assert t.step == 1
    with pytest.raises(TypeError, match="tensor or a tuple"):
        t.fit([np.zeros((4, 1, 8, 8))], epochs=1)
    with pytest.raises(ValueError, match="no batch of at least two rows"):
        t.fit([], epochs=1)


def test_dataloader_and_generator_function_inputs():
    data = torch.utils.data.TensorDataset(_x(32), torch.arange(32))
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    t = _trainer()
    t.fit(loader, epochs=2)
    assert t.step == 8 and t.epoch == 2


# -------------------------------------------------------------- state dict


def test_state_dict_round_trip_continues_bit_for_bit():
    batches = [_x(8, s) for s in range(3)]
    straight = _trainer(seed=4)
    straight.fit(batches, epochs=3)

    first = _trainer(seed=4)
    first.fit(batches, epochs=2)
    state = copy.deepcopy(first.state_dict())
    resumed = _trainer(seed=99)  # another init: everything comes from the state
    resumed.load_state_dict(state)
    resumed.fit(batches, epochs=1)
    assert resumed.history == straight.history and resumed.step == straight.step
    assert _same(_params(resumed.objective), _params(straight.objective))
    assert _same(_params(resumed.discriminator), _params(straight.discriminator))


def test_state_dict_is_plain_and_on_the_cpu():
    t = _trainer()
    t.fit([_x()], epochs=1)
    state = t.state_dict()

    def walk(obj):
        if isinstance(obj, torch.Tensor):
            assert obj.device.type == "cpu"
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)
        else:
            assert obj is None or isinstance(obj, (int, float, str, bool)), type(obj)

    walk(state)


@pytest.mark.parametrize("damage", ["missing_section", "missing_key", "wrong_shape", "other_model"])
def test_load_state_dict_rejects_what_does_not_fit_and_changes_nothing(damage):
    t = _trainer()
    t.fit([_x()], epochs=1)
    state = copy.deepcopy(t.state_dict())
    if damage == "missing_section":
        del state["optimizer"]
    elif damage == "missing_key":
        del state["objective"][next(iter(state["objective"]))]
    elif damage == "wrong_shape":
        key = next(k for k, v in state["objective"].items() if v.dim() == 2)
        state["objective"][key] = torch.zeros(3, 3)
    else:
        state = _trainer(prior=False).state_dict()
    target = _trainer(seed=5)
    before = _params(target.objective)
    with pytest.raises(ValueError, match="trainer state"):
        target.load_state_dict(state)
    assert _same(before, _params(target.objective)) and target.epoch == 0


def test_copy_is_independent():
    t = _trainer()
    t.fit([_x()], epochs=1)
    c = t.copy()
    c.fit([_x(seed=1)], epochs=1)
    assert t.epoch == 1 and c.epoch == 2
    assert not _same(_params(t.objective), _params(c.objective))
    again = t.copy()
    again.fit([_x(seed=1)], epochs=1)
    assert _same(_params(again.objective), _params(c.objective))


def test_build_model_never_uses_the_global_generator():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, _ = build_model(3, (32, 32), seed=1, critic_units=16)
    b, _ = build_model(3, (32, 32), seed=1, critic_units=16)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same(_params(a), _params(b))


# --------------------------------------------------------------- callbacks


def test_callback_protocol_order_and_stop():
    events = []

    class Spy(Callback):
        def on_fit_begin(self, trainer):
            events.append("fit_begin")

        def on_epoch_begin(self, trainer):
            events.append(f"epoch_begin {trainer.epoch}")

        def on_batch_end(self, trainer, logs):
            events.append("batch")
            if trainer.step == 3:
                trainer.stop_training = True

        def on_epoch_end(self, trainer, logs):
            events.append(f"epoch_end {logs['epoch']} {logs.get('stopped', False)}")

        def on_fit_end(self, trainer):
            events.append(f"fit_end {trainer.error is None}")

    t = _trainer()
    history = t.fit([_x(8, 0), _x(8, 1)], epochs=5, callbacks=[Spy()])
    assert events == ["fit_begin", "epoch_begin 0", "batch", "batch", "epoch_end 1 False",
                      "epoch_begin 1", "batch", "epoch_end 2 True", "fit_end True"]
    assert len(history) == 2 and history[1]["stopped"] is True


def test_time_limit_stops_mid_epoch():
    clock = iter(range(100))
    t = _trainer()
    t.fit([_x(8, s) for s in range(10)], epochs=3,
          callbacks=[TimeLimit(4.5, clock=lambda: float(next(clock)))])
    # Starts at 0, deadline 4.5, one tick per batch: the batch that ends at time 5 is the last.
    assert t.epoch == 1 and t.step == 5 and t.history[0]["stopped"]


def test_time_limit_already_spent_still_trains_one_step():
    """A fit whose budget is gone before it starts trains one step, never zero."""
    t = _trainer()
    t.fit([_x(8, s) for s in range(3)], epochs=1)
    ticks = iter([0.0] + [100.0] * 10)  # the deadline (1 s) passes before the first step
    t.fit([_x(8, s) for s in range(3)], epochs=2,
          callbacks=[TimeLimit(1.0, clock=lambda: next(ticks))])
    assert t.step == 3 + 1 and t.epoch == 2 and t.history[-1]["stopped"]


def test_rollback_on_error_restores_the_epoch_start():
    t = _trainer()
    t.fit([_x(8, 0)], epochs=1)
    state = copy.deepcopy(t.state_dict())
    bad = _x(8, 1)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DivergenceError):
        t.fit([_x(8, 2), bad], epochs=1, callbacks=[RollbackOnError()])
    assert t.epoch == 1 and t.step == 1
    assert _same(_params(t.objective), [v for k, v in state["objective"].items()
                                        if k in dict(t.objective.named_parameters())])


def test_fit_end_runs_when_training_raises():
    seen = []

    class Spy(Callback):
        def on_fit_end(self, trainer):
            seen.append(type(trainer.error).__name__)

    bad = _x(8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DivergenceError):
        _trainer().fit([bad], epochs=1, callbacks=[Spy()])
    assert seen == ["DivergenceError"]


def test_progress_callbacks_print(capsys):
    t = _trainer()
    t.fit([_x(8, s) for s in range(3)], epochs=2, callbacks=[EpochLogger(), ProgressBar()])
    err = capsys.readouterr().err
    assert "DIM epoch 1/2" in err and "DIM epoch 2/2" in err and "img/s" in err


def test_checkpoint_callback_writes_every_epoch(tmp_path):
    t = _trainer()
    t.fit([_x(8)], epochs=2, callbacks=[Checkpoint(tmp_path, extra=lambda: {"note": "x"})])
    saved = read_checkpoint(tmp_path)
    assert saved["trainer"]["epoch"] == 2 and saved["note"] == "x"
    fresh = _trainer(seed=7)
    fresh.load_state_dict(saved["trainer"])
    assert fresh.epoch == 2 and _same(_params(fresh.objective), _params(t.objective))


def test_exploding_loss_warning():
    t = _trainer()
    t.fit([_x(8)], epochs=1)
    with pytest.warns(RuntimeWarning, match=r"local_mi=-5e\+06.*learning_rate"):
        WarnOnExplodingLoss().on_epoch_end(t, {"epoch": 1, "local_mi": -5e6, "loss": 5e6})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WarnOnExplodingLoss().on_epoch_end(t, {"epoch": 1, "local_mi": -5.0, "loss": 5.0})
