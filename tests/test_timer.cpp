#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

using namespace std::chrono_literals;

// Two kinds of timer test. On csp::testing's executor the clock is virtual,
// so those tests assert exact times, over many seeds, in microseconds. On the
// real runtime (the process-wide timer thread) they assert order and lower
// bounds only: a slow or loaded machine may wake a sleeper late, never early.

namespace ct = csp::testing;

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

TEST_CASE("sleepers wake in deadline order, each exactly at its deadline (virtual time)") {
    ct::for_each_seed(1000, [](std::uint64_t seed) {
        ct::run(seed, []() -> csp::task<> {
            std::vector<int> woke;
            csp::wait_group wg;
            wg.add(5);
            const auto start = csp::now();
            for (int i : {4, 2, 0, 3, 1})
                csp::go([&, i]() -> csp::task<> {
                    co_await csp::sleep_for(std::chrono::milliseconds(5 + 15 * i));
                    if (csp::now() - start != std::chrono::milliseconds(5 + 15 * i))
                        throw std::runtime_error("woke at the wrong time");
                    woke.push_back(i);
                    wg.done();
                });
            co_await wg.wait();
            if (woke != std::vector<int>{0, 1, 2, 3, 4}) throw std::runtime_error("woke out of deadline order");
        });
    });
}

TEST_CASE("sleepers on the real runtime each wake at or after their own deadline") {
    // Deadline order itself is checked exactly on virtual time above. On real
    // time a loaded machine may fire several timers in one batch, and then
    // the pool may run them in any order; what must hold is that nobody
    // wakes early and everybody wakes.
    auto late = csp::run([]() -> csp::task<std::vector<csp::clock::duration>> {
        std::vector<csp::clock::duration> lateness(3);
        csp::wait_group wg;
        wg.add(3);
        const auto start = csp::now();
        for (int i : {2, 0, 1})
            csp::go([&, i]() -> csp::task<> {
                auto deadline = start + std::chrono::milliseconds(5 + 15 * i);
                co_await csp::sleep_until(deadline);
                lateness[std::size_t(i)] = csp::now() - deadline;
                wg.done();
            });
        co_await wg.wait();
        co_return lateness;
    });
    for (auto d : late) CHECK(d >= csp::clock::duration::zero());
}

TEST_CASE("after is a select case that fires when nothing else is ready, exactly at its deadline") {
    ct::for_each_seed(1000, [](std::uint64_t seed) {
        ct::run(seed, []() -> csp::task<> {
            auto never = csp::make_channel<int>();
            auto start = csp::now();
            auto r = co_await csp::select(never.recv(), csp::after(25ms));
            if (r.index() != 1 || csp::now() - start != 25ms) throw std::runtime_error("the timeout did not fire at 25 ms");
            if (*r.get<1>() != start + 25ms) throw std::runtime_error("the timeout delivers its deadline");
        });
    });
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
    // either received or still in the channel at the end, never lost. A
    // receiver leaves only on a timeout after every sender has finished, so
    // no sender can be left blocked however the timeouts fall (the test
    // does not depend on timing: a slow machine only sees more timeouts).
    long received = csp::run([]() -> csp::task<long> {
        auto ch = csp::make_channel<int>(4);
        auto senders_done = csp::make_channel<int>();  // closed when all have sent
        std::atomic<long> got{0};
        csp::wait_group senders, receivers;
        senders.add(4);
        receivers.add(4);
        for (int s = 0; s < 4; ++s)
            csp::go([&, ch]() mutable -> csp::task<> {
                for (int i = 0; i < 500; ++i) co_await ch.send(1);
                senders.done();
            });
        for (int r = 0; r < 4; ++r)
            csp::go([&, ch, senders_done]() mutable -> csp::task<> {
                for (;;) {
                    auto res = co_await csp::select(ch.recv(), csp::after(2ms));
                    if (res.index() == 0) got += *res.get<0>();
                    else if (senders_done.try_recv().status == csp::chan_status::closed) break;
                }
                receivers.done();
            });
        co_await senders.wait();
        senders_done.close();
        co_await receivers.wait();
        long left = 0;
        while (auto v = ch.try_recv()) left += *v.value;
        co_return got + left;
    });
    CHECK(received == 2000);
}

TEST_CASE("a ticker delivers a tick every period, exactly (virtual time)") {
    ct::run(5, []() -> csp::task<> {
        csp::ticker t(250ms);
        auto start = csp::now();
        for (int i = 1; i <= 8; ++i) {
            auto tick = co_await t.channel().recv();
            REQUIRE(tick);
            CHECK(*tick - start == i * 250ms);
            CHECK(csp::now() == *tick);
        }
    });
}

