"""Tests for skdim._checkpoint and fault tolerance of DeepInfoMax.fit.

* Writes are atomic: a failure while writing (disk full, no permission)
  raises CheckpointError, leaves the previous checkpoint byte for byte, and
  leaves no temporary file.
* A run interrupted by Ctrl-C and resumed from its checkpoint ends with
  exactly the weights of an uninterrupted run (CPU, same seed): every random
  draw of an epoch comes from a generator derived from the seed and the epoch
  index, and the checkpoint holds the model, both optimizers and the history.
* Ctrl-C, like any failure, leaves the estimator as it was (with a warning
  that says where the completed epochs are).
* A checkpoint resumes only the run it belongs to: other parameters, other
  data (every value is hashed), more epochs than max_epochs, damaged bytes
  or a state that does not fit the model are clear errors; a directory is
  locked by the fit that uses it.
"""

from __future__ import annotations

import errno
import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import skdim.nn.callbacks as callbacks_module
import skdim.nn.checkpoint as ckpt
from skdim import DeepInfoMax
from skdim.nn.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from skdim.nn.trainer import DIMTrainer

PARAMS = dict(n_components=4, critic_units=16, batch_size=32, max_epochs=3, device="cpu",
              random_state=0, alpha=0.5, precision="float32")


@pytest.fixture(scope="module")
def X():
    return load_digits().images[:128].astype(np.float32)


def _weights(est):
    state = {f"encoder.{k}": v for k, v in est.encoder_.state_dict().items()}
    state.update({f"critics.{k}": v for k, v in est.critics_.state_dict().items()})
    return state


def _assert_identical(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# ----------------------------------------------------------------- atomic writes


def test_write_and_read_roundtrip(tmp_path):
    state = {"format": ckpt.FORMAT_VERSION, "w": torch.arange(3.0), "history": [{"loss": 1.5}]}
    path = write_checkpoint(tmp_path / "run", state)
    assert path == tmp_path / "run" / ckpt.CHECKPOINT_NAME
    back = read_checkpoint(tmp_path / "run")
    assert torch.equal(back["w"], state["w"]) and back["history"] == state["history"]
    assert read_checkpoint(tmp_path / "empty") is None


@pytest.mark.parametrize("failure", ["disk_full", "no_permission"])
def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch, failure):
    write_checkpoint(tmp_path, {"format": ckpt.FORMAT_VERSION, "epoch": 1})
    before = (tmp_path / ckpt.CHECKPOINT_NAME).read_bytes()

    if failure == "disk_full":
        real_save = torch.save

        def save(obj, f):  # half the bytes reach the file, then ENOSPC
            real_save(obj, f)
            f.truncate(10)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(ckpt.torch, "save", save)
    else:
        def replace(src, dst):
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))

        monkeypatch.setattr(ckpt.os, "replace", replace)

    with pytest.raises(CheckpointError, match="previous checkpoint, if any, is intact"):
        write_checkpoint(tmp_path, {"format": ckpt.FORMAT_VERSION, "epoch": 2})
    assert (tmp_path / ckpt.CHECKPOINT_NAME).read_bytes() == before
    assert os.listdir(tmp_path) == [ckpt.CHECKPOINT_NAME]  # no temporary file left
    monkeypatch.undo()
    assert read_checkpoint(tmp_path)["epoch"] == 1


def test_unwritable_directory(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(CheckpointError, match="Cannot write a checkpoint in .*checkpoint_dir"):
        write_checkpoint(tmp_path / "file" / "run", {"format": ckpt.FORMAT_VERSION})


def test_corrupt_or_foreign_checkpoint(tmp_path):
    (tmp_path / ckpt.CHECKPOINT_NAME).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable skdim checkpoint"):
        read_checkpoint(tmp_path)
    torch.save({"something": "else"}, tmp_path / ckpt.CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="not written by this version"):
        read_checkpoint(tmp_path)
    write_checkpoint(tmp_path, {"format": ckpt.FORMAT_VERSION - 1})
    with pytest.raises(CheckpointError, match="not written by this version"):
        read_checkpoint(tmp_path)


# ----------------------------------------------------------------- the estimator


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, interrupt_at, X):
    uninterrupted = DeepInfoMax(**PARAMS).fit(X)

    interrupt_at(epoch=2, step=2)
    first = DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"interrupted.*left as it was.*completed epochs are in "
                                         r"checkpoint_dir"):
        with pytest.raises(KeyboardInterrupt):
            first.fit(X)
    monkeypatch.undo()
    # The failed fit left the estimator unfitted; the checkpoint holds epoch 2.
    assert not hasattr(first, "encoder_") and not hasattr(first, "n_iter_")
    assert read_checkpoint(tmp_path)["trainer"]["epoch"] == 2

    resumed = DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(X)
    assert resumed.n_iter_ == 3
    assert resumed.history_ == uninterrupted.history_
    _assert_identical(resumed, uninterrupted)
    # A finished run resumes to itself without training.
    again = DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path, verbose=0).fit(X)
    _assert_identical(again, uninterrupted)
    # And the resumed estimator pickles like any other.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(resumed)).transform(X),
                                  uninterrupted.transform(X))


