#!/usr/bin/env bash
# Paper scale on one GPU machine in one short slot: the whole workflow of
# bench/gpu/paper-mock-gpu.yaml (mock survey -> clean -> split -> blends; the paper's blend2flux
# on fresh blends and the paper's U-Net trained side by side on the one GPU; predictions, sep,
# evaluation), the GPU's utilisation sampled every second.
#   bash bench/gpu/paper_mock_gpu.sh OUT [BUDGET_S]        (default budget 520 s)
# Writes OUT/run.log (Snakemake), OUT/gpu.csv (nvidia-smi) and OUT/results.tgz (summary.md,
# the evaluation tables, the training histories and logs, the stage benchmarks), also when the
# budget runs out first (the training logs then hold the epochs done). Needs the workflow's
# packages (pip install -e '.[all]', or PYTHONPATH holding them) and runs in a fresh checkout:
# it refuses to touch an existing results/.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "${1:?usage: bench/gpu/paper_mock_gpu.sh OUT [BUDGET_S]}")
budget=${2:-520}
[ -e results ] && { echo "results/ exists: run this in a fresh checkout" >&2; exit 2; }
mkdir -p "$out"
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import snakemake, galsim, sep, astropy, mlflow, torch, blendphot
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || exit 2
nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw --format=csv -l 1 \
    > "$out/gpu.csv" 2>/dev/null &
smi=$!
start=$(date +%s)
timeout "$budget" python3 -m snakemake results/summary.md --cores 16 --resources gpu=2 --scheduler greedy \
    --configfile "${CONFIG:-bench/gpu/paper-mock-gpu.yaml}" > "$out/run.log" 2>&1
echo "snakemake exit $? after $(( $(date +%s) - start )) s"
kill "$smi" 2>/dev/null
tar -czf "$out/results.tgz" --ignore-failed-read results/summary.md results/evaluate results/benchmarks \
    results/train/*/history.csv results/logs results/split/table1.csv results/clean/qa.json 2>/dev/null
ls -la "$out"
