#!/usr/bin/env bash
# Set up .venv and the Debian packages the GUI tests need (Xvfb, xcb libraries), then run the whole
# test suite: lint (ruff), types (mypy), unit and integration tests, every notebook, napari under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_system_deps.sh
bash scripts/setup.sh
. .venv/bin/activate
# --dist loadfile: a file's tests share one worker (the notebooks share one tiny study, the napari tests
# one Xvfb viewer). loadgroup would be finer, but pytest-xdist 3.8 ignores xdist_group under pytest 9.
# --durations: the slowest tests are listed at the end, for keeping the suite within its 20 minutes.
python -m pytest -n "${PCATOOLS_TEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
