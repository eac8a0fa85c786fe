#!/usr/bin/env bash
# First numbers: builds bench_channel (Release) and the Go peer, runs both with
# 5 repetitions and prints the medians side by side, with the spread (min-max
# across the repetitions) and the ratio csp/Go (lower is better).
#
#   bench/run_first_numbers.sh
#
# Environment: CXX picks the compiler for a fresh build dir (default: cmake's
# choice); REPS (default 5); GOMAXPROCS (default: number of cores, as SPEC §9
# asks); GOCACHE (default /tmp/gocache). Needs cmake, libbenchmark-dev, go,
# python3. Raw results are left in build/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build/bench
reps=${REPS:-5}
export GOMAXPROCS=${GOMAXPROCS:-$(nproc)}
export GOCACHE=${GOCACHE:-/tmp/gocache}

for tool in cmake go python3; do
  command -v "$tool" >/dev/null || { echo "run_first_numbers.sh: $tool is missing" >&2; exit 1; }
done

echo "=== building csp benchmarks (Release) in $build ===" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCSP_BUILD_TESTS=OFF -DCSP_BUILD_EXAMPLES=OFF -DCSP_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >&2

echo "=== building the Go peer ===" >&2
(cd "$root/bench/peers/go" && go build -o "$build/go_peer" .)

echo "=== running csp (bench_channel, $reps repetitions) ===" >&2
"$build/bench/bench_channel" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_out="$build/bench_channel.json" --benchmark_out_format=json >&2

echo "=== running Go (GOMAXPROCS=$GOMAXPROCS, $reps repetitions) ===" >&2
"$build/go_peer" -reps "$reps" | tee "$build/go_peer.txt" >&2

python3 - "$build/bench_channel.json" "$build/go_peer.txt" <<'EOF'
import json, sys

to_ns = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
csp = {}
with open(sys.argv[1]) as f:
    report = json.load(f)
for b in report["benchmarks"]:
    if b.get("run_type") != "aggregate" or b.get("error_occurred"):
        continue
    name = b["run_name"].removesuffix("/real_time")
    csp.setdefault(name, {})[b["aggregate_name"]] = b["real_time"] * to_ns[b["time_unit"]]

go = {}
go_header = ""
with open(sys.argv[2]) as f:
    for line in f:
        if line.startswith("#"):
            go_header = line[1:].strip()
            continue
        name, med, lo, hi, _ = line.split()
        go[name] = {"median": float(med), "min": float(lo), "max": float(hi)}

# (workload, csp benchmark, Go workload)
rows = [
    ("uncontended try_send+try_recv, cap 1024", "BM_uncontended_buffered_send_recv/1024", "buffered_send_recv_nonblocking/1024"),
    ("uncontended co_await send+recv, cap 1024", "BM_uncontended_buffered_send_recv_coro/1024", "buffered_send_recv/1024"),
    ("W1 ping-pong round trip, unbuffered", "BM_pingpong_unbuffered_run_loop", "pingpong_unbuffered"),
    ("W2 hand-off, cap 0, sync_wait threads", "BM_sync_wait_handoff_two_threads/0", "handoff_two_goroutines/0"),
    ("W2 hand-off, cap 1, sync_wait threads", "BM_sync_wait_handoff_two_threads/1", "handoff_two_goroutines/1"),
    ("W2 hand-off, cap 0, two run_loops", "BM_goroutine_handoff_two_run_loops/0", "handoff_two_goroutines/0"),
    ("W2 hand-off, cap 1, two run_loops", "BM_goroutine_handoff_two_run_loops/1", "handoff_two_goroutines/1"),
]

def cell(d):
    if not d or "median" not in d:
        return "(missing)"
    spread = f" ({d['min']:.1f}-{d['max']:.1f})" if "min" in d and "max" in d else ""
    return f"{d['median']:.1f}{spread}"

print()
print(f"ns per operation, median of the repetitions (min-max); csp: {report['context'].get('host_name', '')}, "
      f"{report['context'].get('num_cpus', '?')} CPUs; Go: {go_header}")
w0 = max(len(r[0]) for r in rows)
print(f"| {'workload':<{w0}} | {'csp ns/op':>26} | {'Go ns/op':>26} | csp/Go |")
print(f"| {'-' * w0} | {'-' * 26} | {'-' * 26} | ------ |")
for label, c, g in rows:
    cd, gd = csp.get(c), go.get(g)
    ratio = f"{cd['median'] / gd['median']:.2f}" if cd and gd and "median" in cd and "median" in gd else "-"
    print(f"| {label:<{w0}} | {cell(cd):>26} | {cell(gd):>26} | {ratio:>6} |")
EOF
