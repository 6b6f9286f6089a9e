#!/usr/bin/env bash
# Companion of gpu_check.sh, run HERE (with network) before a GPU check (docs/benchmarks_method.md): fills the
# git-ignored folder benchmarks/.gpu, which travels with the code (carry: benchmarks/.gpu), with
#   wheels/  what the GPU machine's Python lacks: hydra-core, omegaconf, antlr4-python3-runtime 4.9.3 (built here:
#            PyPI has only its sdist) and pytest (exceptiongroup, tomli: its Python 3.10 needs; pip does not apply
#            --python-version to dependency markers), for CPython 3.10-3.12 on linux x86_64 (pure-Python wheels, so
#            one folder serves every version; --with-wandb adds wandb, ~25 MB more, not needed: the check logs CSV)
#   data/    the four gzipped Fashion-MNIST IDX files (~30 MB)
#
#   bash benchmarks/gpu_prepare.sh [--python-version 3.X]... [--with-wandb] [--data-from DIR]
set -eu
cd "$(dirname "$0")/.."
OUT=benchmarks/.gpu
PY=${PYTHON:-python3}
VERSIONS=() PKGS=(hydra-core omegaconf pytest exceptiongroup tomli) SRC=/usr/share/datasets/fashion-mnist
while [ $# -gt 0 ]; do
    case $1 in
        --python-version) VERSIONS+=("$2"); shift 2 ;;
        --with-wandb) PKGS+=(wandb); shift ;;
        --data-from) SRC=$2; shift 2 ;;
        *) echo "gpu_prepare: unknown option $1 (--python-version X.Y, --with-wandb, --data-from DIR)" >&2; exit 2 ;;
    esac
done
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(3.10 3.11 3.12)
mkdir -p "$OUT/wheels" "$OUT/data"
"$PY" -m pip wheel --quiet --no-deps "antlr4-python3-runtime==4.9.3" -w "$OUT/wheels"
for v in "${VERSIONS[@]}"; do
    "$PY" -m pip download --quiet --only-binary=:all: --python-version "$v" --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
        --find-links "$OUT/wheels" -d "$OUT/wheels" "${PKGS[@]}" "antlr4-python3-runtime==4.9.3"
done
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    cp "$SRC/$f.gz" "$OUT/data/"
done
du -sh "$OUT/wheels" "$OUT/data"
echo "gpu_prepare: done; run the check with carry [\"benchmarks/.gpu\"]: bash benchmarks/gpu_check.sh RESULTS_DIR"
