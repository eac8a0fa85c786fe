// Counting the allocations of blocked-and-woken channel round trips on a
// work_stealing_pool (through csp::run). Include it after
// "counting_allocator.hpp", from the one source file that includes that.
#pragma once

#include <csp/csp.hpp>

#include "counting_allocator.hpp"

namespace csp_test {

// A server answers each value it receives on `ping` with the same value on
// `pong`, `rounds` times (each test file brings its own: plain operations, select).
using round_trip_server = csp::task<> (*)(csp::channel<int> ping, csp::channel<int> pong, int rounds);

struct round_trip_result {
    long allocations = -1;  // counted over the measured round trips only
    long sum = 0;
};

inline csp::task<> round_trip_client(csp::channel<int> ping, csp::channel<int> pong, int warm_up, int rounds,
                                     round_trip_result* out, csp::wait_group* wg) {
    long before = 0;
    for (int i = 0; i < warm_up + rounds; ++i) {
        if (i == warm_up) before = g_allocations.load();
        co_await ping.send(i);  // unbuffered: blocks until the server takes it
        int v = *co_await pong.recv();
        if (i >= warm_up) out->sum += v;
    }
    out->allocations = g_allocations.load() - before;
    wg->done();
}

inline csp::task<round_trip_result> round_trips_main(round_trip_server server, int warm_up, int rounds) {
    auto ping = csp::make_channel<int>(0);
    auto pong = csp::make_channel<int>(0);
    round_trip_result result;
    csp::wait_group wg;
    wg.add(1);
    csp::go(server(ping, pong, warm_up + rounds));
    csp::go(round_trip_client(ping, pong, warm_up, rounds, &result, &wg));
    co_await wg.wait();
    co_return result;
}

// Runs warm_up + rounds round trips between `server` and a client on a pool
// of 2 workers: each side blocks on an unbuffered channel and is woken by the
// other, possibly from the other worker. The warm-up lets per-thread caches
// and queues reach their size; the result counts only the later rounds.
inline round_trip_result pool_round_trips(round_trip_server server, int warm_up, int rounds) {
    return csp::run(csp::run_options{.threads = 2}, round_trips_main(server, warm_up, rounds));
}

}  // namespace csp_test
