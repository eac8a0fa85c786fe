// bench/workloads.cpp - SPEC §9 workloads W1-W8 and crossbeam-channel's
// benchmark matrix, one per run, for a side-by-side comparison with the peers
// under bench/peers (Go, Boost.Fiber, crossbeam-channel, oneTBB: same loops,
// same output). bench/compare builds them all and alternates them.
//
//   bench_workloads <workload> [n]      e.g. bench_workloads w1_pingpong
//   bench_workloads list                the workload names, one per line
//
// Prints one line, `<workload> <value> <unit>`: ns per operation for the
// throughput and latency workloads, bytes per goroutine for W6, ms for the
// whole run of W7 and W8. Every workload runs inside csp::run on a
// work_stealing_pool with CSP_THREADS workers (default 2, the number of cores
// of the reference machine; the Go peer runs with GOMAXPROCS = cores). The
// clock starts inside the main goroutine, so starting and stopping the
// runtime is not timed. Each workload checks what it received (sums, counts,
// the last prime, fib(n)) and exits with status 1 if it is wrong, so a run
// that measured nothing cannot pass for a fast one.
//
// Goroutines are task functions taking their arguments by value, started
// with csp::go(f(args...)): one coroutine frame each. Channels are passed by
// value (a shared handle), as Go passes `chan T`.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

#include <csp/csp.hpp>

#include "workload_cli.hpp"

namespace {

using i64 = std::int64_t;
using clk = std::chrono::steady_clock;

struct result {
    double value = 0;
    const char* unit = "";
    bool ok = false;
    std::string error;
};

double ns_since(clk::time_point t0) { return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - t0).count()); }

result per_op(clk::time_point t0, i64 ops, bool ok, const char* error) {
    result r;
    r.value = ns_since(t0) / double(ops);
    r.unit = "ns/op";
    r.ok = ok;
    if (!ok) r.error = error;
    return r;
}

result millis(clk::time_point t0, bool ok, const char* error) {
    result r;
    r.value = ns_since(t0) / 1e6;
    r.unit = "ms";
    r.ok = ok;
    if (!ok) r.error = error;
    return r;
}


// Resident set size in bytes, from /proc/self/statm (second field, in pages).
long rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    int got = std::fscanf(f, "%ld %ld", &size, &resident);
    std::fclose(f);
    if (got != 2) return -1;
    return resident * sysconf(_SC_PAGESIZE);
}

// ---------------------------------------------------------------------------
// W1: ping-pong over two unbuffered channels. n round trips.

csp::task<> w1_pinger(csp::channel<i64> ping, csp::channel<i64> pong, i64 n, i64* sum, csp::wait_group* wg) {
    i64 s = 0;
    for (i64 i = 0; i < n; ++i) {
        co_await ping.send(i);
        s += *co_await pong.recv();
    }
    *sum = s;
    wg->done();
}

csp::task<> w1_ponger(csp::channel<i64> ping, csp::channel<i64> pong, i64 n, csp::wait_group* wg) {
    for (i64 i = 0; i < n; ++i) {
        i64 v = *co_await ping.recv();
        co_await pong.send(v);
    }
    wg->done();
}

csp::task<result> w1_pingpong(i64 n) {
    auto t0 = clk::now();
    auto ping = csp::make_channel<i64>(0);
    auto pong = csp::make_channel<i64>(0);
    csp::wait_group wg;
    i64 sum = 0;
    wg.add(2);
    csp::go(w1_ponger(ping, pong, n, &wg));
    csp::go(w1_pinger(ping, pong, n, &sum, &wg));
    co_await wg.wait();
    co_return per_op(t0, n, sum == bench::sum_below(n), "wrong sum");
}

// ---------------------------------------------------------------------------
// W2: one producer, one consumer; W3: 4 producers, 4 consumers. The
// producers send 0..n-1 between them; the channel is closed once they are
// done and the consumers drain it.

csp::task<> producer(csp::channel<i64> ch, i64 from, i64 to, csp::wait_group* wg) {
    for (i64 i = from; i < to; ++i) co_await ch.send(i);
    wg->done();
}

csp::task<> consumer(csp::channel<i64> ch, i64* sum, csp::wait_group* wg) {
    i64 s = 0;
    while (std::optional<i64> v = co_await ch.recv()) s += *v;
    *sum = s;
    wg->done();
}

