#!/usr/bin/env bash
# Builds the libFuzzer target (clang, ASan+UBSan) and fuzzes it for a bounded
# time. Fails on a divergence from the channel model, a crash or a sanitizer
# report; the offending input is left in $CSP_BUILD_ROOT/fuzz/artifacts.
#
#   scripts/fuzz.sh            120 seconds
#   scripts/fuzz.sh 600        600 seconds
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
seconds=${1:-120}
build="${CSP_BUILD_ROOT:-build}/fuzz"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DCSP_FUZZ=ON \
      -DCSP_BUILD_BENCHMARKS=OFF -DCSP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target fuzz_channels -j "$(nproc)"
# Fuzz into a scratch copy of the corpus, so the checked-in one only changes by hand.
work="$build/corpus"
rm -rf "$work" && mkdir -p "$work" "$build/artifacts"
cp fuzz/corpus/* "$work"/
echo "=== csp: fuzzing for ${seconds}s ==="
export ASAN_OPTIONS="detect_leaks=1"
status=0
"$build/fuzz/fuzz_channels" -max_total_time="$seconds" -max_len=512 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/" "$work" >"$build/fuzz.log" 2>&1 || status=$?
grep -E "stat::|ERROR|divergence|SUMMARY" "$build/fuzz.log" || true
[ "$status" -eq 0 ] || tail -n 40 "$build/fuzz.log"
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz.log")
echo "=== csp: fuzzing ran ${runs:-?} programs, exit status $status ==="
exit "$status"
