"""The documentation says what the code does (issue 11, item 9).

Each check guards a statement that was once false: wrong claims about
random state, JSD values called nats, contradicting speed ratios, an
install command that installs another package, a wrong run time, two names
for one environment variable, and a CIFAR-10 gallery page left empty when
the data is absent.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from skdim import DeepInfoMax

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([ROOT / "README.rst", *ROOT.glob("docs/**/*.rst"), *ROOT.glob("examples/**/*.py"),
                    *ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/*.sh"),
                    ROOT / "docs" / "build.sh", *ROOT.glob("skdim/**/*.py")])


def _texts():
    for path in DOC_FILES:
        if "_build" not in path.parts and "generated" not in path.parts:
            yield path, path.read_text(encoding="utf-8")


def _find(pattern: str, flags=re.I) -> list[str]:
    rx = re.compile(pattern, flags)
    return [f"{p.relative_to(ROOT)}:{t[:m.start()].count(chr(10)) + 1}"
            for p, t in _texts() for m in rx.finditer(t)]


def test_random_state_none_is_described_as_scikit_learn_does():
    doc = DeepInfoMax.__doc__
    section = doc[doc.index("random_state :"):doc.index("verbose :")]
    assert "``None`` draws one seed from NumPy's global random" in " ".join(section.split())
    # The old, false claim: with None, NumPy's global state *is* read and advanced.
    assert not _find(r"global (NumPy and torch|torch and NumPy) (random states|RNGs) are never")


def test_jsd_history_is_not_called_nats():
    doc = " ".join(DeepInfoMax.__doc__.split())
    assert "Jensen-Shannon score" in doc and "not an amount of information" in doc
    assert not _find(r"MI estimates in nats")


def test_speed_claims_do_not_contradict_each_other():
    assert not _find(r"about (five|six) times|more than doubles|six times (faster|slower)")


def test_install_instructions_do_not_install_another_package():
    for name in ("README.rst", "docs/index.rst", "docs/install.rst"):
        text = (ROOT / name).read_text(encoding="utf-8")
        # It may only appear as a warning that it installs something else.
        for m in re.finditer(r"pip install skdim(\s|$|`)", text):
            context = " ".join(text[m.start() - 80 : m.end() + 80].split())
            assert re.search(r"\bnot\b", context), (name, context)
    text = (ROOT / "docs" / "install.rst").read_text(encoding="utf-8")
    assert "scikit-dimension" in text and "scikit-dimension" in (ROOT / "README.rst").read_text()


def test_quickstart_makes_no_false_timing_claim():
    text = (ROOT / "examples" / "basics" / "plot_quickstart.py").read_text()
    assert "well under a minute" not in text


def test_one_name_for_the_cifar10_variable():
    assert not _find(r"SKDIM_CIFAR10(?!_NPZ)", 0)
    assert _find(r"SKDIM_CIFAR10_NPZ", 0)


def test_cifar10_example_says_so_without_data(monkeypatch, capsys):
    plt = pytest.importorskip("matplotlib.pyplot")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SKDIM_CIFAR10_NPZ", "/nonexistent/cifar10_jpeg_bytes.npz")
    monkeypatch.setattr(sys, "argv", ["plot_cifar10.py"])
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    plt.close("all")
    runpy.run_path(str(ROOT / "examples" / "paper" / "plot_cifar10.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "No CIFAR-10 data found" in out and "SKDIM_CIFAR10_NPZ" in out
    # The page (and the gallery thumbnail) shows a figure that says so, not nothing.
    texts = [t.get_text() for fig in map(plt.figure, plt.get_fignums())
             for ax in fig.axes for t in ax.texts]
    assert any("No CIFAR-10 data" in t for t in texts)
    plt.close("all")
