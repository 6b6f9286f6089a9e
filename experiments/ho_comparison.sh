#!/usr/bin/env bash
# Studies 2 and 3 (Luo et al., HO-ResNet): euler vs midpoint vs rk4 vs rk4 with learnable steps at equal depth 32
# and 56, SEEDS (default "0 1 2"), one recipe (experiments/common.sh). Then per depth: the horesnet.compare table
# (mean ± std, fairness check), robustness under Gaussian input noise, and validation curves, in
# experiments/results/ho_comparison/. Resumable: re-running continues unfinished runs and skips finished ones.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/common.sh
SEEDS=${SEEDS:-0 1 2}
DEPTHS=${DEPTHS:-32 56}
for seed in $SEEDS; do
  for depth in $DEPTHS; do
    train "euler-d$depth-s$seed" block=euler depth=$depth seed=$seed
    train "midpoint-d$depth-s$seed" block=midpoint depth=$depth seed=$seed
    train "rk4-d$depth-s$seed" block=rk4 depth=$depth seed=$seed
    train "rk4-learnstep-d$depth-s$seed" block=rk4 learn_step=true depth=$depth seed=$seed
  done
done
for depth in $DEPTHS; do
  for seed in $SEEDS; do
    for v in euler midpoint rk4 rk4-learnstep; do robustness "$v-d$depth-s$seed"; done
  done
done
"$PY" experiments/report.py ho_comparison "$RUNS" experiments/results/ho_comparison
