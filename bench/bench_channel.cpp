// bench/bench_channel.cpp - first channel benchmarks (SPEC §9: the uncontended
// channel-op bar, W1 ping-pong and the W2 one-producer/one-consumer hand-off).
//
// One benchmark iteration is one operation of the workload: a send+recv pair,
// a ping-pong round trip, or a hand-off of one value between two threads. So
// the reported time is ns per operation, directly comparable with the ns/op of
// bench/peers/go. Every benchmark checks what it received (values in order,
// totals) and reports a broken run with SkipWithError, so neither the compiler
// nor a library bug can make a benchmark measure nothing.
//
// Where a benchmark's work happens inside a goroutine, the goroutine itself
// runs the `for (auto _ : state)` loop, so only the channel operations and the
// executor hops they cause are timed, not spawning or tearing down.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <csp/csp.hpp>

namespace {

using count_t = std::int64_t;

// Sum of the values 0, 1, ..., n-1 that the senders below send.
count_t sum_below(count_t n) { return n * (n - 1) / 2; }

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

// Common settings: wall-clock time (the two-thread benchmarks do their work on
// two threads; the others are single-threaded, where wall time = CPU time),
// and min/max aggregates so that repeated runs show their spread.
void common(benchmark::internal::Benchmark* b) {
    b->UseRealTime();
    b->ComputeStatistics("min", min_of);
    b->ComputeStatistics("max", max_of);
}

// Checks the end-of-run totals of a benchmark; a mismatch fails it loudly.
void verify(benchmark::State& state, bool ok, const char* what) {
    if (!ok && !state.error_occurred()) state.SkipWithError(what);
}

// ---------------------------------------------------------------------------
// a) Uncontended buffered send + recv on one thread.

// Through the non-blocking forms: one try_send and one try_recv per iteration.
void BM_uncontended_buffered_send_recv(benchmark::State& state) {
    auto ch = csp::make_channel<int>(static_cast<std::size_t>(state.range(0)));
    count_t sum = 0;
    int next = 0;
    for (auto _ : state) {
        if (ch.try_send(int{next}) != csp::chan_status::ok) {
            state.SkipWithError("try_send on a channel with room did not complete");
            break;
        }
        csp::try_recv_result<int> r = ch.try_recv();
        if (!r || *r.value != next) {
            state.SkipWithError("try_recv did not return the value just sent");
            break;
        }
        sum += *r.value;
        ++next;
    }
    benchmark::DoNotOptimize(sum);
    verify(state, sum == sum_below(next) && next == state.iterations() && ch.size() == 0,
           "wrong total received");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_uncontended_buffered_send_recv)->Arg(1024)->Apply(common);

// Through the awaiters: a goroutine on a run_loop does `co_await ch.send(i);
// co_await ch.recv();`. Neither ever suspends (there is always room and
// always a value), so this measures the awaiters' ready path.
void BM_uncontended_buffered_send_recv_coro(benchmark::State& state) {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(static_cast<std::size_t>(state.range(0)));
    count_t sum = 0;
    count_t received = 0;
    bool finished = false;
    csp::spawn(loop, [&state, ch, &sum, &received, &finished]() mutable -> csp::task<> {
        int i = 0;
        for (auto _ : state) {
            co_await ch.send(i);
            std::optional<int> v = co_await ch.recv();
            if (!v || *v != i) {
                state.SkipWithError("recv did not return the value just sent");
                break;
            }
            sum += *v;
            ++i;
        }
        received = i;
        finished = true;
    });
    loop.run_until_idle();
    benchmark::DoNotOptimize(sum);
    verify(state, finished, "the goroutine did not finish");
    verify(state, received == state.iterations() && sum == sum_below(received) && ch.size() == 0,
           "wrong total received");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_uncontended_buffered_send_recv_coro)->Arg(1024)->Apply(common);

// ---------------------------------------------------------------------------
// b) W1: ping-pong over two unbuffered channels between two goroutines on one
// run_loop. One iteration = one round trip (two hand-offs, two wake-ups).
void BM_pingpong_unbuffered_run_loop(benchmark::State& state) {
    csp::run_loop loop;
    auto ping = csp::make_channel<int>();
    auto pong = csp::make_channel<int>();
    count_t echoed = 0;
    int last = -1;
    bool finished = false;

    // The ponger answers every value with its successor until ping is closed.
    csp::spawn(loop, [ping, pong, &echoed]() mutable -> csp::task<> {
        for (;;) {
            std::optional<int> v = co_await ping.recv();
            if (!v) break;
            co_await pong.send(*v + 1);
            ++echoed;
        }
    });
    csp::spawn(loop, [&state, ping, pong, &last, &finished]() mutable -> csp::task<> {
        int x = 0;
        for (auto _ : state) {
            co_await ping.send(x);
            std::optional<int> y = co_await pong.recv();
            if (!y || *y != x + 1) {
                state.SkipWithError("pong did not answer x + 1");
                break;
            }
            x = *y;
        }
        ping.close();
        last = x;
        finished = true;
    });
    loop.run_until_idle();
    verify(state, finished, "the pinger did not finish");
    verify(state, last == state.iterations() && echoed == state.iterations(), "wrong number of round trips");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_pingpong_unbuffered_run_loop)->Apply(common);

// ---------------------------------------------------------------------------
// c) W2 (1 producer / 1 consumer) between two plain threads through
// sync_wait: a std::thread sends 0, 1, 2, ... with sync_wait(ch.send(i)),
// the benchmark thread receives with sync_wait(ch.recv()). One iteration =
// one value handed over. Argument: the channel capacity (0 or 1).
void BM_sync_wait_handoff_two_threads(benchmark::State& state) {
    auto ch = csp::make_channel<int>(static_cast<std::size_t>(state.range(0)));
    // The benchmark loop runs exactly max_iterations times unless it fails,
    // in which case close() below releases the sender.
    const count_t n = state.max_iterations;
    std::thread sender([ch, n]() mutable {
        try {
            for (count_t i = 0; i < n; ++i) csp::sync_wait(ch.send(static_cast<int>(i)));
        } catch (const csp::channel_closed&) {
            // Only after a failed run: the receiver stopped early and closed.
        }
    });
    count_t sum = 0;
    count_t next = 0;
    for (auto _ : state) {
        std::optional<int> v = csp::sync_wait(ch.recv());
        if (!v || *v != next) {
            state.SkipWithError("values arrived out of order or the channel closed");
            break;
        }
        sum += *v;
        ++next;
    }
    ch.close();
    sender.join();
    benchmark::DoNotOptimize(sum);
    verify(state, next == state.iterations() && sum == sum_below(next), "wrong total received");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_sync_wait_handoff_two_threads)->Arg(0)->Arg(1)->Apply(common);

// The same hand-off between two goroutines, each on its own run_loop driven
// by its own thread (the receiver's loop by the benchmark thread). This is
// the shape of Go's workload, and, set against (c), it separates the cost of
// sync_wait (a private run_loop and driver coroutine per call) from the cost
// of the cross-thread channel hand-off itself.
void BM_goroutine_handoff_two_run_loops(benchmark::State& state) {
    auto ch = csp::make_channel<int>(static_cast<std::size_t>(state.range(0)));
    const count_t n = state.max_iterations;
    csp::run_loop sender_loop;
    csp::run_loop receiver_loop;
    csp::spawn(sender_loop, [ch, n, &sender_loop]() mutable -> csp::task<> {
        try {
            for (count_t i = 0; i < n; ++i) co_await ch.send(static_cast<int>(i));
        } catch (const csp::channel_closed&) {
            // Only after a failed run: the receiver stopped early and closed.
        }
        sender_loop.stop();
    });
    std::thread sender_thread([&sender_loop] { sender_loop.run(); });

    count_t sum = 0;
    count_t next = 0;
    bool finished = false;
    csp::spawn(receiver_loop, [&state, ch, &sum, &next, &finished, &receiver_loop]() mutable -> csp::task<> {
        for (auto _ : state) {
            std::optional<int> v = co_await ch.recv();
            if (!v || *v != next) {
                state.SkipWithError("values arrived out of order or the channel closed");
                break;
            }
            sum += *v;
            ++next;
        }
        ch.close();
        finished = true;
        receiver_loop.stop();
    });
    receiver_loop.run();
    sender_thread.join();
    benchmark::DoNotOptimize(sum);
    verify(state, finished, "the receiver did not finish");
    verify(state, next == state.iterations() && sum == sum_below(next), "wrong total received");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_goroutine_handoff_two_run_loops)->Arg(0)->Arg(1)->Apply(common);

}  // namespace
