"""Tests for skdim.nn.distributed: data-parallel training with torch.distributed.

Single-process tests check the pieces (offset positives, critics scoring
gathered items, sharding, thread limits). Multi-process tests start 2 CPU
processes with the gloo backend (spawn) and check that

* ``all_gather_with_grad`` sends every process the gradient that all
  processes' losses send to its rows (against autograd on the whole batch);
* :class:`SyncBatchNorm` over 2 processes equals BatchNorm on the
  concatenated batch (outputs, gradients, running statistics);
* ``DeepInfoMax.fit`` on 2 processes with global batch B follows the loss
  trajectory of 1 process with batch B and ends with the same weights,
  every process holding identical weights and rank 0 a picklable estimator;
* a process that dies makes the other fail with DistributedError in bounded
  time instead of hanging.
"""

from __future__ import annotations

import datetime
import os
import pickle
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline
from torch import nn

from skdim import DeepInfoMax
from skdim.nn.distributed import (
    DistributedError,
    SyncBatchNorm,
    all_gather_with_grad,
    convert_sync_batchnorm,
    shard_positions,
)
from skdim.nn.runtime import training_settings
from skdim.nn.trainer import DIMTrainer
from skdim.nn.bounds import split_pair_scores
from skdim.nn.critics import ConcatLocalCritic, DotLocalCritic, GlobalCritic
from skdim.nn.encoders import build_encoder

WORLD = 2
# The configurations compared between 1 and 2 processes (gamma=0: the prior
# samples of a process are its own draws, so only the MI terms and the
# encoder are compared step for step).
BASE = dict(n_components=8, critic_units=32, batch_size=32, max_epochs=3, device="cpu",
            random_state=0, gamma=0.0, precision="float32", learning_rate=1e-4)
CONFIGS = {
    "dot_infonce_global": dict(BASE, alpha=0.5, mi_estimator="infonce", local_critic="dot"),
    "concat_jsd": dict(BASE, mi_estimator="jsd", local_critic="concat"),
}
WITH_PRIOR = dict(BASE, gamma=0.1, alpha=0.5)


def _data() -> np.ndarray:
    return load_digits().images[:128].astype(np.float32)


def _sgd(objective, discriminator, learning_rate):
    """Plain SGD instead of Adam: the same hooks average its gradients, but
    unlike Adam (whose first steps are lr * sign(grad)) its steps scale with
    the gradient, so a wrong gradient scale shows in the trajectory."""
    opt = torch.optim.SGD(objective.parameters(), lr=0.05)
    d_opt = None if discriminator is None else torch.optim.SGD(discriminator.parameters(), lr=0.05)
    return opt, d_opt


def _fit(params, X, optimizer="adam"):
    import skdim.nn.trainer as trainer_module

    real = trainer_module.make_optimizers
    if optimizer == "sgd":
        trainer_module.make_optimizers = _sgd
    try:
        return DeepInfoMax(**params).fit(X)
    finally:
        trainer_module.make_optimizers = real


def _weights(est) -> dict:
    """Every trained weight: the encoder and the critics (prior discriminator included)."""
    weights = {f"encoder.{k}": v for k, v in est.encoder_.state_dict().items()}
    weights.update({f"critics.{k}": v for k, v in est.critics_.state_dict().items()})
    return weights


