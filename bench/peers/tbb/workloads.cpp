// The oneTBB peer of bench/workloads.cpp: SPEC §9 W8 (fib with a task_group
// per call, the bar of §9; listed as w8_fib and as w8_fib_wg) and W5 (spawn n
// tasks into one task_group), on TBB_THREADS worker threads (default the number of cores). Same output as the
// csp and Go programs:
//
//   tbb_workloads <workload> [n]   prints "<workload> <value> <unit>"
//   tbb_workloads list             the workloads this peer runs
//
// Channels, select and parked goroutines are not TBB's domain: the other
// workloads are not listed (bench/compare shows them as n/a). Each workload
// checks its result and exits with status 1 if it is wrong.
//
// Built by bench/compare: g++ -std=c++20 -O3 workloads.cpp -ltbb
#include <tbb/global_control.h>
#include <tbb/task_group.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "../../workload_cli.hpp"

namespace {

using i64 = std::int64_t;
using clk = std::chrono::steady_clock;

double ns_since(clk::time_point t0) {
    return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - t0).count());
}

// W5: n tasks in one task_group, each decrementing a counter. ns per task.
bool w5_spawn(i64 n, double& value) {
    auto t0 = clk::now();
    std::atomic<i64> left{n};
    tbb::task_group g;
    // relaxed: task_group::wait() orders the decrements before the check below.
    for (i64 i = 0; i < n; ++i) g.run([&left] { left.fetch_sub(1, std::memory_order_relaxed); });
    g.wait();
    value = ns_since(t0) / double(n);
    return left.load(std::memory_order_relaxed) == 0;
}

// W8: fib(n) with two tasks per call in a task_group of its own. Total ms.
i64 fib(int n) {
    if (n < 2) return n;
    i64 a = 0, b = 0;
    tbb::task_group g;
    g.run([&a, n] { a = fib(n - 1); });
    g.run([&b, n] { b = fib(n - 2); });
    g.wait();
    return a + b;
}

bool w8_fib(i64 n, double& value) {
    auto t0 = clk::now();
    i64 v = fib(int(n));
    value = ns_since(t0) / 1e6;
    return v == bench::fib_plain(int(n));
}

struct workload {
    const char* name;
    i64 default_n;
    const char* unit;
    bool (*run)(i64, double&);
};

constexpr workload workloads[] = {
    {"w5_spawn", 1'000'000, "ns/op", w5_spawn},
    {"w8_fib", 30, "ms", w8_fib},
    {"w8_fib_wg", 30, "ms", w8_fib},  // the csp and Go variant with a wait group: the same structure as this
};

}  // namespace

int main(int argc, char** argv) {
    i64 n = 0;
    const workload& w = bench::parse_workload_args(argc, argv, workloads, n);
    std::size_t threads = std::thread::hardware_concurrency();
    if (const char* t = std::getenv("TBB_THREADS")) threads = std::size_t(std::strtoul(t, nullptr, 10));
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads ? threads : 1);
    double value = 0;
    bool ok = w.run(n, value);
    return bench::report_result(w.name, ok, "wrong result", value, w.unit);
}
