#!/usr/bin/env bash
# Analysis demonstration on real data (Fashion-MNIST padded to 32x32), resumable: re-running skips finished steps.
# Trains ResNet-56 (euler), plain-56 and RK4-56 with the same short recipe, then runs
#   lesion + lesion_random on ResNet-56 and plain-56, paths + effective on ResNet-56 and RK4-56.
# Results (CSV/JSON/PNG, summary.json, metrics.csv) land in experiments/results/analysis_demo/<net>/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=experiments/results/analysis_demo
EPOCHS=${EPOCHS:-3}
LIMIT=${LIMIT:-30000}
COMMON=(data=fashion_mnist "data.limit_train=$LIMIT" "trainer.max_epochs=$EPOCHS" trainer.precision=bf16-mixed
        channels_last=true seed=0 logger.wandb.mode=offline trainer.enable_progress_bar=false)
train() {  # name, fit options...
  local name=$1; shift
  [ -f "$OUT/$name/summary.json" ] || "$PY" -m horesnet.fit "$@" "${COMMON[@]}" "hydra.run.dir=$OUT/$name" resume=auto
}
train euler-56 block=euler depth=56
train plain-56 block=euler depth=56 shortcut=plain
train rk4-56 block=rk4 depth=56

EVAL=(limit=2000 wandb=offline seed=0)
for net in euler-56 plain-56; do
  "$PY" -m horesnet.analyze "ckpt=$OUT/$net/checkpoints/last.ckpt" "study='lesion,lesion_random'" granularity=both \
      "ks=[1,2,4,8,12,16,20]" trials=5 "${EVAL[@]}"
done
for net in euler-56 rk4-56; do
  "$PY" -m horesnet.analyze "ckpt=$OUT/$net/checkpoints/last.ckpt" "study='paths,effective'" \
      samples_per_length=200 effective_images=256 "${EVAL[@]}"
done
