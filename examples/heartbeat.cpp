// Go pattern: timeouts and heartbeats with select ("Concurrency in Go",
// chapter 5: heartbeats; gobyexample.com/timeouts).
//
// A worker squares the numbers it is sent and, between jobs, sends a
// heartbeat on every tick of a ticker, so that a monitor can tell a live but
// idle worker from a stuck one. The monitor selects on results, heartbeats
// and a timeout that restarts with every message: a worker silent for a whole
// timeout is declared stuck, and the monitor cancels it through `done`.
// The monitor hands out jobs only after two heartbeats (the idle worker is
// alive); the sixth job (-1) makes the worker hang on purpose (it then waits
// for nothing but `done`), so the program shows every outcome: heartbeats,
// five results, then the timeout.
#include <csp/csp.hpp>
#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;
using ints = csp::channel<int>;

constexpr auto pulse_every = 20ms;
constexpr auto silence_limit = 2s;  // 100 missed pulses: not a slow machine, a stuck worker

csp::task<> worker(ints done, ints jobs, ints results, csp::channel<csp::clock::time_point> heartbeat,
                   csp::wait_group& exited) {
    csp::ticker pulse(pulse_every);
    for (;;) {
        auto r = co_await csp::select(done.recv(), pulse.channel().recv(), jobs.recv());
        if (r.index() == 0) break;                                     // cancelled
        if (r.index() == 1) {                                          // tick: a heartbeat, unless no one listens
            (void)heartbeat.try_send(*r.get<1>());
            continue;
        }
        int job = *r.get<2>();
        if (job < 0) {                                                 // simulate a hang: no more pulses
            co_await done.recv();
            break;
        }
        if ((co_await csp::select(done.recv(), results.send(job * job))).index() == 0) break;
    }
    exited.done();
}

int main() {
    return csp::run([]() -> csp::task<int> {
        ints done = csp::make_channel<int>();
        ints jobs = csp::make_channel<int>(6);
        ints results = csp::make_channel<int>();
        auto heartbeat = csp::make_channel<csp::clock::time_point>(1);

        csp::wait_group exited;
        exited.add(1);
        csp::go(worker(done, jobs, results, heartbeat, exited));

        int sum = 0, received = 0, pulses = 0;
        for (;;) {
            auto r = co_await csp::select(results.recv(), heartbeat.recv(), csp::after(silence_limit));
            if (r.index() == 0) {
                sum += *r.get<0>();
                ++received;
            } else if (r.index() == 1) {
                if (++pulses == 2)                                     // alive: give it the jobs
                    for (int job : {1, 2, 3, 4, 5, -1}) (void)jobs.try_send(job);  // room for all six
            } else {
                std::printf("no result or heartbeat for %lld ms: worker stuck, cancelling it\n",
                            static_cast<long long>(std::chrono::milliseconds(silence_limit).count()));
                break;
            }
        }
        done.close();
        co_await exited.wait();
        bool ok = pulses >= 2 && received == 5 && sum == 1 + 4 + 9 + 16 + 25;
        std::printf("%d results (sum %d) and %d heartbeats before the timeout: %s\n", received, sum, pulses,
                    ok ? "ok" : "WRONG RESULT");
        co_return ok ? 0 : 1;
    });
}
