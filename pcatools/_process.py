"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask Linux to send ``sig`` to this process when the process that started it dies.

    Run in a child before ``exec`` (``subprocess.Popen(preexec_fn=die_with_parent)``) or as a
    worker pool's initializer, so that an Xvfb, a JupyterLab server or an evaluation worker does
    not keep running after a killed test run or ``pcatools`` command (``prctl(PR_SET_PDEATHSIG)``;
    elsewhere than Linux nothing is asked). With ``parent`` (the starter's pid), a parent already
    gone before the call ends this process at once.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)
