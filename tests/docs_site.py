"""The documentation site built once per test process, and the public names it must show.

``mkdocs build --strict`` (mkdocs.yml) runs in a child interpreter that then reports which heavy
packages it imported: the reference is read from the source statically (griffe), so none may be.
The public names are read from the source with :mod:`ast` as well, independently of mkdocstrings,
so that a name the reference leaves out is caught.
"""

from __future__ import annotations

import ast
import atexit
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

#: packages that building the site must not import (torch-heavy or pcatools itself)
HEAVY = ("torch", "monai", "napari", "pcatools", "nnunetv2")

#: modules documented elsewhere than the API reference: the command line (``pcatools --help``) and
#: the module nnU-Net imports (written by ``pcatools nnunet install-trainers``)
NOT_IN_REFERENCE = ("pcatools.cli", "pcatools.commands", "pcatools.nnunet.shim")

_BUILD = """
import json, sys
from mkdocs.__main__ import cli
try:
    cli.main(args=["build", "--strict", "--site-dir", sys.argv[1]], standalone_mode=False)
    ok = True
except Exception as err:  # mkdocs' Abort: 'Aborted with N warnings in strict mode!'
    print(err, file=sys.stderr)
    ok = False
print(json.dumps({"ok": ok, "heavy": sorted(m for m in sys.argv[2:] if m in sys.modules)}))
"""


@dataclass(frozen=True)
class Site:
    """A built site: its folder, whether the strict build passed, its log and the heavy imports."""

    path: Path
    ok: bool
    log: str
    heavy: list[str]


def require_mkdocs() -> None:
    """Skip where the docs tools are not installed (they come with the ``dev`` extra)."""
    for module in ("mkdocs", "mkdocstrings_handlers.python", "mkdocs_jupyter", "material"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[dev]')")


@functools.cache
def built_site() -> Site:
    """``mkdocs build --strict`` of the repository into a temporary folder (removed at exit)."""
    out = Path(tempfile.mkdtemp(prefix="pcatools-site-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD, str(out / "site"), *HEAVY],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return Site(out / "site", report["ok"], proc.stderr, report["heavy"])


def inventory(site: Path) -> dict[str, str]:
    """``{dotted name: role}`` of the site's ``objects.inv`` (Sphinx inventory v2: 4 header lines,
    then zlib-compressed ``name role priority uri dispname`` lines)."""
    data = (site / "objects.inv").read_bytes()
    start = 0
    for _ in range(4):
        start = data.index(b"\n", start) + 1
    entries = {}
    for line in zlib.decompress(data[start:]).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        entries[name] = role
    return entries


@dataclass(frozen=True)
class Name:
    """A public name of a module: what it is and whether it has a docstring where it is defined."""

    module: str
    name: str
    kind: str  # "function", "class", "data" or "imported"
    documented: bool


def reference_modules() -> list[str]:
    """Every public module of pcatools that the API reference documents."""
    modules = []
    for path in sorted((REPO / "pcatools").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        dotted = ".".join(parts)
        if any(p.startswith("_") for p in parts) or dotted.startswith(NOT_IN_REFERENCE):
            continue
        modules.append(dotted)
    return modules


def _source(module: str) -> Path:
    path = REPO.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def public_names(module: str) -> list[Name]:
    """The module's ``__all__``, else the names its top level defines without a leading ``_``."""
    body = ast.parse(_source(module).read_text(encoding="utf-8")).body
    defined: dict[str, tuple[str, bool]] = {}
    exported: list[str] | None = None
    dicts: dict[str, list[str]] = {}
    for i, node in enumerate(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            defined[node.name] = (kind, ast.get_docstring(node) is not None)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            after = body[i + 1] if i + 1 < len(body) else None
            documented = (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            )
            for target in targets:
                if (
                    isinstance(target, ast.Name)
                    and target.id == "__all__"
                    and isinstance(node.value, ast.List)
                ):
                    exported = []
                    for element in node.value.elts:  # names, and *_LAZY (the keys of a dict above)
                        if isinstance(element, ast.Constant):
                            exported.append(element.value)
                        elif isinstance(element, ast.Starred) and isinstance(element.value, ast.Name):
                            exported.extend(dicts[element.value.id])
                elif isinstance(target, ast.Name):
                    defined[target.id] = ("data", documented)
                    if isinstance(node.value, ast.Dict):
                        dicts[target.id] = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
    names = exported if exported is not None else [n for n in defined if not n.startswith("_")]
    return [Name(module, n, *defined.get(n, ("imported", True))) for n in names]


def definition(module: str, name: str) -> str:
    """The dotted path where ``module.name`` is defined, following ``from ... import`` statements and
    the lazy ``_LAZY = {name: module}`` tables of the packages (the reference documents it there)."""
    body = ast.parse(_source(module).read_text(encoding="utf-8")).body
    package = module if _source(module).name == "__init__.py" else module.rpartition(".")[0]
    for node in body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = node.module if node.level == 0 else ".".join(p for p in (base, node.module) if p)
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            return definition(source, original) if source and source.startswith("pcatools") else name
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
        ):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == name and isinstance(value, ast.Constant):
                    return definition(value.value, name)
    return f"{module}.{name}"