TEST_CASE("a ticker on the real runtime delivers periodic ticks") {
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

TEST_CASE("a ticker keeps one tick for a slow receiver and drops the rest (virtual time)") {
    ct::run(5, []() -> csp::task<> {
        csp::ticker t(1s);
        auto start = csp::now();
        co_await csp::sleep_for(10500ms);  // ten ticks come; the channel keeps the first
        auto tick = co_await t.channel().recv();
        CHECK(*tick - start == 1s);
        tick = co_await t.channel().recv();  // the next one is at 11 s: 2..10 were dropped
        CHECK(*tick - start == 11s);
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
    ct::run(1, []() -> csp::task<> {
        auto start = csp::now();
        auto timeout = csp::after(15ms);
        auto t = co_await timeout.recv();
        CHECK(t == start + 15ms);
        auto never = csp::make_channel<int>();
        auto r = co_await csp::select(never.recv(), csp::after(5ms).recv());
        CHECK(r.index() == 1);
        CHECK(csp::now() - start == 20ms);
    });
}

TEST_CASE("a blocked select whose channel case wins cancels its timer (virtual time)") {
    ct::for_each_seed(500, [](std::uint64_t seed) {
        ct::run(seed, []() -> csp::task<> {
            auto ch = csp::make_channel<int>();
            auto& timers = csp::this_executor().timers();
            csp::go([ch]() mutable -> csp::task<> {
                co_await csp::sleep_for(5ms);
                co_await ch.send(7);
            });
            auto r = co_await csp::select(ch.recv(), csp::after(1h));
            if (r.index() != 0 || timers.size() != 0) throw std::runtime_error("the losing timer is still queued");
        });
    });
}

namespace {
/// An executor with its own externally driven timer queue, as an epoll
/// poller would have: the run_loop runs goroutines, the test drives time.
struct loop_with_timers {
    std::deque<std::coroutine_handle<>> ready;
    csp::detail::timer_queue queue{csp::detail::timer_queue::clock_kind::virtual_time};
    void post(std::coroutine_handle<> h) { ready.push_back(h); }
    csp::detail::timer_queue& timers() noexcept { return queue; }
    void run_until_idle() {
        while (!ready.empty()) {
            auto h = ready.front();
            ready.pop_front();
            csp::executor_scope scope(*this);
            h.resume();
        }
    }
};
}  // namespace

TEST_CASE("an executor's own timer queue is used, driven from outside, and reports each new earliest deadline") {
    loop_with_timers ex;
    std::vector<csp::clock::time_point> announced;
    ex.queue.on_deadline_changed(
        [](void* ctx, csp::clock::time_point d) { static_cast<std::vector<csp::clock::time_point>*>(ctx)->push_back(d); },
        &announced);
    CHECK(&csp::executor_ref(ex).timers() == &ex.queue);
    const auto start = ex.queue.now();
    int woke = 0;
    for (auto d : {5s, 2s, 9s})
        csp::spawn(ex, [&woke, d]() -> csp::task<> {
            co_await csp::sleep_for(d);
            ++woke;
        });
    ex.run_until_idle();
    // 5 s, then 2 s were each the earliest when inserted; 9 s never was.
    CHECK(announced == std::vector<csp::clock::time_point>{start + 5s, start + 2s});
    CHECK(ex.queue.next_deadline() == start + 2s);
    CHECK(ex.queue.fire_due(ex.queue.now()) == 0);  // nothing is due yet
    ex.queue.advance_to(start + 5s);
    CHECK(ex.queue.fire_due(ex.queue.now()) == 2);
    ex.run_until_idle();
    CHECK(woke == 2);
    CHECK(ex.queue.next_deadline() == start + 9s);
    CHECK(csp::detail::timer_queue::instance().size() == 0);  // nothing went to the process-wide queue
    ex.queue.advance_to(start + 9s);
    ex.queue.fire_due(ex.queue.now());
    ex.run_until_idle();
    CHECK(woke == 3);
    CHECK(ex.queue.next_deadline() == csp::clock::time_point::max());
}

TEST_CASE("advance_to on a real-clock timer queue is an error") {
    csp::detail::timer_queue q(csp::detail::timer_queue::clock_kind::steady);
    CHECK_THROWS_AS(q.advance_to(q.now() + 1s), std::logic_error);
}
