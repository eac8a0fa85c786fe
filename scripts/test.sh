#!/usr/bin/env bash
# The whole test suite, as CI runs it: builds with g++ and clang++ at
# -Wall -Wextra -Werror, then runs every test plain, under ThreadSanitizer and
# under AddressSanitizer+UndefinedBehaviorSanitizer (LeakSanitizer included).
#
#   scripts/test.sh            everything
#   scripts/test.sh quick      g++ only, no sanitizers
# The `exhaustive` CTest label (many more seeds of the deterministic race
# scenarios) is left out: run it with `ctest --test-dir build/gcc -L exhaustive`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
mode=${1:-all}

build_and_test() {  # name, extra cmake args...
  local name=$1; shift
  echo "=== csp: $name ==="
  cmake -S . -B "${CSP_BUILD_ROOT:-build}/$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "${CSP_BUILD_ROOT:-build}/$name" -j "$jobs"
  ctest --test-dir "${CSP_BUILD_ROOT:-build}/$name" -j "$jobs" --output-on-failure --timeout 600 -LE exhaustive
}

export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=1 detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"

build_and_test gcc -DCMAKE_CXX_COMPILER=g++
[ "$mode" = quick ] && exit 0
build_and_test clang -DCMAKE_CXX_COMPILER=clang++ -DCSP_BUILD_BENCHMARKS=OFF
build_and_test gcc-tsan -DCMAKE_CXX_COMPILER=g++ -DCSP_SANITIZE=thread -DCSP_BUILD_BENCHMARKS=OFF
build_and_test gcc-asan -DCMAKE_CXX_COMPILER=g++ -DCSP_SANITIZE=address -DCSP_BUILD_BENCHMARKS=OFF
build_and_test clang-asan -DCMAKE_CXX_COMPILER=clang++ -DCSP_SANITIZE=address -DCSP_BUILD_BENCHMARKS=OFF
echo "=== csp: all test builds passed ==="
