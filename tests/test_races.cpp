// Races of select, close and timeouts, explored over thousands of seeds on
// the deterministic executor (each seed is one interleaving, replayable with
// CSP_TEST_SEED=n). Every scenario accounts exactly for every value: nothing
// lost, nothing duplicated, and Go's rules hold whatever the interleaving.
// CSP_TEST_SEEDS=n runs n seeds per scenario (the `exhaustive` CTest label).
#include <algorithm>
#include <chrono>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

using namespace std::chrono_literals;
namespace ct = csp::testing;

namespace {

constexpr std::uint64_t default_seeds = 10000;

void expect(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(what);
}

/// Per-goroutine pseudo-random choices derived from the seed, so the
/// program itself (not only the schedule) varies with it.
csp::detail::wyrand program_rng(std::uint64_t seed, int who) {
    return csp::detail::wyrand{seed * 0x9e3779b97f4a7c15ULL + std::uint64_t(who)};
}

/// A few yields or a short virtual sleep, chosen by `rng`.
csp::task<> dawdle(csp::detail::wyrand& rng) {
    switch (rng.below(4)) {
    case 0: break;
    case 1: co_await csp::yield(); break;
    case 2: co_await csp::yield(); co_await csp::yield(); break;
    default: co_await csp::sleep_for(std::chrono::milliseconds(rng.below(5))); break;
    }
}

}  // namespace

TEST_CASE("close wakes every blocked receiver, after the buffered values are taken") {
    std::uint64_t both_orders[2] = {0, 0};
    ct::for_each_seed(default_seeds, [&](std::uint64_t seed) {
        ct::run(seed, [&]() -> csp::task<> {
            auto rng = program_rng(seed, 0);
            const std::size_t cap = rng.below(3);
            const int buffered = int(cap ? rng.below(std::uint32_t(cap) + 1) : 0), receivers = 1 + int(rng.below(4));
            auto ch = csp::make_channel<int>(cap);
            for (int i = 0; i < buffered; ++i) expect(ch.try_send(i) == csp::chan_status::ok, "buffer has room");
            std::vector<int> got;
            int closed_seen = 0;
            csp::wait_group wg;
            wg.add(receivers);
            for (int r = 0; r < receivers; ++r)
                csp::go([&](csp::detail::wyrand rng) -> csp::task<> {
                    co_await dawdle(rng);
                    for (;;) {
                        auto v = co_await ch.recv();
                        if (!v) break;
                        got.push_back(*v);
                    }
                    ++closed_seen;
                    wg.done();
                }, program_rng(seed, r + 1));
            co_await dawdle(rng);
            ch.close();
            ++both_orders[got.size() == std::size_t(buffered) ? 0 : 1];
            co_await wg.wait();
            expect(closed_seen == receivers, "every receiver saw the close");
            std::sort(got.begin(), got.end());
            std::vector<int> want(std::size_t(buffered), 0);
            std::iota(want.begin(), want.end(), 0);
            expect(got == want, "the buffered values were received exactly once");
            expect(!ch.try_recv() && ch.try_recv().status == csp::chan_status::closed, "closed and drained");
        });
    });
    CHECK(both_orders[0] > 0);  // the close came after the receivers drained the buffer...
    CHECK(both_orders[1] > 0);  // ...and before
}

TEST_CASE("senders blocked on a full channel throw when it is closed; sent values are all received") {
    ct::for_each_seed(default_seeds, [&](std::uint64_t seed) {
        ct::run(seed, [&]() -> csp::task<> {
            auto rng = program_rng(seed, 0);
            const std::size_t cap = rng.below(3);
            const int senders = 1 + int(rng.below(4));
            auto ch = csp::make_channel<int>(cap);
            std::vector<int> sent, received;
            int threw = 0;
            csp::wait_group wg;
            wg.add(senders + 1);
            for (int s = 0; s < senders; ++s)
                csp::go([&](int s, csp::detail::wyrand rng) -> csp::task<> {
                    co_await dawdle(rng);
                    try {
                        co_await ch.send(s);
                        sent.push_back(s);
                    } catch (const csp::channel_closed&) {
                        ++threw;
                    }
                    wg.done();
                }, s, program_rng(seed, s + 1));
            csp::go([&](csp::detail::wyrand rng) -> csp::task<> {  // takes one value, maybe
                co_await dawdle(rng);
                if (rng.below(2)) {
                    auto r = co_await csp::select(ch.recv(), csp::default_case);
                    if (r.index() == 0 && r.get<0>()) received.push_back(*r.get<0>());
                }
                wg.done();
            }, program_rng(seed, 99));
            co_await dawdle(rng);
            ch.close();
            co_await wg.wait();
            while (auto v = co_await ch.recv()) received.push_back(*v);
            expect(int(sent.size()) + threw == senders, "every sender either sent or threw");
            std::sort(sent.begin(), sent.end());
            std::sort(received.begin(), received.end());
            expect(sent == received, "every value sent was received exactly once");
            expect(ch.try_send(7) == csp::chan_status::closed, "try_send on a closed channel reports closed");
        });
    });
}

TEST_CASE("a select racing a ready channel against an expired timeout fires exactly one case") {
    int outcomes[2] = {0, 0};
    ct::for_each_seed(default_seeds, [&](std::uint64_t seed) {
        int fired = ct::run(seed, []() -> csp::task<int> {
            auto ch = csp::make_channel<int>(1);
            auto deadline = csp::now() + 5ms;
            co_await csp::sleep_until(deadline);
            co_await ch.send(42);
            auto r = co_await csp::select(ch.recv(), csp::at(deadline));  // both ready
            if (r.index() == 0) expect(r.get<0>() == 42, "the value");
            else expect(ch.size() == 1, "the value stays buffered when the timeout wins");
            co_return int(r.index());
        });
        ++outcomes[fired];
    });
    CHECK(outcomes[0] > 0);  // uniformly random among ready cases: both happen
    CHECK(outcomes[1] > 0);
}

