// The Boost.Fiber peer of bench/workloads.cpp: SPEC §9 W1-W3 and W5-W8 and
// the select-free part of crossbeam-channel's matrix, with fibers on Boost's
// work_stealing scheduler (FIBER_THREADS threads, default the number of
// cores) and Boost's unbuffered_channel / buffered_channel. Same loops, sizes,
// checks and output as the csp and Go programs:
//
//   boost_fiber_workloads <workload> [n]   prints "<workload> <value> <unit>"
//   boost_fiber_workloads list             the workloads this peer runs
//
// Boost.Fiber has no select, so W4 and the matrix's select_* are not listed
// (bench/compare shows them as n/a). buffered_channel needs a power-of-two
// size and keeps one slot free, so a capacity c becomes the smallest power of
// two above c (c = 1: exactly 1; c = 1024: 2047). Each workload checks what
// it received and exits with status 1 if it is wrong.
//
// Built by bench/compare: g++ -std=c++20 -O3 workloads.cpp -lboost_fiber -lboost_context
#include <boost/fiber/all.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <unistd.h>
#include <vector>

#include "../../workload_cli.hpp"

namespace {

namespace fibers = boost::fibers;
using i64 = std::int64_t;
using clk = std::chrono::steady_clock;

struct result {
    double value = 0;
    const char* unit = "";
    bool ok = false;
    const char* error = "";
};

double ns_since(clk::time_point t0) {
    return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - t0).count());
}
result per_op(clk::time_point t0, i64 ops, bool ok, const char* error) { return {ns_since(t0) / double(ops), "ns/op", ok, error}; }
result millis(clk::time_point t0, bool ok, const char* error) { return {ns_since(t0) / 1e6, "ms", ok, error}; }

long rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    int got = std::fscanf(f, "%ld %ld", &size, &resident);
    std::fclose(f);
    return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

// Go's sync.WaitGroup for fibers: done() is one atomic decrement; only the
// last one takes the lock to wake the waiter.
class wait_group {
public:
    void add(i64 n) { count_.fetch_add(n, std::memory_order_relaxed); }
    void done() {
        // acq_rel: the waiter must see every write made before each done().
        if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::unique_lock lock(mutex_);  // pairs with wait()'s check under the lock: no lost wake-up
            cv_.notify_all();
        }
    }
    void wait() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return count_.load(std::memory_order_acquire) == 0; });
    }

private:
    std::atomic<i64> count_{0};
    fibers::mutex mutex_;
    fibers::condition_variable cv_;
};

// One channel type over Boost's two: unbuffered_channel for capacity 0,
// buffered_channel (power-of-two size, one slot kept free) otherwise.
class channel {
public:
    explicit channel(std::size_t capacity) {
        if (capacity == 0) {
            unbuffered_ = std::make_unique<fibers::unbuffered_channel<i64>>();
            return;
        }
        std::size_t slots = 2;
        while (slots <= capacity) slots *= 2;
        buffered_ = std::make_unique<fibers::buffered_channel<i64>>(slots);
    }
    // false once the channel is closed
    bool push(i64 v) { return (unbuffered_ ? unbuffered_->push(v) : buffered_->push(v)) == fibers::channel_op_status::success; }
    bool pop(i64& v) { return (unbuffered_ ? unbuffered_->pop(v) : buffered_->pop(v)) == fibers::channel_op_status::success; }
    void close() { unbuffered_ ? unbuffered_->close() : buffered_->close(); }

private:
    std::unique_ptr<fibers::unbuffered_channel<i64>> unbuffered_;
    std::unique_ptr<fibers::buffered_channel<i64>> buffered_;
};

// Starts a detached fiber. f and args are moved in: Boost 1.74 keeps an lvalue
// function argument by reference, which would dangle once go() returns.
template <class F, class... Args>
void go(F f, Args... args) {
    fibers::fiber(fibers::launch::post, std::move(f), std::move(args)...).detach();
}

// ---------------------------------------------------------------------------
// W1: ping-pong over two unbuffered channels. n round trips.

result w1_pingpong(i64 n) {
    auto t0 = clk::now();
    channel ping(0), pong(0);
    wait_group wg;
    i64 sum = 0;
    wg.add(2);
    go([&] {
        for (i64 i = 0; i < n; ++i) {
            i64 v = 0;
            ping.pop(v);
            pong.push(v);
        }
        wg.done();
    });
    go([&] {
        i64 s = 0;
        for (i64 i = 0; i < n; ++i) {
            i64 v = 0;
            ping.push(i);
            pong.pop(v);
            s += v;
        }
        sum = s;
        wg.done();
    });
    wg.wait();
    return per_op(t0, n, sum == bench::sum_below(n), "wrong sum");
}

