#!/usr/bin/env bash
# One prepared GPU check, under 8 minutes on one GPU (docs/benchmarks_method.md):
#   (a) the pytest tests marked gpu (tests/test_gpu.py)         -> RESULTS_DIR/gpu_tests.json
#   (b) the throughput benchmark on CUDA: eager suites          -> RESULTS_DIR/throughput.json (+ .md)
#       and, in a second run so that a slow compilation costs only its own part, compiled vs eager in
#       bf16 + channels_last (what trainer=gpu trains in)      -> RESULTS_DIR/compile.json
#   (c) a short Fashion-MNIST fit (rk4, depth 56, trainer=gpu)  -> RESULTS_DIR/fit.json
#   and RESULTS_DIR/gpu_check.json: every part's exit status and seconds.
# Without CUDA the same script runs a CPU fallback with tiny settings (< 2 min).
#
#   benchmarks/gpu_prepare.sh                       # here, with network: wheels + Fashion-MNIST into benchmarks/.gpu
#   bash benchmarks/gpu_check.sh RESULTS_DIR [DATA_DIR]
#
# DATA_DIR holds the four Fashion-MNIST IDX files (default benchmarks/.gpu/data). Environment: PYTHON (default
# python), GPU_CHECK_COMPILE (variants compiled in (b); default euler56,rk4_56,rk8_92), GPU_CHECK_WHEELS (default
# benchmarks/.gpu/wheels).
set -u
RESULTS=${1:?usage: benchmarks/gpu_check.sh RESULTS_DIR [DATA_DIR]}
cd "$(dirname "$0")/.."
REPO=$PWD
mkdir -p "$RESULTS" && RESULTS=$(cd "$RESULTS" && pwd)
DATA=${2:-$REPO/benchmarks/.gpu/data}
PY=${PYTHON:-python}
WHEELS=${GPU_CHECK_WHEELS:-$REPO/benchmarks/.gpu/wheels}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=disabled

# Python packages the device lacks (no network there): from the wheels gpu_prepare.sh downloaded.
if ! "$PY" -c "import hydra, omegaconf, pytest" 2>/dev/null; then
    "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" hydra-core omegaconf pytest \
        > "$RESULTS/pip.log" 2>&1 || echo "gpu_check: pip install from $WHEELS failed, see $RESULTS/pip.log"
fi

part() {  # part NAME SECONDS CMD...: run CMD under a time limit, log to NAME.log, keep NAME.rc and NAME.seconds
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "gpu_check: $name (at most ${limit} s)"
    timeout -s INT -k 15 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    rc=$?
    echo "$rc" > "$RESULTS/$name.rc"
    echo $(( $(date +%s) - start )) > "$RESULTS/$name.seconds"
    echo "gpu_check: $name exit $rc after $(cat "$RESULTS/$name.seconds") s"
}

if "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    COMPILE=${GPU_CHECK_COMPILE:-euler56,rk4_56,rk8_92}
    TESTS_S=190; FIT_S=85; BENCH_S=60; COMPILE_S=105  # 440 s, plus pip and shutdowns: under 8 minutes
    BENCH=(--device cuda --suite throughput,checkpointing --batch 128 --steps 10 --rounds 2 --warmup 2
           --threads "$(nproc)" --quiet-wait 0)
    FIT=(block=rk4 depth=56 trainer=gpu trainer.max_epochs=2)
else
    echo "gpu_check: no CUDA device, CPU fallback with tiny settings"
    TESTS_S=300; FIT_S=300; BENCH_S=300  # guards only: seconds each on a quiet machine, minutes on a busy one
    BENCH=(--device cpu --tiny --quick --batch 2 --suite throughput,checkpointing --variants baseline56,euler56
           --precisions fp32 --quiet-wait 0)
    FIT=(block=euler depth=8 width=0.25 trainer=cpu trainer.max_epochs=1 data.val_size=64 data.limit_train=64
         data.limit_val=32 data.limit_test=32 data.batch_size=32 data.eval_batch_size=32 data.verify=false)
fi

# (a) the gpu-marked tests (skipped, with the reason, without CUDA)
part gpu_tests "$TESTS_S" "$PY" -m pytest tests/test_gpu.py -m gpu -rs -p no:cacheprovider \
    --junitxml "$RESULTS/gpu_tests.xml"
"$PY" -m benchmarks.gpu_report junit "$RESULTS/gpu_tests.xml" "$RESULTS/gpu_tests.json"

# (c) a short real-data fit; its summary.json -> fit.json
part fit "$FIT_S" "$PY" -m horesnet.fit "${FIT[@]}" data=fashion_mnist "data.root=$DATA" data.download=false \
    logger=csv trainer.enable_progress_bar=false "hydra.run.dir=$RESULTS/fit_run"
"$PY" -m benchmarks.gpu_report fit "$RESULTS/fit_run" "$RESULTS/fit.json"

# (b) throughput and memory: eager suites, then compiled vs eager (CUDA only)
part throughput "$BENCH_S" "$PY" -m benchmarks.throughput "${BENCH[@]}" --out "$RESULTS/throughput.json" \
    --markdown "$RESULTS/throughput.md"
if [ -n "${COMPILE:-}" ]; then
    part compile "$COMPILE_S" "$PY" -m benchmarks.throughput --device cuda --suite compile --compile-variants \
        "$COMPILE" --precisions bf16cl --batch 128 --steps 10 --rounds 2 --warmup 2 --threads "$(nproc)" \
        --quiet-wait 0 \
        --out "$RESULTS/compile.json" --markdown "$RESULTS/compile.md"
fi

"$PY" -m benchmarks.gpu_report overview "$RESULTS"
