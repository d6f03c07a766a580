#!/usr/bin/env bash
# The prepared check for a short GPU slot (bench/gpu_check.py): at most 6 minutes, each phase
# time-guarded, the JSON written after every phase.
#   bash bench/gpu_check.sh [OUT.json]      default: bench/results/gpu_check-<card>.json
set -uo pipefail
cd "$(dirname "$0")/.."
card=$(python3 -c 'import torch; print(torch.cuda.get_device_name(0).replace(" ", "_") if torch.cuda.is_available() else "cpu")')
out=${1:-bench/results/gpu_check-${card}.json}
mkdir -p "$(dirname "$out")"
PYTHONUNBUFFERED=1 timeout 360 python3 bench/gpu_check.py --out "$out" --budget-s 300
echo "exit $? -> $out"
