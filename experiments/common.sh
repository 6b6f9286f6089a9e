# Shared recipe for the studies of README "Results" (sourced, not run). One pool of runs, so a run two studies need is trained once:
#   experiments/results/runs/<block>[-<variant>]-d<depth>-s<seed>/  (summary.json, metrics.csv, fit.log, analysis/)
# Recipe ("F-MNIST short"): Fashion-MNIST padded to 32x32, the first LIMIT=10000 images of the 55k/5k training split,
# EPOCHS=4 epochs of the He et al. 2015 recipe (SGD 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 50% and 75% of training,
# pad-4 crop + flip), bf16 autocast + channels_last (PRECISION=32-true: fp32, channels-first), validation on the
# full 5k split, test once on the full 10k.
# Every run resumes (resume=auto) and is skipped once its summary.json exists, so re-running a study continues it.
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-experiments/results/runs}
EPOCHS=${EPOCHS:-4}
LIMIT=${LIMIT:-10000}
PRECISION=${PRECISION:-bf16-mixed}
if [ "$PRECISION" = bf16-mixed ]; then LAYOUT=true; else LAYOUT=false; fi
# TRAINER=gpu selects horesnet's trainer=gpu group (unset: the default CPU trainer).
RECIPE=(${TRAINER:+"trainer=$TRAINER"} data=fashion_mnist "data.limit_train=$LIMIT" "trainer.max_epochs=$EPOCHS" "trainer.precision=$PRECISION"
        "channels_last=$LAYOUT" logger.wandb.mode=offline trainer.enable_progress_bar=false)

train() {  # run name, fit options... (the name must say everything the options change)
  local name=$1; shift
  if [ -f "$RUNS/$name/summary.json" ]; then echo "skip $name (done)"; return; fi
  echo "train $name: $* ($(date +%T))"
  "$PY" -m horesnet.fit "$@" "${RECIPE[@]}" "hydra.run.dir=$RUNS/$name" resume=auto > /dev/null
  echo "  done $name ($(date +%T))"
}

robustness() {  # run name: accuracy and calibration under Gaussian input noise on 2,000 test images
  local name=$1
  if [ -f "$RUNS/$name/analysis/robustness.csv" ]; then return; fi
  "$PY" -m horesnet.analyze "ckpt=$RUNS/$name/checkpoints/last.ckpt" study=robustness limit=2000 wandb=offline \
      > /dev/null
}
