"""End-to-end smoke tests of the benchmark scripts on tiny synthetic data.

The scripts live in ``benchmarks/`` (not a package) and are loaded by path.
The synthetic CIFAR-10 stand-in has two classes that differ in brightness, so
a probe that sees the right images with the right labels must classify the
raw pixels almost perfectly: that checks the wiring (data loading, row
alignment, probe on train rows and test on test rows), not DIM's quality.
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    # Scripts import their shared helpers (benchmarks/_flops.py) as a
    # script run from benchmarks/ would.
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _two_class_images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 dark, class 1 bright, with noise: linearly separable pixels."""
    y = np.arange(n) % 2
    base = np.where(y == 1, 190, 60)[:, None, None, None]
    X = np.clip(base + rng.normal(0, 25, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)
    return X, y.astype(np.int64)


def _jpeg_blob(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    chunks, offsets = [], [0]
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        chunks.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        offsets.append(offsets[-1] + len(chunks[-1]))
    return np.concatenate(chunks), np.asarray(offsets, dtype=np.int64)


@pytest.fixture
def tiny_npz(tmp_path):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(0)
    X_tr, y_tr = _two_class_images(48, rng)
    X_te, y_te = _two_class_images(20, rng)
    train_jpeg, train_offsets = _jpeg_blob(X_tr)
    test_jpeg, test_offsets = _jpeg_blob(X_te)
    path = tmp_path / "tiny_cifar.npz"
    np.savez(path, train_jpeg=train_jpeg, train_offsets=train_offsets, y_train=y_tr,
             test_jpeg=test_jpeg, test_offsets=test_offsets, y_test=y_te,
             class_names=np.array(["dark", "bright"]))
    return path


TINY = ["--n-train", "48", "--n-test", "20", "--probe-train", "48", "--batch-size", "16",
        "--critic-units", "16", "--precision", "float32", "--device", "cpu", "--threads", "1"]


def test_bench_cifar10_end_to_end(tiny_npz, tmp_path, capsys):
    bench = _load("bench_cifar10")
    out_json = tmp_path / "result.json"
    rc = bench.main([str(tiny_npz), *TINY, "--epochs", "2", "--curve", "--mlp",
                     "--mlp-epochs", "2", "--mlp-lr", "1e-2", "--json", str(out_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    table = result["table"]

    assert result["training"]["epochs"] == 2
    assert [p["epoch"] for p in result["training"]["curve"]] == [1, 2]
    trained = table["DIM(L) infonce, 2 ep [linear]"]
    assert set(trained) == {"conv", "fc", "y"}
    assert set(table["same encoder untrained [linear]"]) == {"conv", "fc", "y"}
    # Brightness separates the classes: raw pixels must be (nearly) perfect.
    assert table["raw pixels [linear]"]["input"] >= 0.9
    assert table["PCA-47 of pixels [linear]"]["input"] >= 0.9  # n - 1 components of 48 rows
    assert all(0.0 <= v <= 1.0 for row in table.values() for v in row.values())
    # The last curve point is the table's Y probe (same rows, same C).
    assert result["training"]["curve"][-1]["linear_y"] == pytest.approx(trained["y"])
    # Paper rows are printed and labelled, and the MLP rows exist with --mlp.
    assert "paper t4 DIM(L) [linear SVM, 5 runs]" in printed
    assert "paper t1 DIM(L) infoNCE [MLP-200, 1000 ep]" in printed
    assert "raw pixels [MLP-200]" in table
    assert "CPU target" in printed


def test_bench_cifar10_minute_budget_runs_at_least_one_epoch(tiny_npz, tmp_path):
    bench = _load("bench_cifar10")
    out_json = tmp_path / "result.json"
    rc = bench.main([str(tiny_npz), *TINY, "--minutes", "0.0001", "--json", str(out_json)])
    assert rc == 0
    training = json.loads(out_json.read_text())["training"]
    # A budget far below one epoch still trains exactly one epoch.
    assert training["epochs"] == 1
    assert training["seconds"] > 0


def test_bench_cifar10_skips_without_data(tmp_path, capsys):
    bench = _load("bench_cifar10")
    assert bench.main([str(tmp_path / "missing.npz")]) == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_bench_cifar10_reads_batches_folder(tmp_path):
    bench = _load("bench_cifar10")
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        X, y = _two_class_images(4, rng)
        rows = X.transpose(0, 3, 1, 2).reshape(4, -1)  # the release's planar row order
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": y.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"dark", b"bright"]}, f)
    data = bench.load_data(bench.find_data(str(tmp_path)), n_train=7, n_test=3)
    assert data.X_train.shape == (7, 32, 32, 3)
    assert data.X_test.shape == (3, 32, 32, 3)
    # Labels stay aligned with images: bright images are class 1.
    assert np.array_equal(data.X_train.mean(axis=(1, 2, 3)) > 125, data.y_train == 1)


def test_svm_c_auto_scales_with_width():
    bench = _load("bench_cifar10")
    args = bench.parse_args([])
    assert args.svm_c == "auto"
    assert bench.svm_c(args, 64) == pytest.approx(0.5 / 64)
    assert bench.svm_c(args, 4096) == pytest.approx(0.5 / 4096)
    assert bench.svm_c(bench.parse_args(["--svm-c", "0.01"]), 4096) == 0.01
    with pytest.raises(SystemExit):
        bench.parse_args(["--svm-c", "-1"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--epochs", "2", "--minutes", "3"])


def test_materialized_logits_size():
    bench = _load("bench_infonce_memory")
    # (B, M^2, B M^2) float32 at B=512, M^2=64: 512 * 64 * 512 * 64 * 4 bytes.
    assert bench.materialized_logits_gb(512) == pytest.approx(4.294967296)
    assert bench.materialized_logits_gb(64) == pytest.approx(4.294967296 / 64)


def test_bench_infonce_memory_one_small_batch(capsys):
    bench = _load("bench_infonce_memory")
    rc = bench.main(["--batch-sizes", "4", "--units", "8", "--steps", "1", "--warmup", "1",
                     "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    row = [line for line in out.splitlines() if line.strip().startswith("4 |")]
    assert len(row) == 1
    peak_gb = float(row[0].split("|")[2])
    # A real process of Python + torch: well above 50 MB, far below the 4 GB bound.
    assert 0.05 < peak_gb < 4.0


def test_paper_findings_prints_every_claim(tiny_npz, capsys):
    findings = _load("paper_findings")
    rc = findings.main([str(tiny_npz), "--n-train", "48", "--n-test", "20", "--epochs", "1",
                        "--critic-units", "16", "--precision", "float32", "--threads", "1",
                        "--negatives", "4", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    for claim in ("1. local > global, linear", "1. local > global, MLP-200", "2. global > local",
                  "3. prior lowers NDM", "4. negatives all/4/1", "5. occlusion / coordinates"):
        line = next(line for line in printed.splitlines() if line.startswith(claim))
        # Every claim line carries its numbers and a verdict.
        assert line.count("|") == 2 and "reproduced" in line, line
    assert "DIM(L) infonce, 1 neg" in printed and "untrained encoder" in printed


def test_paper_findings_negatives_only(tiny_npz, capsys):
    findings = _load("paper_findings")
    rc = findings.main([str(tiny_npz), "--n-train", "48", "--n-test", "20", "--epochs", "1",
                        "--critic-units", "16", "--precision", "float32", "--threads", "1",
                        "--negatives", "4", "1", "--negatives-only"])
    assert rc == 0
    printed = capsys.readouterr().out
    claims = [line for line in printed.splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]
    assert len(claims) == 1 and claims[0].startswith("4. negatives all/4/1")
    assert "DIM(G)" not in printed and "occlusion" not in printed


def test_paper_findings_skips_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SKDIM_CIFAR10_NPZ", raising=False)
    findings = _load("paper_findings")
    monkeypatch.setattr(findings, "default_cifar10_npz_path", lambda: None)
    assert findings.main([]) == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_bench_gpu_dry_run_counts_flops(capsys):
    bench = _load("bench_gpu")
    assert bench.main(["--dry-run"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "|" in line and "%" in line]
    assert len(rows) == 2
    # Counted FLOPs per image are positive and the share of the peak is a percentage.
    gflop = [float(r.split("|")[2]) for r in rows]
    assert all(g > 0 for g in gflop)


def test_bench_fit_counts_the_critic_gemms():
    bench = _load("bench_fit")

    def critic_flops(units):
        # Forward GEMMs of the critic on the dcgan encoder's 8x8x128 local map
        # at batch 64: the local embedding (first, shortcut, second 1x1 convs
        # over 4096 rows), the code embedding (64 rows, 64-d codes) and the
        # 64 x 4096 score matrix; backward costs twice the forward.
        rows, b = 64 * 64, 64
        fwd = (2 * rows * (2 * 128 * units + units * units)
               + 2 * b * (2 * 64 * units + units * units) + 2 * b * rows * units)
        return 3 * fwd

    # Everything but the critic (encoder, prior) is the same at both widths.
    counted = bench.skdim_step_flops(64, "jsd", 0.1) - bench.skdim_step_flops(16, "jsd", 0.1)
    assert counted == pytest.approx(critic_flops(64) - critic_flops(16), rel=1e-3)
