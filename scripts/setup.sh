#!/usr/bin/env bash
# Create or update the project's virtual environment. Safe to run again: it only adds what is missing.
#
#   scripts/setup.sh [VENV]          (default .venv; `make setup` calls this)
#
# torch: an existing torch in the environment is always kept (a GPU user's CUDA build stays as it is).
# Without one, a machine with an NVIDIA GPU gets PyPI's default torch build, and a machine without
# gets torch==$TORCH_CPU_VERSION (default 2.13.0, a CPU wheel where one is on hand).
# Environment: PYTHON (interpreter for a new venv, default python3), TORCH_CPU_VERSION,
# VENV_SYSTEM_SITE_PACKAGES=1 (let the venv see a torch installed system-wide, e.g. in a CUDA image).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.finetune_nb-installed"

# Nothing to do when the environment was made from these very files.
want=$(cat pyproject.toml requirements/constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then exit 0; fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else f"finetune_nb needs Python >= 3.11; {sys.executable} is {sys.version.split()[0]} (set PYTHON=...)")'
  echo "==> creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv ${VENV_SYSTEM_SITE_PACKAGES:+--system-site-packages} "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install --quiet)

if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "==> keeping torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "==> NVIDIA GPU found and no torch: installing PyPI's default (CUDA) torch build"
  "${PIP[@]}" "torch>=2.6"
else
  echo "==> no GPU and no torch: installing torch==${TORCH_CPU_VERSION:-2.13.0} (CPU)"
  "${PIP[@]}" "torch==${TORCH_CPU_VERSION:-2.13.0}"
fi

echo "==> installing finetune_nb and its dev tools (pinned by requirements/constraints.txt)"
"${PIP[@]}" -c requirements/constraints.txt -e ".[dev]"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name finetune-nb --display-name "Python (finetune_nb)" >/dev/null
echo "$want" > "$STAMP"
echo "==> ready: $VENV (Jupyter kernel 'finetune-nb')"
