#!/usr/bin/env bash
# W9 (SPEC §9): TCP echo, 50 connections, 64-byte round trips, over loopback.
# The same client (examples/echo_client.cpp) drives three servers in turn:
#   csp  examples/echo_server.cpp     a goroutine per connection, csp::run
#   go   bench/peers/go/echo_server   a goroutine per connection, Go's net
#   c    bench/peers/c/epoll_echo.c   a hand-written single-threaded epoll loop
# and each run reports round trips per second (higher is better).
#
#   bench/w9.sh                 # 5 repetitions of 3 s per server, alternating
#   REPS=3 SECONDS_PER_RUN=2 CONNECTIONS=50 bench/w9.sh
#
# Prints a markdown table of medians, spreads (min-max) and the ratios
# csp/go and csp/c (higher is better for csp: W9 counts round trips). Raw
# results go to build/bench-release/w9-raw.txt. Traffic stays on 127.0.0.1;
# every run is bounded by SECONDS_PER_RUN.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build/bench-release
reps=${REPS:-5}
secs=${SECONDS_PER_RUN:-3}
conns=${CONNECTIONS:-50}
cores=$(nproc)
export GOMAXPROCS=${GOMAXPROCS:-$cores}
export GOCACHE=${GOCACHE:-/tmp/gocache}
export GOFLAGS=${GOFLAGS:--mod=mod}

for tool in cmake go cc python3; do
  command -v "$tool" >/dev/null || { echo "w9.sh: $tool is missing" >&2; exit 1; }
done

echo "=== building (Release) in $build ===" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCSP_BUILD_TESTS=OFF -DCSP_BUILD_EXAMPLES=ON -DCSP_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target example_echo_server example_echo_client -j "$cores" >&2
(cd "$root/bench/peers/go" && go build -o "$build/go_echo_server" ./echo_server)
cc -O2 -Wall -Werror -o "$build/c_epoll_echo" "$root/bench/peers/c/epoll_echo.c"

declare -A server_cmd=(
  [csp]="$build/examples/example_echo_server 127.0.0.1:0"
  [go]="$build/go_echo_server 127.0.0.1:0"
  [c]="$build/c_epoll_echo 0"
)
client=$build/examples/example_echo_client
raw=$build/w9-raw.txt
: >"$raw"

run_one() {  # side
  local out addr pid result
  out=$(mktemp)
  ${server_cmd[$1]} >"$out" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 500); do grep -q '^listening on ' "$out" && break; sleep 0.01; done
  addr=$(sed -n 's/^listening on //p' "$out")
  result=$("$client" "$addr" "$conns" "$secs")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$out"
  # "... round trips in T s: R round trips/s"
  echo "$1 $(sed -n 's/.*: \([0-9]*\) round trips\/s/\1/p' <<<"$result")" | tee -a "$raw" >&2
}

echo "=== W9: $conns connections, ${secs}s per run, $reps repetitions, alternating; load $(cut -d' ' -f1-3 /proc/loadavg) ===" >&2
for _ in $(seq 1 "$reps"); do
  for side in csp go c; do run_one "$side"; done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$raw" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, value = line.split()
    runs.setdefault(side, []).append(float(value))
med = {s: statistics.median(v) for s, v in runs.items()}
print("| server | round trips/s (median) | spread (min-max) |")
print("|---|---:|---:|")
for s in ("csp", "go", "c"):
    v = runs[s]
    print(f"| {s} | {med[s]:,.0f} | {min(v):,.0f}-{max(v):,.0f} |")
print()
print(f"csp/go = {med['csp']/med['go']:.2f} (bar: >= 1.00); csp/c = {med['csp']/med['c']:.2f} (bar: >= 0.80)")
PY
