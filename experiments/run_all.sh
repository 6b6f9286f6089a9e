#!/usr/bin/env bash
# Every study of README "Results", in order: degradation, then the HO comparison (with robustness and curves). Resumable.
set -euo pipefail
cd "$(dirname "$0")"
./degradation.sh
./ho_comparison.sh
