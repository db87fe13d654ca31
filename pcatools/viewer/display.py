"""Whether napari can open a window here, found without Qt.

Qt's platform plugin aborts the whole process (exit 134, a dead notebook kernel) when it finds no
display, so every entry point that opens napari calls :func:`require_display` first
(:func:`display_problem` says why there is none); :func:`pcatools.viewer.static.static_layers_figure`
draws the same layers as matplotlib slices where there is no display.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NO_DISPLAY_HINT", "NoDisplayError", "display_available", "display_problem", "require_display"]

NO_DISPLAY_HINT = (
    "run it on a desktop, under `xvfb-run -a pcatools view ...`, or save a PNG of the window with "
    "`xvfb-run -a pcatools view ... --screenshot out.png`"
)
"""How to run napari without a display of one's own (the second half of :class:`NoDisplayError`)."""

# Qt platform plugins that need no display server (QT_QPA_PLATFORM set by the user)
_HEADLESS_QT_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


class NoDisplayError(RuntimeError):
    """No display for napari's window; raised before Qt is imported, which would abort the process."""


def _x_server_reachable(display: str, timeout: float = 2.0) -> bool:
    """Whether the X server of ``display`` (``[host]:n[.screen]``) accepts a connection on its socket.

    Only the socket is opened, no X connection is set up: an X server without other clients
    (Xvfb under ``xvfb-run``) resets when its last client leaves, and after an X connection set
    up and closed here Qt's own connection a moment later failed (measured with libxcb: 69 of
    100 times), which aborts the process. X authorisation is therefore not checked.
    """
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        # libxcb's order on Linux: the abstract socket, then the file
        addresses = [f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"]
        for address in addresses:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        return False
    try:
        with socket.create_connection((host.strip("[]"), 6000 + int(number)), timeout=timeout):
            return True
    except OSError:
        return False


def _wayland_socket(environ: Mapping[str, str]) -> Path | None:
    name = environ.get("WAYLAND_DISPLAY", "")
    if not name:
        return None
    path = Path(name) if os.path.isabs(name) else Path(environ.get("XDG_RUNTIME_DIR", "")) / name
    return path if path.exists() else None


def display_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why Qt could not open a window here, or ``None`` when it can.

    On Linux and the BSDs: a Wayland socket (``WAYLAND_DISPLAY``) that exists, or an X server
    (``DISPLAY``) that accepts a connection, for the platforms ``QT_QPA_PLATFORM`` allows (both
    when unset); a headless platform (``offscreen``, ``minimal``, ...) chosen there needs none.
    macOS and Windows always have a display. The check runs without Qt because Qt's platform
    plugin, finding no display, aborts the process instead of raising.

    Examples
    --------
    >>> display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    True
    """
    env = os.environ if environ is None else environ
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        return None
    requested = [p.split(":")[0].strip() for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    platforms = requested or ["wayland", "xcb"]
    if any(p in _HEADLESS_QT_PLATFORMS for p in platforms):
        return None
    display = env.get("DISPLAY", "")
    wants_wayland = any(p.startswith("wayland") for p in platforms)
    if wants_wayland and _wayland_socket(env) is not None:
        return None
    if "xcb" in platforms and display and _x_server_reachable(display):
        return None
    if not display and not env.get("WAYLAND_DISPLAY"):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    found = []
    if display:
        found.append(
            f"the X server DISPLAY={display} is not reachable"
            if "xcb" in platforms
            else f"DISPLAY={display} is set but QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']} excludes X"
        )
    if env.get("WAYLAND_DISPLAY"):
        found.append(
            f"no Wayland socket {env['WAYLAND_DISPLAY']!r}"
            if wants_wayland
            else f"WAYLAND_DISPLAY is set but QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']} excludes Wayland"
        )
    return "no usable display (" + "; ".join(found) + ")"


def display_available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether napari can open a window here (:func:`display_problem` is ``None``)."""
    return display_problem(environ) is None


def require_display(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`NoDisplayError` (why, and how to run napari anyway) when there is no display.

    Called before napari / Qt is imported, which on Linux would abort the process with exit 134.
    """
    problem = display_problem(environ)
    if problem is not None:
        raise NoDisplayError(f"{problem}; {NO_DISPLAY_HINT}")
