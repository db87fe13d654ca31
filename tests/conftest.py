"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pcatools._process import die_with_parent
from pcatools.reproducibility import hold_cpu_isa

# torch's CPU kernels held to AVX2 before anything loads torch, as the pcatools command does, so
# that the suite's trained models (and tests/test_recipe_guard.py) are the same on every CPU
hold_cpu_isa()

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """One BLAS/OpenMP thread pool per xdist worker, sized to its share of the CPUs.

    Two workers each running torch with every core oversubscribe a 2-core machine: OpenMP threads
    spin against each other and a 1-minute study took 13 minutes (measured). Notebook kernels and
    torchrun ranks started by the tests inherit the setting.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, share)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test where it is absent (a user's clone)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"../shared/data not found at {path}: real-data tests need the project's shared folder")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ci_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny study run (profile ``ci``) shared by the results notebooks and the JupyterLab browser test.

    Made once per test session even under pytest-xdist: the workers share the base temporary
    folder's parent, and a file lock lets the first one build the study while the others wait
    and then read it (pytest-xdist's documented pattern), so two workers never build it at once
    on the 2 cores.
    """
    from filelock import FileLock

    from pcatools.study import run_study

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's folder
    run_dir = shared / "ci_study" / "run"
    with FileLock(str(shared / "ci_study.lock")):
        if not (run_dir / "results" / "table1.csv").is_file():
            run_study(run_dir, profile="ci", seed=0, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def ci_evaluation(ci_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study's six models evaluated with ``pcatools evaluate`` (the user's path for own models)."""
    from pcatools.evaluation import evaluate_folders, study_predictions

    out = tmp_path_factory.mktemp("ci_evaluation") / "evaluation"
    data = ci_study / "data"
    evaluate_folders(
        out, data, pred=study_predictions(ci_study), suv=data, allow_missing=True, workers=0, progress=False
    )
    return out


@pytest.fixture(scope="session")
def xvfb_display() -> str | None:
    """A private Xvfb display for this test process, with ``DISPLAY``, ``QT_API`` and
    ``QT_QPA_PLATFORM`` set; ``None`` where Xvfb or napari's Qt binding is missing.

    Xvfb picks a free display itself (``-displayfd``), so parallel workers and other users of the
    machine never collide, and it stays up until the test process exits (a Qt application may still
    hold the connection), when ``die_with_parent`` stops it. Notebook kernels started later inherit
    the environment.
    """
    exe = shutil.which("Xvfb")
    if exe is None or importlib.util.find_spec("PyQt6") is None:
        return None
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not report a display number")
    os.environ["DISPLAY"] = f":{number}"
    os.environ["QT_API"] = "pyqt6"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return f":{number}"
