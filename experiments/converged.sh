#!/usr/bin/env bash
# The converged study (docs/results.md, "Converged study"): does a higher-order scheme still beat Euler once both
# start from the same residual scale, when training has run long enough for the training error to plateau?
#
# Recipe ("F-MNIST converged"): Fashion-MNIST padded to 32x32, the first LIMIT=10000 images of the 55k/5k training
# split, EPOCHS=30 epochs of He et al.'s step schedule (lr 0.1, /10 after 50% and 75%; a 15-epoch pilot of
# ResNet-56 still lost 0.9 points of training error over its last 3 epochs: results/converged/pilot15/), fp32
# (the same arithmetic on every CPU this project runs on; bf16 is emulated on CPUs without AVX-512-BF16/AMX), validation on all 5k
# validation images every epoch, test once at the end on all 10k test images. Nothing is selected on the test set:
# every number is the final epoch's.
#
# Order (so that partial results answer the main question first; one run at a time):
#   1. depth 56, seeds 0 1 2: euler, rk4, euler step=scale(rk4), midpoint, euler step=scale(midpoint),
#      rk4 learn_step, euler zero_init_last, rk4 zero_init_last
#   2. depth 32, the same
#   3. degradation: ResNet-20, plain-20, plain-56 (ResNet-56 is the euler run of 1), seeds 0 1 2
#   4. ResNet-20 on the full 55k training split, seed 0 (the published-reference comparison)
#   5. seeds 3 4 for every variant with a key difference whose p lies in [0.01, 0.2] (report_converged.py extra)
#   6. lesion and effective-path studies of seed 0 of every depth-56 variant; then the report.
# Resumable: re-running continues the unfinished run (resume=auto) and skips finished ones; kill it any time.
#   bash experiments/converged.sh                       # the whole study (about 50 h on a 2-core CPU)
#   STOP_AFTER=1 bash experiments/converged.sh          # only phase 1 (then re-run for the rest)
set -euo pipefail
main() {  # one function: bash reads it whole before running, so editing this file never disturbs a running study
  cd "$(dirname "$0")/.."
  RUNS=${RUNS:-experiments/results/converged/runs}
  OUT=${OUT:-experiments/results/converged}
  EPOCHS=${EPOCHS:-30}
  LIMIT=${LIMIT:-10000}
  PRECISION=${PRECISION:-32-true}
  STOP_AFTER=${STOP_AFTER:-6}
  source experiments/common.sh
  mkdir -p "$RUNS"

  scale_step() {  # block depth -> the Euler step that matches the residual scale of that network (4 decimals)
    "$PY" -c "import sys; from horesnet.models import build_model; from horesnet.models.scale import residual_scale; \
from horesnet.variants import control_step; \
print(control_step(residual_scale(build_model(block=sys.argv[1], depth=int(sys.argv[2])))['mean']))" "$1" "$2"
  }

  variants() {  # depth seed: the eight variants of the scheme comparison
    local d=$1 s=$2 hr hm
    hr=$(scale_step rk4 "$d"); hm=$(scale_step midpoint "$d")
    train "euler-d$d-s$s" block=euler depth="$d" seed="$s"
    train "rk4-d$d-s$s" block=rk4 depth="$d" seed="$s"
    train "euler-h$hr-d$d-s$s" block=euler step="$hr" depth="$d" seed="$s"
    train "midpoint-d$d-s$s" block=midpoint depth="$d" seed="$s"
    train "euler-h$hm-d$d-s$s" block=euler step="$hm" depth="$d" seed="$s"
    train "rk4-learnstep-d$d-s$s" block=rk4 learn_step=true depth="$d" seed="$s"
    train "euler-zil-d$d-s$s" block=euler zero_init_last=true depth="$d" seed="$s"
    train "rk4-zil-d$d-s$s" block=rk4 zero_init_last=true depth="$d" seed="$s"
  }

  SEEDS=${SEEDS:-0 1 2}
  for s in $SEEDS; do variants 56 "$s"; done
  [ "$STOP_AFTER" -le 1 ] && return 0
  for s in $SEEDS; do variants 32 "$s"; done
  [ "$STOP_AFTER" -le 2 ] && return 0
  for s in $SEEDS; do
    train "euler-d20-s$s" block=euler depth=20 seed="$s"
    train "plain-d20-s$s" block=euler depth=20 shortcut=plain seed="$s"
    train "plain-d56-s$s" block=euler depth=56 shortcut=plain seed="$s"
  done
  [ "$STOP_AFTER" -le 3 ] && return 0
  (  # the full training split: the same recipe without the 10k limit
    RECIPE=(${TRAINER:+"trainer=$TRAINER"} data=fashion_mnist data.limit_train=null "trainer.max_epochs=$EPOCHS" "trainer.precision=$PRECISION"
            "channels_last=$LAYOUT" logger.wandb.mode=offline trainer.enable_progress_bar=false)
    train "euler-full-d20-s0" block=euler depth=20 seed=0
  )
  [ "$STOP_AFTER" -le 4 ] && return 0
  "$PY" experiments/report_converged.py extra "$RUNS" | while read -r name opts; do
    # shellcheck disable=SC2086  # opts is a list of fit options
    train "$name" $opts
  done
  [ "$STOP_AFTER" -le 5 ] && return 0
  EVAL=(limit=2000 wandb=offline seed=0)
  for run in "$RUNS"/*-d56-s0; do
    [ -f "$run/summary.json" ] || continue
    "$PY" -m horesnet.analyze "ckpt=$run/checkpoints/last.ckpt" "study='lesion,effective'" \
        samples_per_length=200 effective_images=256 "${EVAL[@]}" > /dev/null
  done
  "$PY" experiments/report_converged.py report "$RUNS" "$OUT"
}
main "$@"