// W2, W3 and the matrix's spsc/mpsc/mpmc: producers send 0..n-1 between
// them; the channel is closed once they are done and the consumers drain it.
result mpmc(i64 n, std::size_t capacity, int producers, int consumers) {
    auto t0 = clk::now();
    channel ch(capacity);
    wait_group sent, finished;
    std::vector<i64> sums(std::size_t(consumers), 0);
    sent.add(producers);
    finished.add(consumers + 1);
    for (int c = 0; c < consumers; ++c)
        go([&, c] {
            i64 s = 0, v = 0;
            while (ch.pop(v)) s += v;
            sums[std::size_t(c)] = s;
            finished.done();
        });
    go([&] {
        sent.wait();
        ch.close();
        finished.done();
    });
    for (int p = 0; p < producers; ++p)
        go([&, p] {
            for (i64 i = n * p / producers; i < n * (p + 1) / producers; ++i) ch.push(i);
            sent.done();
        });
    finished.wait();
    i64 total = 0;
    for (i64 s : sums) total += s;
    return per_op(t0, n, total == bench::sum_below(n), "wrong sum");
}

// The matrix's seq: one fiber sends n values into a channel with room for all
// of them, then receives them.
result seq(i64 n, std::size_t capacity) {
    auto t0 = clk::now();
    channel ch(capacity);
    for (i64 i = 0; i < n; ++i) ch.push(i);
    i64 sum = 0, v = 0;
    for (i64 i = 0; i < n; ++i) {
        ch.pop(v);
        sum += v;
    }
    return per_op(t0, n, sum == bench::sum_below(n), "wrong sum");
}

// ---------------------------------------------------------------------------
// W5: spawn n fibers that each call wg.done(). ns per fiber.

result w5_spawn(i64 n) {
    auto t0 = clk::now();
    wait_group wg;
    wg.add(n);
    for (i64 i = 0; i < n; ++i) go([&wg] { wg.done(); });
    wg.wait();
    return per_op(t0, n, true, "");
}

// W6: n fibers parked on a channel receive; bytes of RSS growth per fiber
// once all have started (Boost's default fixedsize_stack for each).
result w6_parked(i64 n) {
    channel ch(0);
    wait_group started, finished;
    started.add(n);
    finished.add(n);
    long before = rss_bytes();
    for (i64 i = 0; i < n; ++i)
        go([&] {
            started.done();
            i64 v = 0;
            if (!ch.pop(v)) finished.done();  // closed: no value
        });
    started.wait();
    long after = rss_bytes();
    ch.close();
    finished.wait();
    return {double(after - before) / double(n), "bytes/goroutine", before > 0 && after > 0, "cannot read /proc/self/statm"};
}

// ---------------------------------------------------------------------------
// W7: the concurrent prime sieve, first n primes. Total ms. As in the Go
// program, the generator and the filters are still blocked when it returns,
// and the process exits with them blocked (main() ends with _Exit). Their
// channels are left allocated on purpose: closing or destroying an
// unbuffered_channel with a blocked fiber crashes Boost 1.74 here.

result w7_sieve(i64 n) {
    auto t0 = clk::now();
    auto* ch = new channel(0);
    go([](channel* out) {
        for (i64 i = 2;; ++i) out->push(i);
    }, ch);
    i64 prime = 0;
    for (i64 i = 0; i < n; ++i) {
        ch->pop(prime);
        auto* next = new channel(0);
        go([](channel* in, channel* out, i64 p) {
            for (i64 v = 0;;) {
                in->pop(v);
                if (v % p != 0) out->push(v);
            }
        }, ch, next, prime);
        ch = next;
    }
    return millis(t0, prime == bench::nth_prime(n), "wrong last prime");
}

// W8: fib(n) with a fiber per call; each call sends its result on its
// parent's channel (room for both children). Total ms.

