#!/usr/bin/env bash
# Debian/Ubuntu packages that the GUI tests (napari + PyQt6 under Xvfb, JupyterLab in chromium) need.
#
# - xvfb: the virtual X server that tests/test_viewer.py starts (Xvfb :99 or a free display).
# - libxkbcommon-x11-0, libxcb-*: the Qt 6 "xcb" platform plugin's shared libraries
#   (PyQt6's bundled libqxcb.so links against these; missing ones make Qt abort with
#   "Could not load the Qt platform plugin xcb").
# - libgl1, libegl1: OpenGL for vispy (napari's canvas); Mesa renders in software under Xvfb.
# - libdbus-1-3, libfontconfig1: loaded by QtGui / QtDBus at start-up.
# - chromium, fonts-dejavu-core: the browser that tests/test_jupyterlab.py drives with Playwright
#   (executable_path=chromium, so `playwright install` never downloads a browser of its own) to
#   check the README's JupyterLab command in a real browser; the fonts give its screenshots text.
#
# Idempotent: does nothing when every package is already installed. Runs apt-get directly as root,
# or through sudo otherwise. Static PNG export of the figures uses matplotlib (pcatools.figures),
# so the figures need no browser (kaleido); only the JupyterLab test does.
set -euo pipefail

PACKAGES=(
  xvfb
  libxkbcommon-x11-0
  libxcb-icccm4
  libxcb-image0
  libxcb-keysyms1
  libxcb-randr0
  libxcb-render-util0
  libxcb-xinerama0
  libxcb-xfixes0
  libxcb-shape0
  libxcb-cursor0
  libxcb-xkb1
  libgl1
  libegl1
  libgl1-mesa-dri
  libdbus-1-3
  libfontconfig1
  fonts-dejavu-core
  chromium
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps.sh: not a Debian/Ubuntu system (no dpkg/apt-get); install the equivalents of:" >&2
  echo "  ${PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_system_deps.sh: all ${#PACKAGES[@]} system packages present; nothing to do"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install_system_deps.sh: missing packages ${missing[*]}, and not root and no sudo" >&2
  exit 1
fi

echo "install_system_deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