def test_interrupted_fitted_estimator_keeps_its_model(monkeypatch, interrupt_at, X):
    est = DeepInfoMax(**PARAMS).fit(X)
    codes = est.transform(X)
    interrupt_at(epoch=0, step=1)
    with pytest.warns(UserWarning, match="Set checkpoint_dir to keep completed epochs"):
        with pytest.raises(KeyboardInterrupt):
            est.fit(X)
    monkeypatch.undo()
    assert est.n_iter_ == 3
    np.testing.assert_array_equal(est.transform(X), codes)


def test_time_limited_fit_is_checkpointed_and_resumes(tmp_path, monkeypatch, X):
    import skdim._estimator as estimator_module
    from skdim.nn.callbacks import TimeLimit

    # A clock that advances one second per reading: with 4 steps per epoch the
    # limit of 6.5 s falls after the second step of the second epoch.
    ticks = iter(range(10**6))
    monkeypatch.setattr(estimator_module, "TimeLimit",
                        lambda seconds: TimeLimit(seconds, clock=lambda: float(next(ticks))))
    params = dict(PARAMS, max_epochs=4)
    cut = DeepInfoMax(**params, max_time=6.5, checkpoint_dir=tmp_path).fit(X)
    monkeypatch.undo()
    assert cut.n_iter_ == 2 and cut.history_[-1]["stopped"] is True
    assert read_checkpoint(tmp_path)["trainer"]["epoch"] == 2
    # The checkpoint holds the stopped model itself ...
    reloaded = DeepInfoMax(**dict(params, max_epochs=2), checkpoint_dir=tmp_path).fit(X)
    _assert_identical(reloaded, cut)
    np.testing.assert_array_equal(reloaded.transform(X), cut.transform(X))
    # ... and a fit without the limit trains the remaining epochs from it.
    resumed = DeepInfoMax(**params, checkpoint_dir=tmp_path).fit(X)
    assert resumed.n_iter_ == 4 and resumed.history_[:2] == cut.history_
    assert "stopped" not in resumed.history_[-1]
    assert np.isfinite(resumed.transform(X)).all()


def test_resume_rejects_other_parameters_or_data(tmp_path, X):
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match=r"other parameters: learning_rate=0.001 \(now 0.0003\)"):
        DeepInfoMax(**dict(PARAMS, learning_rate=3e-4), checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match="written for data .*n_samples.: 128"):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(X[:100])
    other = X.copy()
    other[-1] += 1  # same shape and dtype, other values
    with pytest.raises(ValueError, match="Resume on the same data"):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(other)
    # max_epochs may change: a run can be extended.
    longer = DeepInfoMax(**dict(PARAMS, max_epochs=2), checkpoint_dir=tmp_path).fit(X)
    assert longer.n_iter_ == 2 and longer.history_[0]["epoch"] == 1


def test_failed_checkpoint_write_during_fit(tmp_path, monkeypatch, X):
    calls = []
    real = callbacks_module.write_checkpoint

    def flaky(directory, state):
        calls.append(state["trainer"]["epoch"])
        if len(calls) == 2:
            raise CheckpointError("simulated: disk full")
        return real(directory, state)

    monkeypatch.setattr(callbacks_module, "write_checkpoint", flaky)
    est = DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="disk full"):
        est.fit(X)
    # The fit failed, so the estimator is as before (unfitted); the file
    # still holds epoch 1, from which a new fit resumes.
    assert not hasattr(est, "n_iter_")
    assert read_checkpoint(tmp_path)["trainer"]["epoch"] == 1
    monkeypatch.undo()
    assert est.fit(X).n_iter_ == 3


def test_partial_fit_resumes_its_random_stream(tmp_path, X):
    params = dict(PARAMS, shuffle=False)
    a, b = X[:64], X[64:]
    straight = DeepInfoMax(**params).partial_fit(a).partial_fit(b)
    DeepInfoMax(**params, checkpoint_dir=tmp_path).partial_fit(a)
    resumed = DeepInfoMax(**params, checkpoint_dir=tmp_path).partial_fit(b)
    assert resumed.n_iter_ == 2
    _assert_identical(resumed, straight)


