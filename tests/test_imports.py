"""Every module of ``pcatools`` imports, imports between them form no circle (at module level, nor
through imports inside functions), no module is over 900 lines, and ``import pcatools`` stays free of
torch (issue 17 item 3 and issue 27: one concept per module, no import circle at any level).

The import graph is read from the source with :mod:`ast`, not from ``sys.modules``: an edge
``a -> b`` is an ``import b`` / ``from b import x`` that runs when ``a`` is imported (module level,
also inside ``try`` / ``if`` / ``with`` / class bodies), with ``from pkg import sub`` an edge to the
submodule ``pkg.sub``. Imports inside functions run later and are no edges of that graph, but are
edges of the second graph (:func:`import_graph` with ``anywhere=True``), which must have no circle
either; imports inside ``if TYPE_CHECKING:`` never run and are no edges. Importing ``pkg.sub`` also runs ``pkg/__init__``,
but that implicit step is no edge: a package ``__init__`` that re-exports its submodules is the
edge ``pkg -> pkg.sub``, so a submodule importing a name from its own package's ``__init__`` is a
circle (import from the defining module instead).

Imports sit at module level, so that the top of a file says what it depends on (issue 27 item 4).
An import stays inside a function only where its start-up cost was measured (``python -X importtime``,
``pcatools --help``): torch, MONAI, napari, Qt, matplotlib, scipy.ndimage, nnU-Net and the pcatools
modules that pull them in. Such a line carries the one comment :data:`DEFERRED`, which
:func:`test_imports_inside_functions_say_why` checks.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import pcatools
from tests.conftest import REPO

#: third-party top-level package -> the optional extra of ``pyproject.toml`` that installs it;
#: a module that needs one of these is skipped (naming the extra) where it is absent
OPTIONAL_EXTRAS = {
    "napari": "viewer",
    "magicgui": "viewer",
    "PyQt6": "viewer",
    "qtpy": "viewer",
    "nnunetv2": "nnunet",
    "batchgenerators": "nnunet",
    "dynamic_network_architectures": "nnunet",
}

#: Circles between pcatools modules that exist today outside the modules issue 17 item 3 split,
#: each as the modules along it (``a -> b -> ... -> a``, starting at the smallest name). Every
#: entry is a known debt to remove (the coordinator removes an entry once its circle is broken);
#: a circle not listed here fails :func:`test_module_level_imports_form_no_circle`.
KNOWN_CYCLES: frozenset[tuple[str, ...]] = frozenset()

#: Circles through imports inside functions (issue 27 item 4: no import circle at any level), each
#: in a module whose owner breaks it; a circle not listed here fails
#: :func:`test_imports_at_any_level_form_no_circle`, one listed that is gone fails
#: :func:`test_known_cycles_still_exist`.
KNOWN_FUNCTION_LEVEL_CYCLES: frozenset[tuple[str, ...]] = frozenset()

#: The one comment on an import that stays inside a function because importing it costs start-up
#: time (issue 27 item 4); it sits on the statement's first line (ruff keeps it there).
DEFERRED = "# deferred: start-up (see tests/test_imports.py)"

#: The most lines a module of pcatools may have (issue 27 item 5): beyond it a module carries more
#: than one concept.
MAX_LINES = 900


def _module_infos() -> list[pkgutil.ModuleInfo]:
    """Every module and package under pcatools (``walk_packages`` imports the packages to look inside)."""

    def onerror(name: str) -> None:  # a package that cannot be imported is reported by the import test
        pass

    return sorted(
        pkgutil.walk_packages(pcatools.__path__, prefix="pcatools.", onerror=onerror), key=lambda m: m.name
    )


def _module_names() -> list[str]:
    return ["pcatools", *(m.name for m in _module_infos())]


def _source_files() -> dict[str, Path]:
    """Module name -> its source file, found on disk (no import needed)."""
    root = Path(pcatools.__file__).parent
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(not p.isidentifier() for p in parts):
            continue
        if not all((root.parent / Path(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue  # a folder without __init__.py is no package of pcatools
        files[".".join(parts)] = path
    return files


@pytest.mark.parametrize("name", _module_names())
def test_every_module_imports(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top in OPTIONAL_EXTRAS:
            pytest.skip(f"{name} needs the optional extra [{OPTIONAL_EXTRAS[top]}] ({top} is not installed)")
        raise


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when a module with this body is imported."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue  # runs when called, not when imported
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _import_time_imports(node.body)
            found += _import_time_imports(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, []) or []:
                    found += _import_time_imports(
                        child.body if isinstance(child, (ast.ExceptHandler, ast.match_case)) else [child]
                    )
    return found


def _all_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level and inside functions, not under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            found += _all_imports(node.orelse)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    found += _all_imports([child])
                elif isinstance(child, (ast.ExceptHandler, ast.match_case)):
                    found += _all_imports(child.body)
    return found


def _edges(name: str, path: Path, modules: set[str], anywhere: bool = False) -> set[str]:
    """The pcatools modules that ``name`` (source ``path``) imports at import time, or ``anywhere``
    (inside functions too, where an import runs later but still ties the two modules together)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in (_all_imports if anywhere else _import_time_imports)(tree.body):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            origin = ".".join([*base, node.module] if node.module else base)
        else:
            origin = node.module or ""
        for alias in node.names:
            sub = f"{origin}.{alias.name}"
            targets.add(sub if sub in modules else origin)
    return {t for t in targets if t in modules and t != name}


def import_graph(anywhere: bool = False) -> dict[str, set[str]]:
    """Module -> the pcatools modules it imports at import time (or ``anywhere``, inside functions too)."""
    files = _source_files()
    modules = set(files)
    return {name: _edges(name, path, modules, anywhere) for name, path in files.items()}


