#!/usr/bin/env bash
# Multistep and momentum schemes on real data (docs/results.md, "LM-ResNet and Momentum ResNet at depth 56"):
# euler, lm (LM-ResNet, learned k) and momentum (gamma = 0.9) at depth 56, SEEDS (default "0 1 2"), the short
# Fashion-MNIST recipe of experiments/common.sh; each with its matched-scale Euler control, whose step h is the
# variant's residual scale at initialisation rounded to 4 digits (horesnet.comparison.variants.control_step; `info block=lm
# depth=56` prints 1.041, `block=momentum` 0.4305; euler's control is itself). Then `horesnet.compare` over the
# runs (mean +/- std, 95% CI, Welch p) into experiments/results/multistep_comparison/.
# Resumable: re-running continues unfinished runs and skips finished ones (the euler runs are shared with the
# other studies of the pool).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/common.sh
SEEDS=${SEEDS:-0 1 2}
scale() {  # the residual scale of block=$1 at depth 56, rounded as the matched control's step
  "$PY" -c "from horesnet import build_model; from horesnet.models.scale import residual_scale
from horesnet.comparison.variants import control_step
print(control_step(residual_scale(build_model(block='$1', depth=56, in_channels=1))['mean']))"
}
H_LM=$(scale lm)
H_MOM=$(scale momentum)
for seed in $SEEDS; do
  train "euler-d56-s$seed" block=euler depth=56 seed=$seed
  train "lm-d56-s$seed" block=lm depth=56 seed=$seed
  train "euler-h$H_LM-d56-s$seed" block=euler step=$H_LM depth=56 seed=$seed
  train "momentum-d56-s$seed" block=momentum depth=56 seed=$seed
  train "euler-h$H_MOM-d56-s$seed" block=euler step=$H_MOM depth=56 seed=$seed
done
folders=()
for v in euler lm "euler-h$H_LM" momentum "euler-h$H_MOM"; do
  for seed in $SEEDS; do folders+=("$RUNS/$v-d56-s$seed"); done
done
"$PY" -m horesnet.compare "${folders[@]}" out=experiments/results/multistep_comparison