def test_checkpoint_dir_validation(X):
    with pytest.raises(ValueError, match="'checkpoint_dir' parameter of DeepInfoMax must be"):
        DeepInfoMax(**PARAMS, checkpoint_dir=3).fit(X)


# ----------------------------------------------------------------- reliability


def _checkpoint_file(directory):
    return directory / ckpt.CHECKPOINT_NAME


def test_resume_detects_changed_middle_rows(tmp_path, X):
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path).fit(X)
    other = X.copy()
    other[8:120] = X[8:120][::-1]  # 112 of 128 middle rows replaced
    with pytest.raises(ValueError, match="Resume on the same data"):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(other)
    flipped = X.copy()
    flipped[64, 3, 3] += 1e-3  # one value of one middle row
    with pytest.raises(ValueError, match="Resume on the same data"):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(flipped)


def test_checkpoint_longer_than_max_epochs_is_an_error(tmp_path, X):
    DeepInfoMax(**dict(PARAMS, max_epochs=3), checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match=r"holds 3 epochs.*max_epochs=2"):
        DeepInfoMax(**dict(PARAMS, max_epochs=2), checkpoint_dir=tmp_path).fit(X)


def test_orphan_temporary_file_is_removed(tmp_path, X):
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path).fit(X)
    orphan = tmp_path / f".{ckpt.CHECKPOINT_NAME}.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")  # a kill during a write leaves this
    DeepInfoMax(**dict(PARAMS, max_epochs=2), checkpoint_dir=tmp_path).fit(X)
    assert not orphan.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_flipped_payload_bytes_are_detected(tmp_path, X):
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path).fit(X)
    path = _checkpoint_file(tmp_path)
    data = bytearray(path.read_bytes())
    # Flip bytes well inside the payload (tensor data), where torch.load
    # itself would not notice.
    for offset in (len(data) // 2, len(data) // 2 + 1, 2 * len(data) // 3):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="digest"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="digest"):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(X)


@pytest.mark.parametrize("damage", ["missing_key", "wrong_shape", "missing_section"])
def test_damaged_state_raises_checkpoint_error(tmp_path, X, damage):
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path).fit(X)
    state = read_checkpoint(tmp_path)
    weights = state["trainer"]["objective"]
    key = next(k for k, v in weights.items() if v.dim() == 2)
    if damage == "missing_key":
        del weights[key]
    elif damage == "wrong_shape":
        weights[key] = torch.zeros(weights[key].shape[0] + 1, weights[key].shape[1])
    else:
        del state["trainer"]["optimizer"]
    write_checkpoint(tmp_path, state)  # a valid digest over damaged content
    with pytest.raises(CheckpointError, match="(?i)delete"):
        DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path).fit(X)


def test_unwritable_checkpoint_dir_fails_before_training(tmp_path, X, monkeypatch):
    from skdim.nn import trainer as trainer_module

    steps = []
    real = trainer_module.DIMTrainer.train_step
    monkeypatch.setattr(trainer_module.DIMTrainer, "train_step",
                        lambda self, x, generator=None: steps.append(1) or real(self, x, generator))
    (tmp_path / "file").write_text("not a directory")
    est = DeepInfoMax(**PARAMS, checkpoint_dir=tmp_path / "file" / "run")
    with pytest.raises(CheckpointError, match="checkpoint_dir"):
        est.fit(X)
    assert steps == []


def test_disk_full_during_fit_says_so_and_keeps_the_previous_checkpoint(tmp_path, X, monkeypatch):
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path).fit(X)
    before = _checkpoint_file(tmp_path).read_bytes()
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.os, "fsync", full)
    est = DeepInfoMax(**dict(PARAMS, max_epochs=2), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"(?i)no space left on device.*previous checkpoint.*intact"):
        est.fit(X)
    monkeypatch.undo()
    assert _checkpoint_file(tmp_path).read_bytes() == before
    assert read_checkpoint(tmp_path)["trainer"]["epoch"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_second_fit_in_the_same_directory_is_locked_out(tmp_path, X):
    import subprocess
    import sys
    import textwrap
    import time

    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from skdim.nn.checkpoint import directory_lock
        with directory_lock({str(tmp_path / 'run')!r}):
            open({str(ready)!r}, "w").close()
            time.sleep(60)
    """)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        est = DeepInfoMax(**dict(PARAMS, learning_rate=1e-3), checkpoint_dir=tmp_path / "run")
        with pytest.raises(CheckpointError, match=r"in use by another fit.*pid"):
            est.fit(X)
    finally:
        holder.kill()
        holder.wait()
    # Once the other fit is gone, the directory can be used.
    DeepInfoMax(**dict(PARAMS, max_epochs=1), checkpoint_dir=tmp_path / "run").fit(X)
