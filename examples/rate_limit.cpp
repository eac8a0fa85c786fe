// Go pattern: rate limiting with a ticker (gobyexample.com/rate-limiting).
//
// Five requests are served at most one per tick of a 20 ms ticker. Then a
// bursty limiter: a buffered channel of 3 tokens, filled up front and
// refilled by the ticker, lets a burst of 3 through at once and paces the
// rest. Timing only ever gives lower bounds (a slow machine only makes it
// slower), so that is all this program checks.
#include <csp/csp.hpp>
#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

constexpr auto period = 20ms;

ms since(csp::clock::time_point start) {
    return std::chrono::duration_cast<ms>(csp::clock::now() - start);
}

// Serves `n` requests, each after a token from `limiter`; returns when the last one was served.
csp::task<ms> serve(csp::channel<csp::clock::time_point> limiter, int n, csp::clock::time_point start) {
    for (int request = 1; request <= n; ++request) {
        co_await limiter.recv();
        std::printf("  request %d at %3lld ms\n", request, static_cast<long long>(since(start).count()));
    }
    co_return since(start);
}

// Moves one token per tick into the bursty limiter (dropped while it is full).
// It holds its own handle to the ticks channel, which outlives the ticker.
csp::task<> refill(csp::channel<csp::clock::time_point> ticks, csp::channel<csp::clock::time_point> tokens) {
    while (auto tick = co_await ticks.recv()) (void)tokens.try_send(*tick);
}

int main() {
    return csp::run([]() -> csp::task<int> {
        std::printf("steady: one request per %lld ms\n", static_cast<long long>(ms(period).count()));
        auto start = csp::clock::now();
        ms steady{};
        {
            csp::ticker t(period);
            steady = co_await serve(t.channel(), 5, start);
        }

        std::printf("bursty: 3 at once, then one per tick\n");
        auto tokens = csp::make_channel<csp::clock::time_point>(3);
        for (int i = 0; i < 3; ++i) (void)tokens.try_send(csp::clock::now());  // the burst allowance
        start = csp::clock::now();  // before the ticker: its ticks come at least k periods after start
        csp::ticker t(period);
        csp::go(refill(t.channel(), tokens));
        ms bursty = co_await serve(tokens, 6, start);
        t.stop();  // no more ticks; the refill goroutine stays blocked and run() destroys it

        // 5 steady requests need 5 ticks; 6 bursty ones need 3 ticks after the burst.
        bool ok = steady >= 5 * period && bursty >= 3 * period;
        std::printf("steady took %lld ms (>= 100), bursty %lld ms (>= 60): %s\n",
                    static_cast<long long>(steady.count()), static_cast<long long>(bursty.count()),
                    ok ? "ok" : "WRONG RESULT");
        co_return ok ? 0 : 1;
    });
}
