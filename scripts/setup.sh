#!/usr/bin/env bash
# Create .venv at the repository root and install pcatools with every extra (viewer, notebooks, dev, nnunet, cluster).
# torch is pinned to the CPU build (requirements-cpu.txt); GPU users: see README "GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -r "${PCATOOLS_TORCH_REQUIREMENTS:-requirements-cpu.txt}"
# nnunetv2 (extra nnunet) needs timm, which needs torchvision, whose newest release would replace torch
# with another build (multi-GB CUDA): pin torch to the build installed above while installing the extras.
TORCH_PIN=$(mktemp)
python -c "import torch; print('torch==' + torch.__version__)" > "$TORCH_PIN"
# constraints.txt pins every other package at the versions the README's numbers were made with
python -m pip install -q -c "$TORCH_PIN" -c constraints.txt -e ".[viewer,notebooks,dev,nnunet,cluster]"
rm -f "$TORCH_PIN"
python -m ipykernel install --sys-prefix --name python3 >/dev/null
# JupyterLab's "Would you like to get notified about official Jupyter news?" pop-up covers the page on
# the first start: its plugin is disabled in this environment only (.venv/etc/jupyter/labconfig).
jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1
echo "pcatools $(python -c 'import pcatools; print(pcatools.__version__)') installed in $(pwd)/.venv"