csp::task<> closer(csp::channel<i64> ch, csp::wait_group* producers, csp::wait_group* done) {
    co_await producers->wait();
    ch.close();
    done->done();
}

csp::task<result> mpmc(i64 n, std::size_t capacity, int producers, int consumers) {
    auto t0 = clk::now();
    auto ch = csp::make_channel<i64>(capacity);
    csp::wait_group sent, finished;
    std::array<i64, 16> sums{};
    sent.add(producers);
    finished.add(consumers + 1);
    for (int c = 0; c < consumers; ++c) csp::go(consumer(ch, &sums[std::size_t(c)], &finished));
    csp::go(closer(ch, &sent, &finished));
    for (int p = 0; p < producers; ++p) csp::go(producer(ch, n * p / producers, n * (p + 1) / producers, &sent));
    co_await finished.wait();
    i64 total = 0;
    for (i64 s : sums) total += s;
    co_return per_op(t0, n, total == bench::sum_below(n), "wrong sum");
}

// ---------------------------------------------------------------------------
// W4a and the matrix's select_rx: one consumer selects over 4 channels, each
// fed by its own producer; n messages in all. W4a is select_rx at capacity 0.

csp::task<> w4_feeder(csp::channel<i64> ch, i64 from, i64 to) {
    for (i64 i = from; i < to; ++i) co_await ch.send(i);
}

using four_channels = std::array<csp::channel<i64>, 4>;

// Receives `count` values from whichever of the 4 channels is ready; adds them to *sum.
csp::task<> w4_selector(four_channels chs, i64 count, i64* sum, csp::wait_group* wg) {
    i64 s = 0;
    for (i64 i = 0; i < count; ++i) {
        auto r = co_await csp::select(chs[0].recv(), chs[1].recv(), chs[2].recv(), chs[3].recv());
        switch (r.index()) {
        case 0: s += *r.get<0>(); break;
        case 1: s += *r.get<1>(); break;
        case 2: s += *r.get<2>(); break;
        default: s += *r.get<3>(); break;
        }
    }
    *sum = s;
    wg->done();
}

four_channels make_four(std::size_t capacity) {
    four_channels chs;
    for (auto& c : chs) c = csp::make_channel<i64>(capacity);
    return chs;
}

csp::task<result> select_rx(i64 n, std::size_t capacity) {
    auto t0 = clk::now();
    four_channels chs = make_four(capacity);
    csp::wait_group wg;
    i64 sum = 0;
    wg.add(1);
    csp::go(w4_selector(chs, n, &sum, &wg));
    for (int p = 0; p < 4; ++p) csp::go(w4_feeder(chs[std::size_t(p)], n * p / 4, n * (p + 1) / 4));
    co_await wg.wait();
    co_return per_op(t0, n, sum == bench::sum_below(n), "wrong sum");
}

csp::task<result> w4_select_fanin(i64 n) { return select_rx(n, 0); }

// The matrix's select_both: 4 producers each send their quarter of 0..n-1
// with a 4-case send select; 4 consumers each receive a quarter with a 4-case
// receive select.
csp::task<> select_sender(four_channels chs, i64 from, i64 to) {
    for (i64 i = from; i < to; ++i) co_await csp::select(chs[0].send(i), chs[1].send(i), chs[2].send(i), chs[3].send(i));
}

csp::task<result> select_both(i64 n, std::size_t capacity) {
    auto t0 = clk::now();
    four_channels chs = make_four(capacity);
    csp::wait_group wg;
    std::array<i64, 4> sums{};
    wg.add(4);
    for (int c = 0; c < 4; ++c)
        csp::go(w4_selector(chs, n * (c + 1) / 4 - n * c / 4, &sums[std::size_t(c)], &wg));
    for (int p = 0; p < 4; ++p) csp::go(select_sender(chs, n * p / 4, n * (p + 1) / 4));
    co_await wg.wait();
    co_return per_op(t0, n, sums[0] + sums[1] + sums[2] + sums[3] == bench::sum_below(n), "wrong sum");
}

