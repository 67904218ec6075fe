#!/usr/bin/env bash
# The course's check on a lent GPU machine (no internet, no Jupyter), as one prepared command.
# Here, first:   make offline-bundle   (fills .gpu/, git-ignored: the data, wheels incl. pytest, env.sh)
# There:         bash tests/gpu_check.sh PROFILE [CHAPTERS]   (PROFILE: smoke, gpu or bench; carry .gpu)
#                bash tests/gpu_check.sh bench [BENCHMARKS]   (e.g. "speedrun"; all of them by default)
# It runs the GPU-only tests (device placement, no host syncs in a training step), then `make verify` for the
# profile with six chapters at once (or `make bench`, or only the named benchmarks), and copies the tables and logs
# into $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
profile=${1:?usage: tests/gpu_check.sh smoke|gpu [CHAPTERS] or tests/gpu_check.sh bench [BENCHMARKS]}
selection=${2:-}   # chapters for smoke and gpu, benchmarks for bench
out=${OUT:-chapters/outputs/gpu-check}
mkdir -p "$out"
source .gpu/env.sh
status=0
if python3 -c "import pytest" 2>/dev/null; then
  python3 -m pytest -q -p no:cacheprovider tests/test_devices.py 2>&1 | tee "$out/pytest-devices.txt" || status=1
fi
if [ "$profile" = bench ]; then
  python3 -m utils.course.bench $selection 2>&1 | tee "$out/bench.log" || status=1
  cp README.md "$out/README-bench.md"
else
  make verify PROFILE="$profile" JOBS=6 CHAPTERS="$selection" 2>&1 | tail -40 || status=1
  cp "chapters/outputs/verify-$profile.md" "chapters/outputs/verify-$profile.json" "$out/" 2>/dev/null
  tar -czf "$out/logs-$profile.tar.gz" -C chapters/outputs "verify-$profile" 2>/dev/null
fi
exit $status
