#!/usr/bin/env bash
# Study 1 (He et al. 2015, Fig. 1/6): plain-20 vs plain-56 vs ResNet-20 vs ResNet-56 under one recipe
# (experiments/common.sh), SEEDS (default "0 1 2"); training/validation error curves and a table in
# experiments/results/degradation/. Resumable: re-running continues unfinished runs and skips finished ones.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/common.sh
SEEDS=${SEEDS:-0 1 2}
for seed in $SEEDS; do
  for depth in 20 56; do
    train "euler-d$depth-s$seed" block=euler depth=$depth seed=$seed
    train "plain-d$depth-s$seed" block=euler depth=$depth shortcut=plain seed=$seed
  done
done
"$PY" experiments/report.py degradation "$RUNS" experiments/results/degradation
