"""The layering of the package: a PyTorch core that stands alone, a thin shell over it.

* ``skdim.nn`` imports nothing from scikit-learn and nothing from skdim
  outside ``skdim.nn`` (a researcher can train DIM with it alone);
* no module imports another module's private names (``from x import _y``);
* the import graph between skdim's modules has no cycle.

The graph is read from the source (``import`` statements), so a lazy
import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skdim"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """``(imported module, imported names)`` of every import in ``path``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [alias.name for alias in node.names]))
    return out


MODULES = _modules()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n == "skdim.nn" or n.startswith("skdim.nn.")))
def test_core_imports_neither_sklearn_nor_the_shell(name):
    for target, _ in _imports(name, MODULES[name]):
        assert not target.startswith("sklearn"), f"{name} imports {target}"
        if target.startswith("skdim"):
            assert target == "skdim.nn" or target.startswith("skdim.nn."), f"{name} imports {target}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_private_names_of_another(name):
    for target, names in _imports(name, MODULES[name]):
        if not target.startswith("skdim") or target == name:
            continue
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        # A package may import its own private submodules (``from . import _x``).
        own_submodules = [n for n in private if f"{target}.{n}" in MODULES]
        assert private == own_submodules, f"{name} imports {private} from {target}"


def test_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        deps = set()
        for target, names in _imports(name, path):
            # ``from pkg import sub`` imports the submodule pkg.sub.
            for n in names:
                if f"{target}.{n}" in MODULES:
                    deps.add(f"{target}.{n}")
            if target in MODULES:
                deps.add(target)
        # A package's __init__ re-exporting its children is not a cycle of logic.
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    visiting, done = set(), set()

    def visit(node, stack):
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join(stack + [node])
        visiting.add(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep, stack + [node])
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_core_runs_without_sklearn():
    """Importing skdim.nn and training with it never loads scikit-learn."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from skdim.nn import DIMTrainer\n"
        "t = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)\n"
        "t.fit([torch.randn(8, 1, 8, 8)], epochs=1)\n"
        "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules), 'sklearn'\n"
    )
    # skdim/__init__ imports the shell; load skdim.nn without it, as a
    # researcher's environment without scikit-learn would.
    loader = (
        "import importlib.util, sys, types, pathlib\n"
        f"root = pathlib.Path({str(PACKAGE)!r})\n"
        "pkg = types.ModuleType('skdim'); pkg.__path__ = [str(root)]; sys.modules['skdim'] = pkg\n"
    )
    out = subprocess.run([sys.executable, "-c", loader + code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
