"""The subpackages import one way: data -> preprocess -> datasets, data -> losses -> networks
-> training -> estimators, and nothing imports what sits above it.

Two checks: every ``import``/``from ... import`` of the source (those inside functions
included, which is how the old ``survseg.data.loaders`` hid its cycle with
``survseg.preprocess``) forms an acyclic graph that respects the layers below; and each
subpackage, imported alone in a fresh interpreter, works and loads none of the packages above it.

``survseg.evaluation`` holds the metrics (Harrell's C, Dice) that ``score`` and the deep
estimators' validation use, as ``sklearn.metrics`` sits below scikit-learn's estimators; the
benchmark takes estimators as arguments and never imports them.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "survseg"

_ABOVE_PREPROCESS = {
    "datasets",
    "radiomics",
    "losses",
    "networks",
    "training",
    "estimators",
    "evaluation",
    "plotting",
}
# unit -> the survseg units it must never import (directly, lazily or through others)
FORBIDDEN = {
    "data": {"preprocess", *_ABOVE_PREPROCESS},
    "preprocess": _ABOVE_PREPROCESS,
    "datasets": {"networks", "training", "estimators", "evaluation", "plotting"},
    "losses": {"preprocess", "networks", "training", "estimators", "evaluation"},
    "networks": {"preprocess", "training", "estimators", "evaluation"},
    "training": {"preprocess", "estimators", "evaluation", "radiomics"},
    "radiomics": {"preprocess", "networks", "training", "estimators", "evaluation"},
    "evaluation": {"preprocess", "networks", "training", "estimators", "plotting"},
    "estimators": {"preprocess", "datasets", "plotting", "commands", "demo", "registry"},
}


def _unit(path: Path) -> str:
    """The top-level unit of survseg a file belongs to (``data``, ``base``, ...)."""
    first = path.relative_to(PACKAGE).with_suffix("").parts[0]
    return "" if first == "__init__" else first


def _is_unit(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _imported_units(path: Path) -> set[str]:
    """Units of survseg that ``path`` imports anywhere (module level or inside functions)."""
    package = ["survseg", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                module = package[: len(package) - node.level + 1]
                module += node.module.split(".") if node.module else []
            else:
                module = node.module.split(".")
            if module[0] != "survseg":
                continue
            if len(module) > 1:
                found.add(module[1])
            else:  # from survseg import x / from .. import x: x is a unit or a name of survseg
                found.update(a.name for a in node.names if _is_unit(a.name))
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("survseg."))
    return found - {_unit(path)}


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        graph.setdefault(_unit(path), set()).update(_imported_units(path))
    return graph


def _reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_import_graph_finds_relative_and_lazy_imports():
    graph = _import_graph()
    assert "data" in graph["preprocess"]  # from ..data.io import ...
    assert "feature_selection" in graph["evaluation"]  # imported inside a function
    assert {"estimators", "datasets"} <= graph["utils"]  # from .. import estimators


def test_the_import_graph_has_no_cycle():
    graph = _import_graph()
    cycles = sorted(unit for unit in graph if unit in _reachable(graph, unit))
    assert not cycles, f"units on an import cycle: {cycles}"


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_no_unit_imports_a_layer_above_it(unit):
    graph = _import_graph()
    above = _reachable(graph, unit) & FORBIDDEN[unit]
    assert not above, f"survseg.{unit} imports (perhaps through others) {sorted(above)}"


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_each_subpackage_imports_alone(unit):
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        f"import survseg.{unit}\n"
        "print(' '.join(sorted({m.split('.')[1] for m in sys.modules "
        "if m.startswith('survseg.')})))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    loaded = set(run.stdout.split())
    assert unit in loaded
    assert not loaded & FORBIDDEN[unit], f"import survseg.{unit} loads {loaded & FORBIDDEN[unit]}"
