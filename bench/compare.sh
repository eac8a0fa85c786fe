#!/usr/bin/env bash
# Side-by-side comparison of csp and Go on SPEC §9 workloads W1-W8.
#
#   bench/compare.sh                      # all workloads, 5 repetitions each
#   REPS=3 WORKLOADS="w1_pingpong w8_fib" bench/compare.sh
#
# Builds bench/workloads.cpp (Release, in build/bench-release) and its Go twin
# bench/peers/go/workloads, then runs every workload REPS times, alternating
# csp and Go run by run (csp, Go, csp, Go, ...), so that a slow phase of the
# machine hits both alike. Each run is a fresh process that prints one line
# `<workload> <value> <unit>`. Prints a markdown table of the medians, the
# ratio csp/Go (lower is better for csp) and the spread (min-max) of each side.
#
# Environment: REPS (default 5); WORKLOADS (default: all, see
# `bench_workloads list`); CSP_THREADS (csp workers) and GOMAXPROCS (Go), both
# default to the number of cores; CXX picks the compiler for a fresh build
# directory; GOCACHE (default /tmp/gocache). Raw results are left in
# build/bench-release/compare-raw.txt. Needs cmake, a C++20 compiler, go,
# python3. About 2 minutes on 2 cores (the Go side of W6 alone takes ~5 s
# per run: a million goroutines with 2.7 KiB each).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build/bench-release
reps=${REPS:-5}
cores=$(nproc)
export CSP_THREADS=${CSP_THREADS:-$cores}
export GOMAXPROCS=${GOMAXPROCS:-$cores}
export GOCACHE=${GOCACHE:-/tmp/gocache}
export GOFLAGS=${GOFLAGS:--mod=mod}

for tool in cmake go python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing" >&2; exit 1; }
done

echo "=== building bench_workloads (Release) in $build ===" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCSP_BUILD_TESTS=OFF -DCSP_BUILD_EXAMPLES=OFF -DCSP_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target bench_workloads -j "$cores" >&2
csp_bin=$build/bench/bench_workloads

echo "=== building the Go workloads ===" >&2
go_bin=$build/go_workloads
(cd "$root/bench/peers/go/workloads" && go build -o "$go_bin" .)

workloads=${WORKLOADS:-$("$csp_bin" list)}
raw=$build/compare-raw.txt
: >"$raw"

run_one() {  # side binary workload
  local out
  if ! out=$("$2" "$3"); then
    echo "compare.sh: $1 $3 failed" >&2
    exit 1
  fi
  echo "$1 $out" | tee -a "$raw" >&2
}

echo "=== running (CSP_THREADS=$CSP_THREADS, GOMAXPROCS=$GOMAXPROCS, $reps repetitions, alternating) ===" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start=$SECONDS
for w in $workloads; do
  for ((r = 1; r <= reps; r++)); do
    run_one csp "$csp_bin" "$w"
    run_one go "$go_bin" "$w"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - start)) s of runs" >&2

python3 - "$raw" <<'EOF'
import statistics, sys

results = {}  # workload -> side -> [values]
units = {}
order = []
with open(sys.argv[1]) as f:
    for line in f:
        side, name, value, unit = line.split()
        if name not in results:
            results[name] = {"csp": [], "go": []}
            order.append(name)
        results[name][side].append(float(value))
        units[name] = unit

def fmt(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"

def spread(v):
    return f"{fmt(min(v))}-{fmt(max(v))}" if v else "-"

print("| workload | unit | csp median | Go median | csp/Go | csp spread (min-max) | Go spread (min-max) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for name in order:
    c, g = results[name]["csp"], results[name]["go"]
    cm = statistics.median(c) if c else None
    gm = statistics.median(g) if g else None
    ratio = f"{cm / gm:.2f}" if cm is not None and gm else "-"
    print(f"| {name} | {units[name]} | {fmt(cm) if c else '-'} | {fmt(gm) if g else '-'} | {ratio} "
          f"| {spread(c)} | {spread(g)} |")
EOF
