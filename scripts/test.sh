#!/usr/bin/env bash
# Set up .venv and the Debian packages the GUI tests need (Xvfb, xcb libraries), then run the whole
# test suite: lint (ruff), types (mypy), unit and integration tests, every notebook, napari under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_system_deps.sh
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -n "${PCATOOLS_TEST_WORKERS:-2}" --dist loadgroup "$@"
