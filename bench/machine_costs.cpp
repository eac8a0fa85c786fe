// bench/machine_costs.cpp - what the machine charges for the operations a
// channel or a spawn is made of, to read the workload figures against.
//
//   build/bench-release/bench/bench_machine_costs [repetitions]
//
// Prints, for each primitive, the median and the spread (min-max) over the
// repetitions of the time per operation:
//   * pause: one `pause` instruction (what a spin loop waits per round);
//   * cas, private line: a compare-and-swap on a line only this thread uses
//     (the floor of a lock-free channel operation: one per send or receive);
//   * exchange, private line: the same for `xchg` (a spin lock's acquire);
//   * line hand-off between two threads: two threads take turns
//     incrementing one counter, each waiting for its turn, so every
//     increment first moves the line from the other core (the floor of any
//     operation that the other core touched last: a contended channel end,
//     a stolen run queue word, a frame freed there).
// Not a test and not a workload: there is nothing to compare it with, it
// describes the machine (docs/performance.md quotes it).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

double ns_per_op(clk::time_point t0, std::int64_t ops) {
    return std::chrono::duration<double, std::nano>(clk::now() - t0).count() / double(ops);
}

double pause_cost(std::int64_t n) {
    auto t0 = clk::now();
    for (std::int64_t i = 0; i < n; ++i) __builtin_ia32_pause();
    return ns_per_op(t0, n);
}

double cas_cost(std::int64_t n) {
    alignas(64) std::atomic<std::uint64_t> word{0};
    auto t0 = clk::now();
    for (std::int64_t i = 0; i < n; ++i) {
        std::uint64_t w = word.load(std::memory_order_relaxed);
        while (!word.compare_exchange_weak(w, w + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        }
    }
    double ns = ns_per_op(t0, n);
    if (word.load() != std::uint64_t(n)) std::abort();  // every CAS counted: the loop was not optimised away
    return ns;
}

double exchange_cost(std::int64_t n) {
    alignas(64) std::atomic<std::uint64_t> word{0};
    std::uint64_t sum = 0;
    auto t0 = clk::now();
    for (std::int64_t i = 0; i < n; ++i) sum += word.exchange(std::uint64_t(i), std::memory_order_acquire);
    double ns = ns_per_op(t0, n);
    if (sum != std::uint64_t(n - 1) * std::uint64_t(n - 2) / 2) std::abort();  // sum of 0..n-2
    return ns;
}

// Two threads increment one counter in turn: thread `parity` waits until the
// counter's value has its parity, then adds one. Each increment needs the line
// from the other core; the time per increment is one hand-off.
double handoff_cost(std::int64_t n) {
    alignas(64) std::atomic<std::uint64_t> counter{0};
    auto player = [&](std::uint64_t parity) {
        for (std::uint64_t v = parity; v < std::uint64_t(n); v += 2) {
            while (counter.load(std::memory_order_acquire) != v) __builtin_ia32_pause();
            counter.store(v + 1, std::memory_order_release);
        }
    };
    auto t0 = clk::now();
    std::thread other(player, 1);
    player(0);
    other.join();
    return ns_per_op(t0, n);
}

struct measured {
    const char* name;
    double (*run)(std::int64_t);
    std::int64_t n;
};

}  // namespace

int main(int argc, char** argv) {
    int reps = argc > 1 ? std::atoi(argv[1]) : 7;
    if (reps < 1) reps = 1;
    const measured all[] = {
        {"pause", pause_cost, 10'000'000},
        {"cas, private line", cas_cost, 50'000'000},
        {"exchange, private line", exchange_cost, 50'000'000},
        {"line hand-off between two threads", handoff_cost, 2'000'000},
    };
    std::printf("| primitive | ns per operation, median | spread (min-max) |\n| --- | ---: | ---: |\n");
    for (const measured& m : all) {
        std::vector<double> v;
        for (int r = 0; r < reps; ++r) v.push_back(m.run(m.n));
        std::sort(v.begin(), v.end());
        std::printf("| %s | %.1f | %.1f-%.1f |\n", m.name, v[v.size() / 2], v.front(), v.back());
    }
    std::printf("(%d repetitions; %u hardware threads)\n", reps, std::thread::hardware_concurrency());
}