// The channel is shared, as Go's garbage-collected one and csp's counted
// handle are: a child may still be inside push() when the parent, woken by
// it, returns.
void w8_fib(int n, std::shared_ptr<channel> out) {
    if (n < 2) {
        out->push(n);
        return;
    }
    auto c = std::make_shared<channel>(2);
    go(w8_fib, n - 1, c);
    go(w8_fib, n - 2, c);
    i64 a = 0, b = 0;
    c->pop(a);
    c->pop(b);
    out->push(a + b);
}

result w8_fib_run(i64 n) {
    auto t0 = clk::now();
    auto out = std::make_shared<channel>(1);
    go(w8_fib, int(n), out);
    i64 v = 0;
    out->pop(v);
    return millis(t0, v == bench::fib_plain(int(n)), "wrong fib");
}

// ---------------------------------------------------------------------------

struct workload {
    const char* name;
    i64 default_n;
    result (*run)(i64);
};

constexpr i64 matrix_n = 500'000;  // as in bench/workloads.cpp

constexpr workload workloads[] = {
    {"w1_pingpong", 2'000'000, w1_pingpong},
    {"w2_spsc_cap0", 4'000'000, [](i64 n) { return mpmc(n, 0, 1, 1); }},
    {"w2_spsc_cap1", 4'000'000, [](i64 n) { return mpmc(n, 1, 1, 1); }},
    {"w2_spsc_cap1024", 10'000'000, [](i64 n) { return mpmc(n, 1024, 1, 1); }},
    {"w3_mpmc_cap0", 4'000'000, [](i64 n) { return mpmc(n, 0, 4, 4); }},
    {"w3_mpmc_cap1024", 10'000'000, [](i64 n) { return mpmc(n, 1024, 4, 4); }},
    {"w5_spawn", 1'000'000, w5_spawn},
    {"w6_parked", 1'000'000, w6_parked},
    {"w7_sieve", 2'000, w7_sieve},
    {"w8_fib", 30, w8_fib_run},
    {"bounded0_spsc", matrix_n, [](i64 n) { return mpmc(n, 0, 1, 1); }},
    {"bounded0_mpsc", matrix_n, [](i64 n) { return mpmc(n, 0, 4, 1); }},
    {"bounded0_mpmc", matrix_n, [](i64 n) { return mpmc(n, 0, 4, 4); }},
    {"bounded1_spsc", matrix_n, [](i64 n) { return mpmc(n, 1, 1, 1); }},
    {"bounded1_mpsc", matrix_n, [](i64 n) { return mpmc(n, 1, 4, 1); }},
    {"bounded1_mpmc", matrix_n, [](i64 n) { return mpmc(n, 1, 4, 4); }},
    {"bounded_seq", matrix_n, [](i64 n) { return seq(n, std::size_t(n)); }},
    {"bounded_spsc", matrix_n, [](i64 n) { return mpmc(n, std::size_t(n), 1, 1); }},
    {"bounded_mpsc", matrix_n, [](i64 n) { return mpmc(n, std::size_t(n), 4, 1); }},
    {"bounded_mpmc", matrix_n, [](i64 n) { return mpmc(n, std::size_t(n), 4, 4); }},
};

// Prints the result line and ends the process at once, as a Go program ends:
// without tearing down fibers still blocked (W7), and without joining the
// helper threads (a thread with blocked fibers cannot finish in Boost.Fiber).
[[noreturn]] void report(const workload& w, const result& r) {
    int status = bench::report_result(w.name, r.ok, r.error, r.value, r.unit);
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(status);
}

// Runs `w` in the main fiber with `threads` threads sharing Boost's
// work_stealing scheduler; the helper threads park their main fiber on a
// fiber condition variable, which lets their scheduler run stolen fibers,
// until report() ends the process.
[[noreturn]] void run_on_threads(const workload& w, i64 n, unsigned threads) {
    static fibers::mutex mutex;
    static fibers::condition_variable_any never;
    for (unsigned i = 1; i < threads; ++i)
        std::thread([threads] {
            fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(threads);
            std::unique_lock lock(mutex);
            never.wait(lock, [] { return false; });
        }).detach();
    fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(threads);
    report(w, w.run(n));
}

}  // namespace

int main(int argc, char** argv) {
    i64 n = 0;
    const workload& w = bench::parse_workload_args(argc, argv, workloads, n);
    unsigned threads = std::thread::hardware_concurrency();
    if (const char* t = std::getenv("FIBER_THREADS")) threads = unsigned(std::strtoul(t, nullptr, 10));
    run_on_threads(w, n, threads ? threads : 1);
}
