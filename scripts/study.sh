#!/usr/bin/env bash
# The main job: set up .venv, then run the synthetic demo study (2 networks x 3 losses) into runs/demo/.
# Extra arguments go to `pcatools study` (e.g. --profile paper --data-dir /data/autopet).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
pcatools study runs/demo --profile demo "$@"