def _full(seed: int, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _gather_loss(x_r: torch.Tensor, gathered: torch.Tensor, rank: int, weights: torch.Tensor):
    """A loss of rank r that mixes its rows with everybody's (nonlinearly)."""
    n = x_r.shape[0]
    return ((x_r @ gathered.T) * weights[rank * n : (rank + 1) * n]).sum() + (rank + 1) * (
        gathered.tanh() ** 2
    ).sum()


# ------------------------------------------------------------- process harness
def _task_primitives(rank: int, out: Path) -> dict:
    result = {}
    # all_gather_with_grad
    X, W = _full(0, 8, 3), _full(1, 8, 8)
    x_r = X[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
    gathered, offset = all_gather_with_grad(x_r)
    _gather_loss(x_r, gathered, rank, W).backward()
    result.update(gather_offset=offset, gathered=gathered.detach(), gather_grad=x_r.grad)
    # SyncBatchNorm
    Xb, V = _full(2, 8, 5, 3, 3) * 3 + 1, _full(3, 8, 5, 3, 3)
    bn = SyncBatchNorm(5)
    with torch.no_grad():
        bn.weight.copy_(_full(4, 5))
        bn.bias.copy_(_full(5, 5))
    xb = Xb[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
    yb = bn(xb)
    (yb * V[rank * 4 : (rank + 1) * 4]).sum().backward()
    result.update(bn_out=yb.detach(), bn_x_grad=xb.grad, bn_w_grad=bn.weight.grad,
                  bn_b_grad=bn.bias.grad, bn_mean=bn.running_mean, bn_var=bn.running_var)
    # The estimator, for each configuration.
    X = _data()
    for name, params in CONFIGS.items():
        est = _fit(params, X)
        result[name] = {"history": est.history_, "weights": _weights(est)}
        # One SGD step on one global batch: the update is -lr * gradient.
        est = _fit(dict(params, max_epochs=1), X[:32], "sgd")
        result[name, "one_step"] = _weights(est)
    est = DeepInfoMax(**WITH_PRIOR).fit(X)
    result["prior_weights"] = _weights(est)
    if rank == 0:
        (out / "estimator.pkl").write_bytes(pickle.dumps(est))
    # Control: the same run without gathering the critics' items (each process
    # scores its 16 codes against its own 16 images only).
    import skdim.nn.distributed as d

    real = d.all_gather_with_grad
    d.all_gather_with_grad = lambda x: real(x) if x.dim() == 2 and x.shape[0] == 1 else (x, 0)
    try:
        est = DeepInfoMax(**CONFIGS["dot_infonce_global"]).fit(X)
    finally:
        d.all_gather_with_grad = real
    result["no_gather_history"] = est.history_
    result["time_limited"] = _time_limited_cosine(rank, X)
    return result


def _time_limited_cosine(rank: int, X) -> dict:
    """A CPU-time limit and cosine schedule whose clocks differ between processes.

    Each process's fake clock advances once per step, rank 1's twice as
    fast: alone, rank 1 would stop after 5 steps and rank 0 after 10.
    """
    from skdim.nn.callbacks import Callback, TimeLimit

    now = [0.0]

    class Tick(Callback):
        def __init__(self):
            self.steps, self.rates = 0, []

        def on_batch_end(self, trainer, logs):
            now[0] += rank + 1.0
            self.steps = trainer.step
            self.rates.append(trainer.optimizer.param_groups[0]["lr"])

    tick = Tick()
    limit = TimeLimit(10.0, clock=lambda: now[0])
    est = DeepInfoMax(**dict(BASE, max_epochs=100, learning_rate_schedule="cosine"),
                      callbacks=[tick, limit]).fit(X)
    return {"steps": tick.steps, "rates": tick.rates, "weights": _weights(est)}


def _task_death(rank: int, out: Path, hang: bool = False) -> dict:
    real = DIMTrainer.train_step
    calls = iter(range(10**6))

    def train_step(*args, **kwargs):
        if rank == 1 and next(calls) == 3:
            (out / "died_at").write_text(repr(time.time()))
            if hang:  # alive but silent, like a process stuck in I/O
                time.sleep(3600)
            os._exit(3)  # no clean-up, like a killed process
        return real(*args, **kwargs)

    DIMTrainer.train_step = train_step
    try:
        DeepInfoMax(**dict(BASE, max_epochs=20)).fit(_data())
    except DistributedError as exc:
        return {"error": str(exc), "failed_at": time.time()}
    return {"error": None}


TASKS = {
    "primitives": _task_primitives,
    "death": _task_death,
    "hang": lambda rank, out: _task_death(rank, out, hang=True),
}


def _worker(rank: int, task: str, out: str, timeout: float) -> None:
    torch.set_num_threads(1)
    out = Path(out)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=timeout),
    )
    try:
        torch.save(TASKS[task](rank, out), out / f"rank{rank}.pt")
    except BaseException:
        (out / f"rank{rank}.err").write_text(traceback.format_exc())
    finally:
        torch.distributed.destroy_process_group()


def _launch(task: str, out: Path, timeout: float = 30.0, join_within: float = 150.0,
            may_hang: tuple[int, ...] = ()) -> dict:
    ctx = mp.get_context("spawn")
    env = {"OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        procs = [ctx.Process(target=_worker, args=(r, task, str(out), timeout)) for r in range(WORLD)]
        for p in procs:
            p.start()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    deadline = time.time() + join_within
    for r, p in enumerate(procs):
        if r not in may_hang:
            p.join(max(0.0, deadline - time.time()))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert set(hung) <= set(may_hang), f"rank(s) {hung} still running after {join_within} s"
    results = {}
    for r in range(WORLD):
        err = out / f"rank{r}.err"
        assert not err.exists(), err.read_text()
        if (out / f"rank{r}.pt").exists():
            results[r] = torch.load(out / f"rank{r}.pt", weights_only=False)
    return results


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return _launch("primitives", out), out


# ------------------------------------------------------------- single process
def test_split_pair_scores_with_offset():
    scores = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    pos, neg = split_pair_scores(scores, offset=2)
    assert torch.equal(pos, torch.stack([scores[0, 2], scores[1, 3]]))
    assert neg.shape == (2, 4 * 3)
    for i in range(2):
        others = [j for j in range(5) if j != 2 + i]
        assert torch.equal(neg[i], scores[i, others].reshape(-1))
    with pytest.raises(ValueError, match="0 <= offset <= M - B"):
        split_pair_scores(scores, offset=4)


@pytest.mark.parametrize("critic_cls, shape", [
    (DotLocalCritic, (6, 5, 3, 3)), (ConcatLocalCritic, (6, 5, 3, 3)), (GlobalCritic, (6, 45)),
])
def test_critic_with_gather_scores_own_rows_against_all_items(critic_cls, shape):
    """A process holding rows 4:6 of a batch of 6 gets rows 4:6 of the scores."""
    torch.manual_seed(0)  # this test's own module initialisation only
    features, codes = _full(0, *shape), _full(1, 6, 4)
    in_features = shape[1] if critic_cls is not GlobalCritic else shape[1]
    critic = critic_cls(in_features, 4, 8).eval()  # eval: BatchNorm is row-wise
    if critic_cls is ConcatLocalCritic:
        critic.n_shifts = None
    pos_all, neg_all = critic(features, codes)
    others = None

    def gather(items):
        nonlocal others
        full = torch.cat([others, items])
        return full, others.shape[0]

    # Items of the "other process" (rows 0:4), computed by the same layers.
    critic.gather = lambda items: (items, 0)
    with torch.no_grad():
        captured = {}

        def capture(items):
            captured["items"] = items
            return items, 0

        critic.gather = capture
        critic(features[:4], codes[:4])
        others = captured["items"]
    critic.gather = gather
    pos, neg = critic(features[4:], codes[4:])
    torch.testing.assert_close(pos, pos_all[4:])
    if critic_cls is ConcatLocalCritic:  # the same negatives, in shift order
        torch.testing.assert_close(neg.sort(1).values, neg_all[4:].sort(1).values)
    else:
        torch.testing.assert_close(neg, neg_all[4:])


def test_shard_positions_pads_like_distributed_sampler():
    rows = np.array([3, 5, 8, 9, 12])
    parts = [shard_positions(rows, r, 2) for r in range(2)]
    assert [p.tolist() for p in parts] == [[3, 5, 8], [9, 12, 3]]
    np.testing.assert_array_equal(shard_positions(rows, 0, 1), rows)
    even = np.arange(8)
    np.testing.assert_array_equal(np.concatenate([shard_positions(even, r, 4) for r in range(4)]), even)


def test_sync_batchnorm_is_batchnorm_without_process_group():
    x = _full(0, 6, 3, 4, 4)
    bn, sync = nn.BatchNorm2d(3), SyncBatchNorm(3)
    torch.testing.assert_close(sync(x), bn(x))
    torch.testing.assert_close(sync.running_var, bn.running_var)


def test_convert_sync_batchnorm_shares_state_and_reverts():
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(2)))
    originals = [model[1], model[2][0]]
    restore = convert_sync_batchnorm(model)
    assert isinstance(model[1], SyncBatchNorm) and isinstance(model[2][0], SyncBatchNorm)
    assert model[1].weight is originals[0].weight
    assert model[1].running_mean is originals[0].running_mean
    assert model.state_dict().keys() == nn.Sequential(
        nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(2))).state_dict().keys()
    restore()
    assert model[1] is originals[0] and model[2][0] is originals[1]


