#include <atomic>
#include <chrono>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

using namespace std::chrono_literals;

// Timer tests assert order and lower bounds only: a slow or loaded machine
// may wake a sleeper late, never early.

TEST_CASE("sleep_for suspends for at least the duration") {
    auto start = csp::clock::now();
    csp::run([]() -> csp::task<> { co_await csp::sleep_for(30ms); });
    CHECK(csp::clock::now() - start >= 30ms);
}

TEST_CASE("sleep_until resumes at or after the deadline, on the sleeper's executor") {
    csp::run_loop loop;
    auto deadline = csp::clock::now() + 20ms;
    bool on_loop = false;
    csp::clock::time_point woke;
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await csp::sleep_until(deadline);
        woke = csp::clock::now();
        on_loop = csp::this_executor() == csp::executor_ref(loop);
        loop.stop();
    });
    loop.run();
    CHECK(woke >= deadline);
    CHECK(on_loop);
}

TEST_CASE("sleep_for with a zero or negative duration does not suspend") {
    csp::run_loop loop;
    bool done = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await csp::sleep_for(0ms);
        co_await csp::sleep_for(-5ms);
        done = true;
    });
    loop.run_until_idle();
    CHECK(done);
}

TEST_CASE("sleepers wake in deadline order") {
    std::vector<int> order = csp::run([]() -> csp::task<std::vector<int>> {
        std::vector<int> woke;
        std::mutex mu;
        csp::wait_group wg;
        wg.add(5);
        for (int i : {4, 2, 0, 3, 1})
            csp::go([&, i]() -> csp::task<> {
                co_await csp::sleep_for(std::chrono::milliseconds(5 + 15 * i));
                {
                    std::lock_guard lock(mu);
                    woke.push_back(i);
                }
                wg.done();
            });
        co_await wg.wait();
        co_return woke;
    });
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("after is a select case that fires when nothing else is ready") {
    auto start = csp::clock::now();
    auto index = csp::run([]() -> csp::task<std::size_t> {
        auto never = csp::make_channel<int>();
        auto r = co_await csp::select(never.recv(), csp::after(25ms));
        co_return r.index();
    });
    CHECK(index == 1);
    CHECK(csp::clock::now() - start >= 25ms);
}

TEST_CASE("after's clock starts when it is called") {
    auto before = csp::clock::now();
    auto t = csp::after(10ms);
    auto after = csp::clock::now();
    // The deadline is fixed by the call itself, not by a later await or select.
    CHECK(t.deadline() >= before + 10ms);
    CHECK(t.deadline() <= after + 10ms);
    auto copy = t.recv();
    CHECK(copy.deadline() == t.deadline());
}

TEST_CASE("a ready channel case beats a pending timeout, and the losing timer is cancelled") {
    csp::run([]() -> csp::task<> {
        auto ch = csp::make_channel<int>(1);
        std::size_t pending_before = csp::detail::timer_queue::instance().size();
        for (int i = 0; i < 1000; ++i) {
            co_await ch.send(i);
            auto r = co_await csp::select(ch.recv(), csp::after(1h));
            REQUIRE(r.index() == 0);
        }
        // A blocked select whose channel case wins leaves no timer behind.
        csp::go([ch]() mutable -> csp::task<> {
            co_await csp::sleep_for(5ms);
            co_await ch.send(7);
        });
        auto r = co_await csp::select(ch.recv(), csp::after(1h));
        CHECK(r.index() == 0);
        CHECK(csp::detail::timer_queue::instance().size() == pending_before);
    });
}

TEST_CASE("a select with timeouts racing sends accounts for every value") {
    // Receivers use short timeouts while senders race them: a value is
    // either received or still in the channel at the end, never lost.
    long received = csp::run([]() -> csp::task<long> {
        auto ch = csp::make_channel<int>(4);
        std::atomic<long> got{0};
        csp::wait_group wg;
        wg.add(8);
        for (int s = 0; s < 4; ++s)
            csp::go([&, ch]() mutable -> csp::task<> {
                for (int i = 0; i < 500; ++i) co_await ch.send(1);
                wg.done();
            });
        for (int r = 0; r < 4; ++r)
            csp::go([&, ch]() mutable -> csp::task<> {
                int timeouts = 0;
                while (timeouts < 3) {
                    auto res = co_await csp::select(ch.recv(), csp::after(2ms));
                    if (res.index() == 0) got += *res.get<0>();
                    else ++timeouts;
                }
                wg.done();
            });
        co_await wg.wait();
        long left = 0;
        while (auto v = ch.try_recv()) left += *v.value;
        co_return got + left;
    });
    CHECK(received == 2000);
}

TEST_CASE("a ticker delivers periodic ticks") {
    auto start = csp::clock::now();
    csp::run([]() -> csp::task<> {
        csp::ticker t(10ms);
        csp::clock::time_point last{};
        for (int i = 0; i < 5; ++i) {
            auto tick = co_await t.channel().recv();
            REQUIRE(tick);
            CHECK(*tick > last);
            last = *tick;
        }
    });
    CHECK(csp::clock::now() - start >= 50ms);
}

TEST_CASE("a ticker drops ticks for a slow receiver") {
    csp::run([]() -> csp::task<> {
        csp::ticker t(2ms);
        co_await csp::sleep_for(40ms);  // ~20 ticks come and go
        CHECK(t.channel().size() == 1);  // only one was kept
        t.stop();
        co_await t.channel().recv();  // the kept tick
        CHECK(t.channel().try_recv().status == csp::chan_status::would_block);  // and no more after stop
    });
}

TEST_CASE("a million pending timers are cheap to arm and cancel") {
    csp::run_loop loop;
    constexpr int n = 1'000'000;
    auto never = csp::make_channel<int>();
    for (int i = 0; i < n; ++i)
        csp::spawn(loop, [](csp::channel<int> c, int k) -> csp::task<> {
            co_await csp::select(c.recv(), csp::after(std::chrono::hours(1) + std::chrono::microseconds(k)));
        }, never, i);
    loop.run_until_idle();
    CHECK(csp::detail::timer_queue::instance().size() >= std::size_t(n));
    // Destroying the loop destroys the goroutines, which cancel their timers.
}

TEST_CASE("after can be received from like Go's time.After channel") {
    auto start = csp::clock::now();
    auto [fired, index] = csp::run([]() -> csp::task<std::pair<bool, std::size_t>> {
        auto timeout = csp::after(15ms);
        auto t = co_await timeout.recv();
        auto never = csp::make_channel<int>();
        auto r = co_await csp::select(never.recv(), csp::after(5ms).recv());
        co_return std::pair{t.has_value(), r.index()};
    });
    CHECK(fired);
    CHECK(index == 1);
    CHECK(csp::clock::now() - start >= 20ms);
}