// The matrix's seq: one goroutine sends n values into a channel with room for
// all of them, then receives them.
csp::task<result> seq(i64 n, std::size_t capacity) {
    auto t0 = clk::now();
    auto ch = csp::make_channel<i64>(capacity);
    for (i64 i = 0; i < n; ++i) co_await ch.send(i);
    i64 sum = 0;
    for (i64 i = 0; i < n; ++i) sum += *co_await ch.recv();
    co_return per_op(t0, n, sum == bench::sum_below(n), "wrong sum");
}

// W4b: a select over 4 receive cases of which exactly one is ready, in one
// goroutine: each iteration refills a buffered channel with try_send and
// selects over it and 3 empty channels. ns per iteration (try_send + select).
csp::task<result> w4_select_ready(i64 n) {
    auto t0 = clk::now();
    auto a = csp::make_channel<i64>(1);
    auto b = csp::make_channel<i64>(1);
    auto c = csp::make_channel<i64>(1);
    auto d = csp::make_channel<i64>(1);
    i64 sum = 0;
    bool ok = true;
    for (i64 i = 0; i < n; ++i) {
        if (a.try_send(i64{i}) != csp::chan_status::ok) ok = false;
        auto r = co_await csp::select(b.recv(), c.recv(), a.recv(), d.recv());
        if (r.index() != 2) ok = false;
        else sum += *r.get<2>();
    }
    co_return per_op(t0, n, ok && sum == bench::sum_below(n), "wrong case or sum");
}

// W4c: ping-pong where the server blocks in a 2-case select (ping or quit)
// and is woken by the client's send. n round trips.
csp::task<> w4_server(csp::channel<i64> ping, csp::channel<i64> quit, csp::channel<i64> pong, csp::wait_group* wg) {
    for (;;) {
        auto r = co_await csp::select(ping.recv(), quit.recv());
        if (r.index() == 1) break;
        i64 v = *r.get<0>();
        co_await pong.send(v);
    }
    wg->done();
}

csp::task<> w4_client(csp::channel<i64> ping, csp::channel<i64> quit, csp::channel<i64> pong, i64 n, i64* sum,
                      csp::wait_group* wg) {
    i64 s = 0;
    for (i64 i = 0; i < n; ++i) {
        co_await ping.send(i);
        s += *co_await pong.recv();
    }
    quit.close();
    *sum = s;
    wg->done();
}

csp::task<result> w4_select_blocked(i64 n) {
    auto t0 = clk::now();
    auto ping = csp::make_channel<i64>(0);
    auto quit = csp::make_channel<i64>(0);
    auto pong = csp::make_channel<i64>(0);
    csp::wait_group wg;
    i64 sum = 0;
    wg.add(2);
    csp::go(w4_server(ping, quit, pong, &wg));
    csp::go(w4_client(ping, quit, pong, n, &sum, &wg));
    co_await wg.wait();
    co_return per_op(t0, n, sum == bench::sum_below(n), "wrong sum");
}

// ---------------------------------------------------------------------------
// W5: spawn n goroutines that each call wg.done(). ns per goroutine.

csp::task<> w5_child(csp::wait_group* wg) {
    wg->done();
    co_return;
}

csp::task<result> w5_spawn(i64 n) {
    auto t0 = clk::now();
    csp::wait_group wg;
    wg.add(n);
    for (i64 i = 0; i < n; ++i) csp::go(w5_child(&wg));
    co_await wg.wait();
    co_return per_op(t0, n, wg.count() == 0, "wait_group not zero");
}

// ---------------------------------------------------------------------------
// W6: n goroutines parked on a channel receive. Bytes of RSS growth per
// goroutine, measured once all n have started; then the channel is closed and
// all of them finish.

csp::task<> w6_parked(csp::channel<i64> ch, csp::wait_group* started, csp::wait_group* finished) {
    started->done();
    std::optional<i64> v = co_await ch.recv();  // blocks until close: nullopt
    if (!v) finished->done();
}

csp::task<result> w6_parked_memory(i64 n) {
    auto ch = csp::make_channel<i64>(0);
    csp::wait_group started, finished;
    started.add(n);
    finished.add(n);
    long before = rss_bytes();
    for (i64 i = 0; i < n; ++i) csp::go(w6_parked(ch, &started, &finished));
    co_await started.wait();
    long after = rss_bytes();
    ch.close();
    co_await finished.wait();
    result r;
    r.value = double(after - before) / double(n);
    r.unit = "bytes/goroutine";
    r.ok = before > 0 && after > 0;
    if (!r.ok) r.error = "cannot read /proc/self/statm";
    co_return r;
}

