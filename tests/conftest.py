"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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
def xvfb_display() -> Iterator[str | None]:
    """Start an Xvfb server for GUI tests (napari) and set ``DISPLAY``; ``None`` where Xvfb is missing.

    Each pytest-xdist worker gets its own display number. Tests that need a screen skip on ``None``.
    """
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        yield None
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = 90 + int("".join(ch for ch in worker if ch.isdigit()) or 0)
    display = f":{number}"
    proc = subprocess.Popen(
        [xvfb, display, "-screen", "0", "1280x1024x24", "+extension", "GLX", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        time.sleep(0.1)
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    os.environ.setdefault("QT_API", "pyqt6")
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
