"""Every public docstring example runs, and the API reference lists every public name.

A public module is ``skdim`` or any submodule whose dotted path has no part
starting with an underscore; its public names are its ``__all__``. Each
public class and function must have a numpydoc ``Examples`` section with at
least one example that actually runs (not only ``# doctest: +SKIP`` lines),
and every example in it must pass when run on its own, with empty globals,
as a user would paste it.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import skdim

ROOT = Path(__file__).resolve().parents[1]
API_RST = ROOT / "docs" / "api.rst"
EXAMPLES = ROOT / "examples"

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Public names whose docstring may, for now, lack a runnable Examples
# section, with the reason. Remove an entry once its example runs:
# test_exemptions_are_still_needed fails for stale entries.
EXAMPLES_PENDING: dict[str, str] = {}


def _public_modules() -> list[str]:
    names = ["skdim"]
    for info in pkgutil.walk_packages(skdim.__path__, prefix="skdim."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def _public_objects() -> dict[str, object]:
    """``{"module.name": object}`` for public classes and functions, each once.

    A name re-exported by several public modules is kept under the first
    (shortest) module path, the one users import it from.
    """
    found: dict[str, object] = {}
    seen: set[int] = set()
    for module_name in sorted(PUBLIC_MODULES, key=lambda m: (m.count("."), m)):
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            found[f"{module_name}.{name}"] = obj
    return found


PUBLIC_OBJECTS = _public_objects()


def _examples_section(doc: str) -> str | None:
    match = re.search(r"^Examples\n-{8,}\n(.*?)(?=^\S[^\n]*\n-{3,}\n|\Z)", doc, re.S | re.M)
    return match.group(1) if match else None


def _runnable_examples(section: str) -> list[doctest.Example]:
    examples = doctest.DocTestParser().get_examples(section)
    skip = doctest.OPTIONFLAGS_BY_NAME["SKIP"]
    return [ex for ex in examples if not ex.options.get(skip, False)]


def test_public_modules_are_found():
    # Guards the discovery itself: an empty or partial list would make the
    # tests below pass vacuously.
    assert {"skdim", "skdim.metrics", "skdim.evaluation", "skdim.datasets"} <= set(PUBLIC_MODULES)
    assert not [m for m in PUBLIC_MODULES if "._" in m]
    assert {"skdim.DeepInfoMax", "skdim.MINEScorer", "skdim.NDMScorer"} <= set(PUBLIC_OBJECTS)


@pytest.mark.parametrize("qualname", sorted(PUBLIC_OBJECTS))
def test_docstring_has_a_runnable_examples_section(qualname):
    if qualname in EXAMPLES_PENDING:
        pytest.skip(f"pending: {EXAMPLES_PENDING[qualname]}")
    doc = inspect.getdoc(PUBLIC_OBJECTS[qualname]) or ""
    section = _examples_section(doc)
    assert section is not None, f"{qualname} has no numpydoc 'Examples' section."
    assert _runnable_examples(section), (
        f"Every example of {qualname} is marked +SKIP; add one that runs."
    )


@pytest.mark.parametrize("qualname", sorted(PUBLIC_OBJECTS))
def test_docstring_examples_pass(qualname):
    obj = PUBLIC_OBJECTS[qualname]
    finder = doctest.DocTestFinder(exclude_empty=True)
    # The defining module, so that the examples of methods defined in a
    # class are found too; globs={} so that each example imports what it
    # uses, exactly as a reader copying it would have to.
    tests = finder.find(obj, qualname, module=inspect.getmodule(obj), globs={})
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)


def test_module_docstring_examples_pass():
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        test = doctest.DocTestParser().get_doctest(
            module.__doc__ or "", {}, module_name, module.__file__, 0
        )
        runner.run(test, out=report.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(report)


def test_exemptions_are_still_needed():
    stale = []
    for qualname in EXAMPLES_PENDING:
        obj = PUBLIC_OBJECTS.get(qualname)
        section = _examples_section(inspect.getdoc(obj) or "") if obj is not None else None
        if obj is None or (section is not None and _runnable_examples(section)):
            stale.append(qualname)
    assert not stale, f"Remove these from EXAMPLES_PENDING: {stale}"


# ------------------------------------------------------------ API reference


def _documented_names(rst: str) -> set[str]:
    """Fully qualified names listed in autosummary blocks of ``api.rst``."""
    names: set[str] = set()
    current = None
    in_autosummary = False
    for line in rst.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. currentmodule::"):
            current = stripped.split("::", 1)[1].strip()
            in_autosummary = False
        elif stripped.startswith(".. autosummary::"):
            in_autosummary = True
        elif in_autosummary:
            if not line.startswith("   ") and stripped:
                in_autosummary = False
            elif stripped and not stripped.startswith(":"):
                names.add(f"{current}.{stripped.lstrip('~')}")
    return names


def test_api_reference_lists_every_public_name():
    rst = API_RST.read_text(encoding="utf-8")
    documented = _documented_names(rst)
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                # Documented as a module section of its own.
                if f":mod:`{obj.__name__}`" not in rst:
                    missing.append(obj.__name__)
            elif inspect.isclass(obj) or inspect.isfunction(obj):
                qualname = next(q for q, o in PUBLIC_OBJECTS.items() if o is obj)
                if qualname not in documented:
                    missing.append(qualname)
            elif f"``{name}``" not in rst and f"``{module_name}.{name}``" not in rst:
                # Constants and type aliases are described in the text.
                missing.append(f"{module_name}.{name}")
    assert not missing, f"docs/api.rst does not document: {missing}"


def test_api_reference_lists_nothing_that_does_not_exist():
    for qualname in _documented_names(API_RST.read_text(encoding="utf-8")):
        module_name, name = qualname.rsplit(".", 1)
        assert hasattr(importlib.import_module(module_name), name), qualname


# ------------------------------------------------------------------ gallery


def test_gallery_layout():
    """sphinx-gallery needs a README.txt per folder and a titled docstring per example."""
    assert (EXAMPLES / "README.txt").is_file()
    scripts = sorted(EXAMPLES.rglob("plot_*.py"))
    assert len(scripts) >= 8
    for folder in {p.parent for p in scripts}:
        assert (folder / "README.txt").is_file(), f"{folder} lacks README.txt"
    for script in scripts:
        doc = inspect.cleandoc(
            __import__("ast").get_docstring(__import__("ast").parse(script.read_text())) or ""
        )
        lines = doc.splitlines()
        # A title between two rules of "=" at least as long as the title.
        assert len(lines) >= 3 and set(lines[0]) == {"="} and set(lines[2]) == {"="}, script
        assert len(lines[0]) >= len(lines[1]) and len(lines[2]) >= len(lines[1]), script