def test_training_settings_cap_threads_and_restore(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        with training_settings():
            assert torch.get_num_threads() == 1
            with training_settings():  # nested (another fit in another thread)
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1  # the inner exit does not restore early
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "8")  # never raises the count
        with training_settings():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_batch_size_must_split_over_processes(monkeypatch):
    import skdim._data._batches as batches
    from skdim._data import ArrayBatches, resolve_layout

    monkeypatch.setattr(batches, "world", lambda: (0, 3))
    with pytest.raises(ValueError, match="batch_size=32 is the global batch.*multiple"):
        ArrayBatches(np.zeros((4, 2)), resolve_layout((2,)), np.zeros(1), np.ones(1), batch_size=32,
                     generator=torch.Generator())


# ------------------------------------------------------------- two processes
def test_all_gather_with_grad_matches_autograd_on_whole_batch(two_processes):
    results, _ = two_processes
    X = _full(0, 8, 3).requires_grad_(True)
    W = _full(1, 8, 8)
    sum(_gather_loss(X[r * 4 : (r + 1) * 4], X, r, W) for r in range(WORLD)).backward()
    for r in range(WORLD):
        assert results[r]["gather_offset"] == 4 * r
        torch.testing.assert_close(results[r]["gathered"], X.detach())
        # float32 sums in another order: a few ulps.
        torch.testing.assert_close(results[r]["gather_grad"], X.grad[r * 4 : (r + 1) * 4],
                                   rtol=1e-5, atol=1e-5)


