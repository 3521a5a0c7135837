#!/usr/bin/env bash
# On a machine with a CUDA GPU: set up, then print training samples/s and prediction texts/s (fp32 and half precision,
# with their top-1 agreement) -> bench/results/gpu.md; then prediction at scale over every GPU of the machine.
#   scripts/gpu_bench.sh [--base-model microsoft/deberta-v3-base]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || make setup
nvidia-smi --query-gpu=name,memory.total --format=csv
.venv/bin/python bench/bench_gpu.py "$@"
.venv/bin/python bench/bench_eval_scale.py --sizes 100000 1000000 --threads 4