def elementary_cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every circle ``a -> b -> ... -> a`` without a repeated module, starting at its smallest name."""
    cycles: set[tuple[str, ...]] = set()
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.add(tuple(path))
                elif nxt > start and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return cycles


def _show(cycle: tuple[str, ...]) -> str:
    return " -> ".join([*cycle, cycle[0]])


def test_graph_reader_sees_what_runs_at_import(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import pcatools.a\n"
        "from pcatools import b\n"
        "from pcatools.c import thing\n"
        "from . import d\n"
        "try:\n    from pcatools import e\nexcept ImportError:\n    from pcatools import f\n"
        "if TYPE_CHECKING:\n    from pcatools import g\n"
        "def later():\n    from pcatools import h\n"
    )
    modules = {f"pcatools.{m}" for m in "abcdefgh"} | {"pcatools", "pcatools.x"}
    path = tmp_path / "x.py"
    path.write_text(source, encoding="utf-8")
    found = _edges("pcatools.x", path, modules)
    assert found == {f"pcatools.{m}" for m in "abcdef"}
    assert _edges("pcatools.x", path, modules, anywhere=True) == {f"pcatools.{m}" for m in "abcdefh"}
    assert elementary_cycles({"a": {"b"}, "b": {"c", "a"}, "c": {"a"}}) == {("a", "b"), ("a", "b", "c")}


def test_module_level_imports_form_no_circle() -> None:
    graph = import_graph()
    assert "pcatools.data" in graph and graph["pcatools.data"], "the import graph reader found nothing"
    cycles = elementary_cycles(graph)
    new = sorted(cycles - KNOWN_CYCLES)
    assert not new, "module-level imports form circles:\n" + "\n".join(_show(c) for c in new)


def test_imports_at_any_level_form_no_circle() -> None:
    """Imports inside functions count too: a circle there still means two modules that need each other."""
    graph = import_graph(anywhere=True)
    assert "pcatools.nnunet.trainers" in graph["pcatools.nnunet.run"], (
        "the reader missed a function-level import"
    )
    new = sorted(elementary_cycles(graph) - KNOWN_CYCLES - KNOWN_FUNCTION_LEVEL_CYCLES)
    assert not new, "imports (module or function level) form circles:\n" + "\n".join(_show(c) for c in new)


def test_known_cycles_still_exist() -> None:
    gone = sorted(KNOWN_CYCLES - elementary_cycles(import_graph()))
    gone += sorted(KNOWN_FUNCTION_LEVEL_CYCLES - elementary_cycles(import_graph(anywhere=True)))
    assert not gone, "known circles are gone; remove them from the list:\n" + "\n".join(
        _show(c) for c in gone
    )


#: modules over MAX_LINES today, each split by its owner, who removes it here (strict: a split
#: module that is still listed fails)
KNOWN_LONG_MODULES: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_LONG_MODULES[name]))
        if name in KNOWN_LONG_MODULES
        else name
        for name in sorted(_source_files())
    ],
)
def test_no_module_is_over_max_lines(name: str) -> None:
    lines = len(_source_files()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines, over {MAX_LINES} (split it where its concepts part)"


def unexplained_function_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, source)`` of each import inside a function body (nested functions and methods
    too) whose statement carries no :data:`DEFERRED` comment on any of its lines."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    seen: dict[int, tuple[int, str]] = {}
    for fn in ast.walk(ast.parse(text, filename=str(path))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                statement = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
                if not any(DEFERRED in line for line in statement):
                    seen[node.lineno] = (node.lineno, lines[node.lineno - 1].strip())
    return sorted(seen.values())


def test_function_import_reader_finds_the_unexplained(tmp_path: Path) -> None:
    source = (
        "import os\n"
        "def a():\n"
        f"    import json  {DEFERRED}\n"
        "    import csv\n"
        f"    from collections import (  {DEFERRED}\n"
        "        OrderedDict,\n"
        "    )\n"
        "    from pathlib import (\n"
        "        Path,\n"
        "    )\n"
        "    def inner():\n"
        "        import re  # for speed\n"
        "class C:\n"
        "    def m(self):\n"
        "        import abc\n"
    )
    path = tmp_path / "x.py"
    path.write_text(source, encoding="utf-8")
    assert unexplained_function_imports(path) == [
        (4, "import csv"),
        (8, "from pathlib import ("),
        (12, "import re  # for speed"),
        (15, "import abc"),
    ]


def test_imports_inside_functions_say_why() -> None:
    """Issue 27 item 4: an import inside a function is there for start-up time and says so, in one form."""
    files = _source_files()
    found = [
        f"{files[name].relative_to(REPO)}:{line}: {source}"
        for name in sorted(files)
        for line, source in unexplained_function_imports(files[name])
    ]
    assert not found, (
        f"imports inside functions without {DEFERRED!r}: move them to module level, or, where their "
        "start-up cost is measured, add the comment:\n" + "\n".join(found)
    )


def test_import_pcatools_does_not_import_torch() -> None:
    code = "import pcatools, sys; assert 'torch' not in sys.modules, 'import pcatools imported torch'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr


def test_cli_help_and_evaluate_import_no_torch() -> None:
    """``pcatools --help``, ``pcatools evaluate --help`` and the modules ``pcatools evaluate`` runs
    (evaluation, statistics, figures) import no torch: the command evaluates masks, it needs no network."""
    code = (
        "import sys; from typer.testing import CliRunner; from pcatools.cli import app; "
        "runner = CliRunner(); "
        "assert runner.invoke(app, ['--help']).exit_code == 0; "
        "assert runner.invoke(app, ['evaluate', '--help']).exit_code == 0; "
        "import pcatools.evaluation, pcatools.stats, pcatools.seed_stats, pcatools.figures; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