def test_sync_batchnorm_matches_batchnorm_on_concatenated_batch(two_processes):
    results, _ = two_processes
    X, V = (_full(2, 8, 5, 3, 3) * 3 + 1).requires_grad_(True), _full(3, 8, 5, 3, 3)
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.weight.copy_(_full(4, 5))
        bn.bias.copy_(_full(5, 5))
    y = bn(X)
    (y * V).sum().backward()
    tol = dict(rtol=1e-5, atol=1e-5)
    for r in range(WORLD):
        rows = slice(r * 4, (r + 1) * 4)
        torch.testing.assert_close(results[r]["bn_out"], y.detach()[rows], **tol)
        torch.testing.assert_close(results[r]["bn_x_grad"], X.grad[rows], **tol)
        torch.testing.assert_close(results[r]["bn_mean"], bn.running_mean, **tol)
        torch.testing.assert_close(results[r]["bn_var"], bn.running_var, **tol)
    # The affine parameters enter each process's loss through its own rows only.
    torch.testing.assert_close(sum(results[r]["bn_w_grad"] for r in range(WORLD)), bn.weight.grad, **tol)
    torch.testing.assert_close(sum(results[r]["bn_b_grad"] for r in range(WORLD)), bn.bias.grad, **tol)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_one_step_on_two_processes_equals_one_process(two_processes, name):
    """One SGD step on one global batch of 32: the update is -lr * gradient,
    so this compares the averaged gradient of 2 x 16 rows (gathered
    negatives, synchronised BatchNorm) with the gradient of 32 rows. Measured
    gap: < 3e-4 of the update (float32 reassociation); a wrong gradient
    scale or a missing term would be 100%."""
    results, _ = two_processes
    X = _data()[:32]
    init = _weights(DeepInfoMax(**dict(CONFIGS[name], max_epochs=0)).fit(X))
    single = _weights(_fit(dict(CONFIGS[name], max_epochs=1), X, "sgd"))
    for r in range(WORLD):
        ddp = results[r][name, "one_step"]
        for key, value in single.items():
            if not value.dtype.is_floating_point:
                assert torch.equal(ddp[key], value), key
                continue
            step = (value - init[key]).abs().max().item()
            gap = (ddp[key] - value).abs().max().item()
            assert gap <= 1e-3 * step + 1e-6, (key, gap, step)


# Per-epoch losses and MI estimates, in nats.
TRAJECTORY_ATOL = 5e-3


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_two_processes_follow_one_process_trajectory(two_processes, name):
    """2 processes x 16 rows follow 1 process x 32 rows for 3 epochs (12 steps).

    Both runs see the same global batches (same permutation), the same
    negatives (gathered), the same BatchNorm statistics (synchronised) and
    the same averaged gradients (previous test), so they differ only by
    float32 rounding of sums taken in another order. Training amplifies
    rounding: Adam's first steps are lr * sign(grad), and biases followed by
    BatchNorm have an exactly zero gradient whose rounding noise sets that
    sign. Two *single-process* runs whose inputs differ by one ulp already
    end up 1e-3 nats apart after 12 steps of local infoNCE (measured). The
    2-process gap measured is at most 1.1e-3 nats (1.6e-4 with SGD, which
    has no sign amplification); the tolerance is 5e-3 nats, while dropping
    the gathered negatives moves the losses by 0.26 nats (test below).
    """
    results, _ = two_processes
    single = _fit(CONFIGS[name], _data())
    for r in range(WORLD):
        history = results[r][name]["history"]
        assert len(history) == len(single.history_) == 3
        for epoch_single, epoch_ddp in zip(single.history_, history):
            for key, value in epoch_single.items():
                assert epoch_ddp[key] == pytest.approx(value, rel=0, abs=TRAJECTORY_ATOL), key
    # Every process holds bit-identical weights.
    weights = [results[r][name]["weights"] for r in range(WORLD)]
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_gathered_negatives_matter(two_processes):
    """The control for the tolerances above: without gathering, each process
    scores against 16 images instead of 32 and the infoNCE losses move."""
    results, _ = two_processes
    single = _fit(CONFIGS["dot_infonce_global"], _data())
    gap = max(abs(a["loss"] - b["loss"])
              for a, b in zip(single.history_, results[0]["no_gather_history"]))
    assert gap > 10 * TRAJECTORY_ATOL, gap