// ---------------------------------------------------------------------------
// W7: the concurrent prime sieve (a chain of filter goroutines over
// unbuffered channels), first n primes. Total ms. The generator and the
// filters are still blocked when main returns; csp::run destroys them, as a
// Go program exits with them still blocked.

csp::task<> w7_generate(csp::channel<i64> out) {
    for (i64 i = 2;; ++i) co_await out.send(i);
}

csp::task<> w7_filter(csp::channel<i64> in, csp::channel<i64> out, i64 prime) {
    for (;;) {
        i64 i = *co_await in.recv();
        if (i % prime != 0) co_await out.send(i);
    }
}

csp::task<result> w7_sieve(i64 n) {
    auto t0 = clk::now();
    auto ch = csp::make_channel<i64>(0);
    csp::go(w7_generate(ch));
    i64 prime = 0;
    for (i64 i = 0; i < n; ++i) {
        prime = *co_await ch.recv();
        auto next = csp::make_channel<i64>(0);
        csp::go(w7_filter(ch, next, prime));
        ch = next;
    }
    co_return millis(t0, prime == bench::nth_prime(n), "wrong last prime");
}

// ---------------------------------------------------------------------------
// W8: fib(n) with a goroutine per call; each call sends its result on its
// parent's channel (buffered, room for both children). Total ms.

csp::task<> w8_fib(int n, csp::channel<i64> out) {
    if (n < 2) {
        co_await out.send(i64{n});
        co_return;
    }
    auto c = csp::make_channel<i64>(2);
    csp::go(w8_fib(n - 1, c));
    csp::go(w8_fib(n - 2, c));
    i64 a = *co_await c.recv();
    i64 b = *co_await c.recv();
    co_await out.send(a + b);
}

csp::task<result> w8_fib_run(i64 n) {
    auto t0 = clk::now();
    auto out = csp::make_channel<i64>(1);
    csp::go(w8_fib(int(n), out));
    i64 v = *co_await out.recv();
    co_return millis(t0, v == bench::fib_plain(int(n)), "wrong fib");
}

// W8 with a wait_group instead of a channel (w8_fib_wg): each call spawns its
// two children, which write their results into the parent's frame, and waits
// for them on a wait_group - the structure of oneTBB's task_group version, to
// tell the cost of spawning from the cost of the channels.

csp::task<> w8_fib_wg(int n, i64* out, csp::wait_group* parent) {
    if (n < 2) {
        *out = n;
    } else {
        i64 a = 0, b = 0;
        csp::wait_group children;
        children.add(2);
        csp::go(w8_fib_wg(n - 1, &a, &children));
        csp::go(w8_fib_wg(n - 2, &b, &children));
        co_await children.wait();
        *out = a + b;
    }
    parent->done();
}

csp::task<result> w8_fib_wg_run(i64 n) {
    auto t0 = clk::now();
    i64 v = 0;
    csp::wait_group done;
    done.add(1);
    csp::go(w8_fib_wg(int(n), &v, &done));
    co_await done.wait();
    co_return millis(t0, v == bench::fib_plain(int(n)), "wrong fib");
}

// ---------------------------------------------------------------------------

struct workload {
    const char* name;
    i64 default_n;
    csp::task<result> (*run)(i64);
};

csp::task<result> w2_cap0(i64 n) { return mpmc(n, 0, 1, 1); }
csp::task<result> w2_cap1(i64 n) { return mpmc(n, 1, 1, 1); }
csp::task<result> w2_cap1024(i64 n) { return mpmc(n, 1024, 1, 1); }
csp::task<result> w3_cap0(i64 n) { return mpmc(n, 0, 4, 4); }
csp::task<result> w3_cap1024(i64 n) { return mpmc(n, 1024, 4, 4); }

