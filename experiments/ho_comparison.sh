#!/usr/bin/env bash
# Studies 2 and 3 (Luo et al., HO-ResNet): euler vs midpoint vs rk4 vs rk4 with learnable steps at equal depth 32
# and 56, SEEDS (default "0 1 2"), one recipe (experiments/common.sh). Control: euler with step h=0.25, whose
# output weight per unit (0.25) equals the mean of RK4's b = (1/6, 1/3, 1/3, 1/6): it separates "higher order"
# from "smaller residual branches at initialisation"; euler with h=0.5 is the same control for midpoint
# (b = (0, 1)). Then per depth: the horesnet.compare table (mean ± std, fairness check), robustness under
# Gaussian input noise, and validation curves, in experiments/results/ho_comparison/. Resumable: re-running continues unfinished runs and skips finished ones.
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
    train "euler-h0.25-d$depth-s$seed" block=euler step=0.25 depth=$depth seed=$seed
    train "euler-h0.5-d$depth-s$seed" block=euler step=0.5 depth=$depth seed=$seed
  done
done
for depth in $DEPTHS; do
  for seed in $SEEDS; do
    for v in euler midpoint rk4 rk4-learnstep euler-h0.25 euler-h0.5; do robustness "$v-d$depth-s$seed"; done
  done
done
"$PY" experiments/report.py ho_comparison "$RUNS" experiments/results/ho_comparison
