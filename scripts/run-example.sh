#!/usr/bin/env bash
# Quick start, part one: installs what is missing (scripts/deps.sh), then
# builds and runs the flagship example, a two-stage pipeline
# (examples/pipeline.cpp). The whole test suite is scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build/example -DCMAKE_BUILD_TYPE=Release \
  -DCSP_BUILD_TESTS=OFF -DCSP_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/example --target example_pipeline -j "$(nproc)"
echo "=== csp: running examples/pipeline.cpp ==="
build/example/examples/example_pipeline