// crossbeam-channel's benchmark matrix (crossbeam-channel/benchmarks):
// {bounded0, bounded1, bounded}_{seq, spsc, mpsc, mpmc, select_rx,
// select_both} with 8-byte messages and 4 "threads" (here goroutines);
// `bounded` has room for all n messages, and only it has seq.
// Cap is the capacity, or -1 for room for all n.
template <int Cap>
std::size_t cap_for(i64 n) { return Cap < 0 ? std::size_t(n) : std::size_t(Cap); }
template <int Cap>
csp::task<result> cb_seq(i64 n) { return seq(n, cap_for<Cap>(n)); }
template <int Cap>
csp::task<result> cb_spsc(i64 n) { return mpmc(n, cap_for<Cap>(n), 1, 1); }
template <int Cap>
csp::task<result> cb_mpsc(i64 n) { return mpmc(n, cap_for<Cap>(n), 4, 1); }
template <int Cap>
csp::task<result> cb_mpmc(i64 n) { return mpmc(n, cap_for<Cap>(n), 4, 4); }
template <int Cap>
csp::task<result> cb_select_rx(i64 n) { return select_rx(n, cap_for<Cap>(n)); }
template <int Cap>
csp::task<result> cb_select_both(i64 n) { return select_both(n, cap_for<Cap>(n)); }

// Messages per matrix run: crossbeam's own runs use 5M (pass n to match).
constexpr i64 matrix_n = 500'000;

// The default sizes keep each run near a second or less on the reference
// machine (2 cores), for both csp and Go; the peers under bench/peers use the same.
constexpr workload workloads[] = {
    {"w1_pingpong", 2'000'000, w1_pingpong},
    {"w2_spsc_cap0", 4'000'000, w2_cap0},
    {"w2_spsc_cap1", 4'000'000, w2_cap1},
    {"w2_spsc_cap1024", 10'000'000, w2_cap1024},
    {"w3_mpmc_cap0", 4'000'000, w3_cap0},
    {"w3_mpmc_cap1024", 10'000'000, w3_cap1024},
    {"w4_select_fanin", 2'000'000, w4_select_fanin},
    {"w4_select_ready", 10'000'000, w4_select_ready},
    {"w4_select_blocked", 2'000'000, w4_select_blocked},
    {"w5_spawn", 1'000'000, w5_spawn},
    {"w6_parked", 1'000'000, w6_parked_memory},
    {"w7_sieve", 2'000, w7_sieve},
    {"w8_fib", 30, w8_fib_run},
    {"w8_fib_wg", 30, w8_fib_wg_run},
    {"bounded0_spsc", matrix_n, cb_spsc<0>},
    {"bounded0_mpsc", matrix_n, cb_mpsc<0>},
    {"bounded0_mpmc", matrix_n, cb_mpmc<0>},
    {"bounded0_select_rx", matrix_n, cb_select_rx<0>},
    {"bounded0_select_both", matrix_n, cb_select_both<0>},
    {"bounded1_spsc", matrix_n, cb_spsc<1>},
    {"bounded1_mpsc", matrix_n, cb_mpsc<1>},
    {"bounded1_mpmc", matrix_n, cb_mpmc<1>},
    {"bounded1_select_rx", matrix_n, cb_select_rx<1>},
    {"bounded1_select_both", matrix_n, cb_select_both<1>},
    {"bounded_seq", matrix_n, cb_seq<-1>},
    {"bounded_spsc", matrix_n, cb_spsc<-1>},
    {"bounded_mpsc", matrix_n, cb_mpsc<-1>},
    {"bounded_mpmc", matrix_n, cb_mpmc<-1>},
    {"bounded_select_rx", matrix_n, cb_select_rx<-1>},
    {"bounded_select_both", matrix_n, cb_select_both<-1>},
};

csp::task<result> run_workload(const workload* w, i64 n) { co_return co_await w->run(n); }

}  // namespace

int main(int argc, char** argv) {
    i64 n = 0;
    const workload& w = bench::parse_workload_args(argc, argv, workloads, n);
    std::size_t threads = 2;
    if (const char* t = std::getenv("CSP_THREADS")) threads = std::size_t(std::strtoul(t, nullptr, 10));
    result r = csp::run(csp::run_options{.threads = threads}, run_workload(&w, n));
    return bench::report_result(w.name, r.ok, r.error.c_str(), r.value, r.unit);
}
