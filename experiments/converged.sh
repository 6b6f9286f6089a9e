#!/usr/bin/env bash
# The converged study (docs/converged.md): does a higher-order scheme still beat Euler once both start from the same
# residual scale, when training has run long enough for the training error to plateau?
#
# Recipe ("F-MNIST converged"): Fashion-MNIST padded to 32x32, the first LIMIT=10000 images of the 55k/5k training
# split, EPOCHS=30 epochs of He et al.'s step schedule, fp32 (the same arithmetic on every CPU), validation on all 5k
# validation images every epoch, test once at the end on all 10k test images. Every number is the final epoch's.
#
# One idempotent command for pre-emptible machines: start it at any time, again after a kill, on a fresh disk.
#   - it resumes the unfinished run if its checkpoint is there (resume=auto), otherwise starts the next missing
#     run of the plan; a finished run (summary.json with status finished) is never trained again;
#   - it never runs twice: the lock file $OUT/study.lock holds the process id; a second start while that process
#     lives exits 0 at once ("already running"); a lock whose process is gone is taken over;
#   - it runs at the lowest priority (nice 19, and its session's autogroup at nice 19 where the kernel groups
#     sessions) in its own process group, whose id is the lock's pid, so that
#       kill -STOP -- -$(cat experiments/results/converged/study.lock)    # pause (CONT to continue)
#     pauses the study and the training process under it;
#   - one run at a time; after each finished run the report is regenerated (experiments/report_converged.py) and,
#     with COMMIT=1, the run's small files (summary.json, metrics.csv, .hydra/, cpus.json, fit.log; never
#     checkpoints) and the report are committed to git.
#
# Order (each phase's arms interleaved by seed, so that partial results stay balanced):
#   a. depth 56: euler, rk4, euler step=scale(rk4)                       seeds 0 1 2
#   b. depth 56: midpoint, euler step=scale(midpoint)                    seeds 0 1 2
#   c. degradation: ResNet-20, plain-20, plain-56 (ResNet-56 is a.'s)    seeds 0 1 2
#   d. depth 56: LM-ResNet and momentum 0.9 with their matched Euler controls (once those schemes are registered)
#   e. depth 56: rk4 learn_step, euler and rk4 zero_init_last; then depth 32 (all arms); ResNet-20 on the full
#      split; seeds 3 4 where a key difference has p in [0.01, 0.2]; lesion and effective-path studies.
#
#   bash experiments/converged.sh                 # run (or continue) the study
#   bash experiments/converged.sh plan            # the plan in order, each run done / partial / pending
#   STOP_AFTER=a bash experiments/converged.sh    # stop after phase a (a b c d e)
set -euo pipefail
main() {  # one function: bash reads it whole before running, so editing this file never disturbs a running study
  cd "$(dirname "$0")/.."
  RUNS=${RUNS:-experiments/results/converged/runs}
  OUT=${OUT:-experiments/results/converged}
  EPOCHS=${EPOCHS:-30}
  LIMIT=${LIMIT:-10000}
  PRECISION=${PRECISION:-32-true}
  STOP_AFTER=${STOP_AFTER:-e}
  SEEDS=${SEEDS:-0 1 2}
  source experiments/common.sh
  local mode=${1:-run}
  case "$mode" in run|plan) ;; *) echo "usage: bash experiments/converged.sh [run|plan]" >&2; return 2;; esac

  scale_steps() {  # "block depth ..." -> the Euler steps matching those networks' residual scales (4 decimals)
    "$PY" -c "import sys; from horesnet.models import build_model; from horesnet.models.scale import residual_scale; \
from horesnet.comparison.variants import control_step; a = sys.argv[1:]; \
print(' '.join(str(control_step(residual_scale(build_model(block=b, depth=int(d)))['mean'])) \
for b, d in zip(a[::2], a[1::2])))" "$@"
  }
  registered() { "$PY" -c "import sys, horesnet; sys.exit(sys.argv[1] not in horesnet.list_schemes())" "$1"; }

  status_of() {  # run name -> done | partial | pending
    if [ -f "$RUNS/$1/summary.json" ] && grep -q '"status": "finished"' "$RUNS/$1/summary.json"; then echo done
    elif [ -f "$RUNS/$1/checkpoints/last.ckpt" ]; then echo partial; else echo pending; fi
  }
  step() {  # phase, run name, fit options...: print it (plan) or train it (run)
    local phase=$1 name=$2; shift 2
    if [ "$mode" = plan ]; then printf '%s %-26s %-8s %s\n' "$phase" "$name" "$(status_of "$name")" "$*"; return; fi
    [ "$(status_of "$name")" = done ] && return 0
    train "$name" "$@"
    "$PY" experiments/report_converged.py report "$RUNS" "$OUT" > /dev/null 2>&1 || echo "  (report failed)"
    commit_run "$name"
  }
  commit_run() {  # with COMMIT=1: the finished run's small files and the report, in a commit of their own
    [ "${COMMIT:-0}" = 1 ] || return 0
    local i f paths=("$(realpath "$RUNS/$1")")
    for f in converged.md converged.json d56 d32 degradation; do
      [ -e "$OUT/$f" ] && paths+=("$(realpath "$OUT/$f")")
    done
    for i in $(seq 30); do  # another git command may hold the index for a moment
      # git -C the results folder: the study's code may run from another checkout than the one it writes into
      if git -C "$OUT" add -- "${paths[@]}" 2>/dev/null \
          && git -C "$OUT" commit -q -m "Converged study: $1 finished" -- "${paths[@]}" > /dev/null 2>&1; then
        echo "  committed $1"; return 0
      fi
      sleep 10
    done
    echo "  could not commit $1 (commit it by hand)"
  }

  if [ "$mode" = run ]; then
    mkdir -p "$RUNS"
    take_lock
    renice -n 19 -p $$ > /dev/null 2>&1 || true
    # Linux with autogroup (sched_autogroup_enabled=1) shares the CPU between sessions first and applies nice only
    # inside one: the session's group gets nice 19 too, or the study takes a full share beside a test run
    if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup 2> /dev/null || true; fi
    echo "converged study: pid $$ ($(date +%F\ %T)), pause with: kill -STOP -- -$$"
  fi

  local s hr hm
  read -r hr hm <<< "$(scale_steps rk4 56 midpoint 56)"
  for s in $SEEDS; do
    step a "euler-d56-s$s" block=euler depth=56 seed="$s"
    step a "rk4-d56-s$s" block=rk4 depth=56 seed="$s"
    step a "euler-h$hr-d56-s$s" block=euler step="$hr" depth=56 seed="$s"
  done
  [ "$STOP_AFTER" = a ] && return 0
  for s in $SEEDS; do
    step b "midpoint-d56-s$s" block=midpoint depth=56 seed="$s"
    step b "euler-h$hm-d56-s$s" block=euler step="$hm" depth=56 seed="$s"
  done
  [ "$STOP_AFTER" = b ] && return 0
  for s in $SEEDS; do
    step c "euler-d20-s$s" block=euler depth=20 seed="$s"
    step c "plain-d20-s$s" block=euler depth=20 shortcut=plain seed="$s"
    step c "plain-d56-s$s" block=euler depth=56 shortcut=plain seed="$s"
  done
  [ "$STOP_AFTER" = c ] && return 0
  local b hb
  for b in lm momentum; do
    if ! registered "$b"; then [ "$mode" = plan ] && echo "d (block=$b not registered yet: skipped)"; continue; fi
    hb=$(scale_steps "$b" 56)
    for s in $SEEDS; do
      step d "$b-d56-s$s" block="$b" depth=56 seed="$s"
      step d "euler-h$hb-d56-s$s" block=euler step="$hb" depth=56 seed="$s"
    done
  done
  [ "$STOP_AFTER" = d ] && return 0
  for s in $SEEDS; do
    step e "rk4-learnstep-d56-s$s" block=rk4 learn_step=true depth=56 seed="$s"
    step e "euler-zil-d56-s$s" block=euler zero_init_last=true depth=56 seed="$s"
    step e "rk4-zil-d56-s$s" block=rk4 zero_init_last=true depth=56 seed="$s"
  done
  read -r hr hm <<< "$(scale_steps rk4 32 midpoint 32)"
  for s in $SEEDS; do
    step e "euler-d32-s$s" block=euler depth=32 seed="$s"
    step e "rk4-d32-s$s" block=rk4 depth=32 seed="$s"
    step e "euler-h$hr-d32-s$s" block=euler step="$hr" depth=32 seed="$s"
    step e "midpoint-d32-s$s" block=midpoint depth=32 seed="$s"
    step e "euler-h$hm-d32-s$s" block=euler step="$hm" depth=32 seed="$s"
    step e "rk4-learnstep-d32-s$s" block=rk4 learn_step=true depth=32 seed="$s"
    step e "euler-zil-d32-s$s" block=euler zero_init_last=true depth=32 seed="$s"
    step e "rk4-zil-d32-s$s" block=rk4 zero_init_last=true depth=32 seed="$s"
  done
  (  # the full training split: the same recipe without the 10k limit
    RECIPE=(${TRAINER:+"trainer=$TRAINER"} data=fashion_mnist data.limit_train=null "trainer.max_epochs=$EPOCHS"
            "trainer.precision=$PRECISION" "channels_last=$LAYOUT" logger.wandb.mode=offline
            trainer.enable_progress_bar=false)
    step e "euler-full-d20-s0" block=euler depth=20 seed=0
  )
  local name opts
  "$PY" experiments/report_converged.py extra "$RUNS" | while read -r name opts; do
    # shellcheck disable=SC2086  # opts is a list of fit options
    step e "$name" $opts
  done
  [ "$mode" = plan ] && return 0
  local run
  for run in "$RUNS"/*-d56-s0; do
    [ -f "$run/summary.json" ] && [ ! -f "$run/analysis/effective.csv" ] || continue
    "$PY" -m horesnet.analyze "ckpt=$run/checkpoints/last.ckpt" "study='lesion,effective'" \
        samples_per_length=200 effective_images=256 limit=2000 wandb=offline seed=0 > /dev/null
  done
  "$PY" experiments/report_converged.py report "$RUNS" "$OUT"
}

take_lock() {  # the lock file holds our pid; a live holder means "already running", a dead one is taken over
  LOCK="$OUT/study.lock"
  local pid
  pid=$(cat "$LOCK" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null \
      && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q converged.sh; then
    echo "converged study: already running (pid $pid, $LOCK); nothing to do" >&2
    exit 0
  fi
  [ -n "$pid" ] && [ "$pid" != $$ ] && echo "converged study: taking over the lock of pid $pid (gone)" >&2
  echo $$ > "$LOCK.$$" && mv -f "$LOCK.$$" "$LOCK"
  trap 'rm -f "$LOCK"' EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

# its own process group (same pid), so that one signal to -pid pauses or stops the study and its training process
if [ "${1:-run}" = run ] && [ "$(ps -o pgid= $$ | tr -d ' ')" != $$ ] && command -v setsid > /dev/null; then
  exec setsid bash "$0" "$@"
fi
main "$@"
