"""Tests for ``python -m skdim fit`` (skdim/__main__.py).

The command is run in-process through ``main(argv)`` for speed, and once for
real under ``torchrun`` with 2 CPU processes (slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import joblib
import numpy as np
import pytest

from skdim import DeepInfoMax
from skdim.__main__ import load_data, main

PARAMS = ["n_components=4", "critic_units=16", "batch_size=32", "max_epochs=1", "random_state=0",
          "device=cpu"]


@pytest.fixture(scope="module")
def digits(digits_images):
    return (digits_images[:128] * 15).astype(np.uint8)


def test_fit_npy_writes_the_same_model_as_python(tmp_path, digits, capsys):
    np.save(tmp_path / "x.npy", digits)
    out = tmp_path / "models" / "dim.joblib"
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--out", str(out), *PARAMS]) == 0
    assert "Fitted DeepInfoMax on 128 samples" in capsys.readouterr().out
    est = joblib.load(out)
    ref = DeepInfoMax(n_components=4, critic_units=16, batch_size=32, max_epochs=1,
                      random_state=0, device="cpu").fit(digits)
    np.testing.assert_array_equal(est.transform(digits), ref.transform(digits))


def test_load_data_formats(tmp_path, digits):
    np.save(tmp_path / "x.npy", digits)
    assert isinstance(load_data(str(tmp_path / "x.npy")), np.memmap)  # never loaded whole
    digits.tofile(tmp_path / "x.bin")
    raw = load_data(str(tmp_path / "x.bin"), dtype="uint8", shape=digits.shape)
    assert isinstance(raw, np.memmap)
    np.testing.assert_array_equal(raw, digits)
    np.savez(tmp_path / "x.npz", images=digits, labels=np.arange(128))
    np.testing.assert_array_equal(load_data(str(tmp_path / "x.npz"), key="images"), digits)
    with pytest.raises(ValueError, match=r"--key must name one of .*images"):
        load_data(str(tmp_path / "x.npz"))


@pytest.mark.parametrize("argv, message", [
    (["nosuch=1"], "'nosuch' is not a DeepInfoMax parameter"),
    (["max_epochs"], "NAME=VALUE"),
    (["max_epochs=-1"], "The 'max_epochs' parameter of DeepInfoMax must be an int in the range [0, inf)"),
])
def test_errors_are_one_line_messages(tmp_path, digits, capsys, argv, message):
    np.save(tmp_path / "x.npy", digits)
    code = main(["fit", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "m.joblib"), *argv])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.joblib").exists()


def test_missing_file(tmp_path, capsys):
    assert main(["fit", "--data", str(tmp_path / "nope.npy"), "--out", str(tmp_path / "m")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_two_processes(tmp_path, digits):
    """The documented multi-process launch, for real: 2 CPU processes (gloo)."""
    np.save(tmp_path / "x.npy", digits)
    out = tmp_path / "dim.joblib"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "skdim", "fit",
         "--data", str(tmp_path / "x.npy"), "--out", str(out), "--timeout", "60",
         *PARAMS, "max_epochs=2", f"checkpoint_dir='{tmp_path / 'ckpt'}'"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "with 2 process(es): 2 epoch(s)" in proc.stdout
    est = joblib.load(out)
    assert est.n_iter_ == 2 and (tmp_path / "ckpt" / "skdim_checkpoint.pt").exists()
    assert np.isfinite(est.transform(digits)).all()
