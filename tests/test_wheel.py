"""The wheel: it holds every module and works alone, outside the checkout.

Known answers: the wheel lists exactly the ``.py`` files of ``pcatools/``; installed into an empty
folder (no editable install, no checkout on the path) its console script answers ``--help`` and
``--version`` (the package's ``__version__``) and evaluates two hand-made masks to DSC 1 and 2/3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import pcatools
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (the checkout gets no ``build/``), with the
    environment's setuptools (no download)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "pcatools", src / "pcatools", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(src),
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (whl,) = out.glob("pcatools-*.whl")
    return whl


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into an empty folder (dependencies come from this environment)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def _pcatools(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, run from ``cwd`` with only the installed folder added to the path."""
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "100"}
    return subprocess.run(
        [str(site / "bin" / "pcatools"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_wheel_holds_every_module(wheel: Path) -> None:
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "pcatools").rglob("*.py")}
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(f"pcatools-{pcatools.__version__}.dist-info/METADATA").decode()
    assert {n for n in names if n.endswith(".py")} == sources
    assert "Requires-Python: >=3.10" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Reference code, https://github.com/ObedDzik/pca_segment" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata


def test_installed_wheel_runs_outside_the_checkout(site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the package imported is the installed one, not the checkout's
    where = subprocess.run(
        [sys.executable, "-c", "import pcatools; print(pcatools.__file__)"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip() == str(site / "pcatools" / "__init__.py")

    version = _pcatools(site, elsewhere, "--version")
    assert (version.returncode, version.stdout) == (0, f"pcatools {pcatools.__version__}\n")
    help_ = _pcatools(site, elsewhere, "--help")
    assert help_.returncode == 0, help_.stderr
    for command in ("convert", "phantom", "train", "predict", "study", "evaluate", "view", "nnunet"):
        assert f" {command} " in help_.stdout, f"pcatools --help does not list {command}"


def test_installed_wheel_evaluates_two_masks(site: Path, tmp_path: Path) -> None:
    """Two 8^3 cases, one lesion each: the prediction equals the first (DSC 1) and covers half of
    the second's 8 voxels plus nothing else (DSC 2 * 4 / (8 + 4) = 2/3)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for case, covered in (("c1", 8), ("c2", 4)):
        g = np.zeros((8, 8, 8), np.uint8)
        g[2:4, 2:4, 2:4] = 1
        p = np.zeros_like(g)
        p.reshape(-1)[np.flatnonzero(g)[:covered]] = 1
        nib.save(nib.Nifti1Image(g, np.eye(4)), gt / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(p, np.eye(4)), pred / f"{case}.nii.gz")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _pcatools(site, elsewhere, "evaluate", "out", "--gt", str(gt), "--pred", f"model={pred}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = pd.read_csv(elsewhere / "out" / "results" / "cases.csv").set_index("case_id")
    assert cases.loc["c1", "dice"] == 1.0
    assert cases.loc["c2", "dice"] == pytest.approx(2 / 3, abs=1e-12)


def test_changelog_names_the_current_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if line.startswith("## "))
    assert first.startswith(f"## {pcatools.__version__} ")
