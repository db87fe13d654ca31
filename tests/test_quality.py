"""Lint (ruff) and type-check (mypy) run as part of the test suite."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    # ruff of this interpreter's environment (found also when the venv is not on PATH)
    if importlib.util.find_spec("ruff") is None and shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    cmd = [sys.executable, "-m", "ruff"] if importlib.util.find_spec("ruff") else [str(shutil.which("ruff"))]
    proc = _run([*cmd, "check", "pcatools", "tests", "benchmarks", "notebooks"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.xdist_group("mypy")
def test_mypy_clean() -> None:
    proc = _run([sys.executable, "-m", "mypy"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