def test_time_limits_and_schedules_agree_across_processes(two_processes):
    # All processes stop at the first clock that runs out (rank 1's, after 5
    # steps) and anneal with the same rates, so the replicas stay identical.
    results, _ = two_processes
    first, second = results[0]["time_limited"], results[1]["time_limited"]
    assert first["steps"] == second["steps"] == 5
    assert first["rates"] == second["rates"] and first["rates"][-1] < first["rates"][1]
    for key, value in first["weights"].items():
        assert torch.equal(value, second["weights"][key]), key


def test_rank0_estimator_is_picklable_and_ranks_agree_with_prior(two_processes):
    results, out = two_processes
    for key, value in results[0]["prior_weights"].items():
        assert torch.equal(value, results[1]["prior_weights"][key]), key
    est = pickle.loads((out / "estimator.pkl").read_bytes())
    # The fitted model has plain BatchNorm layers and no process-group hooks.
    assert not any(isinstance(m, SyncBatchNorm) for m in est.encoder_.modules())
    assert all(getattr(m, "gather", None) is None for m in est.critics_.modules())
    codes = est.transform(_data())
    assert codes.shape == (128, 8) and np.isfinite(codes).all()
    assert est.n_iter_ == WITH_PRIOR["max_epochs"]


@pytest.mark.parametrize("how", ["dies", pytest.param("hangs", marks=pytest.mark.slow)])
def test_dead_process_fails_the_others_in_bounded_time(tmp_path, how):
    timeout = 8.0
    results = _launch("death" if how == "dies" else "hang", tmp_path, timeout=timeout,
                      join_within=120.0, may_hang=(1,))
    assert 1 not in results  # rank 1 never finished
    error = results[0]["error"]
    assert error is not None and "rank 0 of 2" in error and "did not answer" in error
    waited = results[0]["failed_at"] - float((tmp_path / "died_at").read_text())
    # gloo notices a closed connection at once (measured 0.2 s); a process
    # that hangs instead is given up after the process group's timeout.
    assert waited < timeout + 5.0, waited


# ------------------------------------------------------- parallel model selection
class _ThreadProbe(nn.Module):
    """An encoder that records torch's thread count at every training step.

    The record is part of the module's state (extra state), so it survives
    the pickling of the estimator out of a joblib worker.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.threads: set[int] = set()

    def forward(self, x):
        self.threads.add(torch.get_num_threads())
        return self.inner(x)

    def get_extra_state(self):
        return sorted(self.threads)

    def set_extra_state(self, state):
        self.threads = set(state)


def _probe_encoder(in_channels, input_shape, n_components):
    return _ThreadProbe(build_encoder("conv", in_channels, tuple(input_shape), n_components, None))


def test_model_selection_in_parallel_does_not_oversubscribe():
    """GridSearchCV / cross_validate with n_jobs=2 (joblib's default loky
    backend): every fit in a worker trains with cpu_count // 2 torch threads,
    so 2 workers use the cores once, not twice, and results are those of
    n_jobs=1."""
    import joblib

    digits = load_digits()
    X, y = digits.images[:160].astype(np.float32), digits.target[:160]
    pipe = Pipeline([
        ("dim", DeepInfoMax(n_components=4, critic_units=16, batch_size=32, max_epochs=1,
                            device="cpu", random_state=0, encoder=_probe_encoder)),
        ("clf", LogisticRegression(max_iter=300)),
    ])
    expected = max(joblib.cpu_count() // 2, 1)
    cv = cross_validate(pipe, X, y, cv=2, n_jobs=2, return_estimator=True)
    for fitted in cv["estimator"]:
        assert fitted["dim"].encoder_.module.threads == {expected}
    grid = {"dim__alpha": [0.0, 0.5]}
    parallel = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    serial = GridSearchCV(pipe, grid, cv=2, n_jobs=1).fit(X, y)
    # Same seeds, same data: the same scores (up to thread-count rounding,
    # which can flip a prediction or two of 80).
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"], atol=0.03)
    assert parallel.best_estimator_["dim"].transform(X).shape == (160, 4)
