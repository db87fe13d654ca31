"""The public API: the package's lazy entry points and the reference in ``docs/api.md``.

Known answers: every entry point is the object its module defines, ``import pcatools`` in a fresh
interpreter imports no torch / MONAI / napari, and every dotted name the reference shows exists.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

import pcatools
from tests.conftest import REPO

API_MD = REPO / "docs" / "api.md"

#: the entry points the package must offer (issue 14, item 7)
REQUIRED = {
    "run_study",
    "load_study",
    "evaluate_folders",
    "evaluate_case",
    "evaluate_cohort",
    "table1",
    "L1DiceFocalLoss",
    "build_model",
    "train",
    "predict_manifest",
    "make_cohort",
    "discover_cases",
    "load_case",
    "dicom_pet_to_suv",
    "view_case",
}

#: the modules whose sections the reference must have (the README's "What is where" and evaluation)
MODULES = [
    "pcatools.data.dicom",
    "pcatools.data.dicom.suv",
    "pcatools.data.io",
    "pcatools.data.discovery",
    "pcatools.data.folders",
    "pcatools.data.splits",
    "pcatools.data.transforms",
    "pcatools.data.phantom",
    "pcatools.losses",
    "pcatools.models",
    "pcatools.training",
    "pcatools.inference",
    "pcatools.metrics",
    "pcatools.stats",
    "pcatools.figures",
    "pcatools.viewer",
    "pcatools.study",
    "pcatools.vocabulary",
    "pcatools.evaluation",
]


def resolve(dotted: str) -> Any:
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_entry_point_resolves_to_its_modules_object() -> None:
    assert set(pcatools.__all__) >= REQUIRED
    listed = dir(pcatools)
    for name in pcatools.__all__:
        assert name in listed, f"dir(pcatools) does not list {name}"
        value = getattr(pcatools, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        module = pcatools._LAZY[name]
        assert value is getattr(importlib.import_module(module), name), (
            f"pcatools.{name} is not {module}.{name}"
        )
    assert "importlib" not in listed and "Any" not in listed  # the module's own helpers stay out
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        pcatools.not_a_name  # noqa: B018


def test_import_pcatools_imports_no_heavy_package() -> None:
    code = (
        "import sys, pcatools; "
        "heavy = sorted(m for m in ('torch', 'monai', 'napari', 'pandas', 'nibabel') if m in sys.modules); "
        "print(','.join(heavy)); "
        "print(len(dir(pcatools)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    heavy, n_names = out.stdout.split("\n")[:2]
    assert heavy == "", f"import pcatools imported {heavy}"
    assert int(n_names) >= len(REQUIRED)


def _documented_names() -> list[str]:
    return sorted(set(re.findall(r"`(pcatools(?:\.\w+)+)`", API_MD.read_text(encoding="utf-8"))))


def test_every_name_in_the_api_reference_exists() -> None:
    names = _documented_names()
    assert len(names) > 100, f"docs/api.md names only {len(names)} objects"
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name} ({type(err).__name__}: {err})")
    assert not missing, "docs/api.md names objects that do not exist:\n" + "\n".join(missing)


def test_api_reference_covers_every_module_and_entry_point() -> None:
    text = API_MD.read_text(encoding="utf-8")
    names = _documented_names()
    for module in MODULES:
        assert isinstance(resolve(module), ModuleType)
        assert any(n.startswith(module + ".") for n in names), f"docs/api.md documents nothing of {module}"
    for name in REQUIRED:
        assert f"`{name}`" in text, f"docs/api.md does not list the entry point {name}"
    assert "DESIGN.md" not in text and "internal API" not in text
