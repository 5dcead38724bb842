#!/usr/bin/env bash
# For a session lent a GPU: petri's CUDA paths and GPU figures in one run (under ten minutes).
#   bash benchmarks/gpu_check.sh            # installs nothing if .venv exists; OUT=dir keeps gpu_check.json
# On a fresh GPU machine: python3 -m venv .venv && .venv/bin/pip install torch && .venv/bin/pip install -e .
set -euo pipefail
cd "$(dirname "$0")/.."
export PETRI_DATA=${PETRI_DATA:-../shared/datasets}
py=${PYTHON:-.venv/bin/python}
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
timeout -k 10 "${GPU_CHECK_TIMEOUT:-540}" $py benchmarks/gpu_check.py --device cuda "$@"  # gpu_run.sh sets a shorter limit