TEST_CASE("receives with timeouts racing sends with timeouts lose and duplicate nothing") {
    ct::for_each_seed(default_seeds / 2, [&](std::uint64_t seed) {  // the longest scenario: half the seeds
        ct::run(seed, [&]() -> csp::task<> {
            auto rng = program_rng(seed, 0);
            auto ch = csp::make_channel<int>(rng.below(3));
            const int n = 16;
            std::vector<int> received;
            int timeouts = 0;
            csp::go([&](csp::detail::wyrand rng) -> csp::task<> {
                for (int v = 0; v < n;) {
                    auto r = co_await csp::select(ch.send(v), csp::after(std::chrono::milliseconds(1 + rng.below(3))));
                    if (r.index() == 0) ++v;  // else: retry the same value
                    else ++timeouts;
                    co_await dawdle(rng);
                }
                ch.close();
            }, program_rng(seed, 1));
            for (;;) {
                auto r = co_await csp::select(ch.recv(), csp::after(std::chrono::milliseconds(1 + rng.below(3))));
                if (r.index() == 1) { ++timeouts; continue; }
                if (!r.get<0>()) break;
                received.push_back(*r.get<0>());
                co_await dawdle(rng);
            }
            std::vector<int> want(n);
            std::iota(want.begin(), want.end(), 0);
            expect(received == want, "every value once, in order");
        });
    });
}

TEST_CASE("fan-in and fan-out through selects over two channels, then close, accounts for every value") {
    ct::for_each_seed(default_seeds / 2, [&](std::uint64_t seed) {
        ct::run(seed, [&]() -> csp::task<> {
            auto rng = program_rng(seed, 0);
            auto a = csp::make_channel<int>(rng.below(2)), b = csp::make_channel<int>(rng.below(3));
            const int producers = 2 + int(rng.below(2)), consumers = 1 + int(rng.below(3)), each = 6;
            long sum_sent = 0, sum_received = 0;
            int count = 0;
            csp::wait_group sent, done;
            sent.add(producers);
            done.add(consumers);
            for (int p = 0; p < producers; ++p)
                csp::go([&](int p, csp::detail::wyrand rng) -> csp::task<> {
                    for (int k = 0; k < each; ++k) {
                        int v = p * 100 + k;
                        co_await csp::select(a.send(v), b.send(v));
                        sum_sent += v;
                        co_await dawdle(rng);
                    }
                    sent.done();
                }, p, program_rng(seed, p + 1));
            for (int c = 0; c < consumers; ++c)
                csp::go([&](csp::detail::wyrand rng) -> csp::task<> {
                    bool a_open = true, b_open = true;
                    while (a_open || b_open) {
                        // A closed channel is replaced by a nil one, which is never ready (Go's idiom).
                        csp::channel<int> ra = a_open ? a : csp::channel<int>(), rb = b_open ? b : csp::channel<int>();
                        auto r = co_await csp::select(ra.recv(), rb.recv());
                        auto& v = r.index() == 0 ? r.get<0>() : r.get<1>();
                        if (!v) (r.index() == 0 ? a_open : b_open) = false;
                        else sum_received += *v, ++count;
                        co_await dawdle(rng);
                    }
                    done.done();
                }, program_rng(seed, 50 + c));
            co_await sent.wait();
            a.close();
            b.close();
            co_await done.wait();
            expect(count == producers * each, "every value received once");
            expect(sum_received == sum_sent, "the values received are the values sent");
        });
    });
}

TEST_CASE("a timeout and a close due at the same instant: exactly one case fires") {
    int outcomes[2] = {0, 0};
    ct::for_each_seed(default_seeds, [&](std::uint64_t seed) {
        ct::run(seed, [&]() -> csp::task<> {
            auto ch = csp::make_channel<int>();
            auto deadline = csp::now() + 10ms;
            csp::go([](csp::channel<int> ch, csp::clock::time_point deadline) -> csp::task<> {
                co_await csp::sleep_until(deadline);
                ch.close();
            }, ch, deadline);
            co_await csp::sleep_until(deadline);  // the closer may or may not have run yet
            auto r = co_await csp::select(ch.recv(), csp::at(deadline));
            if (r.index() == 0) expect(!r.get<0>(), "a closed channel yields nullopt");
            ++outcomes[r.index()];
            co_await csp::sleep_for(1ms);
            expect(ch.closed(), "the close happened");
        });
    });
    CHECK(outcomes[0] + outcomes[1] == int(ct::seed_count(default_seeds)));
    CHECK(outcomes[0] > 0);
    CHECK(outcomes[1] > 0);
}

TEST_CASE("a 30-second timeout test with a late sender runs instantly and exactly") {
    ct::for_each_seed(200, [&](std::uint64_t seed) {
        ct::run(seed, [&]() -> csp::task<> {
            auto ch = csp::make_channel<int>();
            csp::go([](csp::channel<int> ch) -> csp::task<> {
                co_await csp::sleep_for(31s);
                (void)co_await csp::select(ch.send(1), csp::default_case);  // nobody waits any more
            }, ch);
            auto start = csp::now();
            auto r = co_await csp::select(ch.recv(), csp::after(30s));
            expect(r.index() == 1, "the timeout fires first");
            expect(csp::now() - start == 30s, "at exactly 30 s of virtual time");
        });
    });
}
