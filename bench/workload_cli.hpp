// bench/workload_cli.hpp - the command line and the expected results shared by the C++ workload programs
// (bench/workloads.cpp and the Boost.Fiber and oneTBB peers under bench/peers):
//
//   <program> <workload> [n]   runs one workload, prints "<workload> <value> <unit>"
//   <program> list             the workload names, one per line
//
// bench/compare relies on this exact protocol for every side (the Go and Rust
// peers implement it too).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace bench {

// Picks the workload named by argv[1] from `table` (entries with `name` and
// `default_n`) and its size n (argv[2], else the default). Handles `list` and
// usage errors itself: exits 0 after listing, 2 on a bad command line.
template <class Workload, std::size_t N>
const Workload& parse_workload_args(int argc, char** argv, const Workload (&table)[N], std::int64_t& n) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s <workload>|list [n]\n", argv[0]);
        std::exit(2);
    }
    std::string_view name = argv[1];
    if (name == "list") {
        for (const Workload& w : table) std::printf("%s\n", w.name);
        std::exit(0);
    }
    for (const Workload& w : table) {
        if (name != w.name) continue;
        n = argc == 3 ? std::strtoll(argv[2], nullptr, 10) : w.default_n;
        if (n <= 0) {
            std::fprintf(stderr, "n must be positive\n");
            std::exit(2);
        }
        return w;
    }
    std::fprintf(stderr, "unknown workload '%s' (try 'list')\n", argv[1]);
    std::exit(2);
}

// The expected results the workloads check against.
inline std::int64_t sum_below(std::int64_t n) { return n * (n - 1) / 2; }  // 0 + 1 + ... + (n-1)

inline std::int64_t fib_plain(int n) {
    std::int64_t a = 0, b = 1;
    for (int i = 0; i < n; ++i) {
        std::int64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

inline std::int64_t nth_prime(std::int64_t n) {  // by trial division
    std::int64_t count = 0;
    for (std::int64_t c = 2;; ++c) {
        bool prime = true;
        for (std::int64_t d = 2; d * d <= c; ++d)
            if (c % d == 0) {
                prime = false;
                break;
            }
        if (prime && ++count == n) return c;
    }
}

// Prints the result line, or the failure on stderr; returns the exit status.
inline int report_result(const char* workload, bool ok, const char* error, double value, const char* unit) {
    if (!ok) {
        std::fprintf(stderr, "%s: FAILED: %s\n", workload, error);
        return 1;
    }
    std::printf("%s %.2f %s\n", workload, value, unit);
    return 0;
}

}  // namespace bench
