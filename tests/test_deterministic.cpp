// The deterministic test executor itself: scheduling by seed, replay,
// virtual time, deadlock reports, exceptions, yield and the budget.
#include <chrono>
#include <string>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

using namespace std::chrono_literals;
namespace ct = csp::testing;

namespace {

// Three goroutines that interleave through an unbuffered channel and
// yields; the trace records who did what in which order.
csp::task<std::vector<int>> interleaving() {
    std::vector<int> trace;
    auto ch = csp::make_channel<int>();
    csp::wait_group wg;
    wg.add(3);
    for (int g = 0; g < 3; ++g) {
        csp::go([](int g, csp::channel<int> ch, std::vector<int>& trace, csp::wait_group& wg) -> csp::task<> {
            for (int k = 0; k < 4; ++k) {
                trace.push_back(g * 10 + k);
                if ((g + k) % 2) co_await csp::yield();
                else co_await ch.send(g * 10 + k);
            }
            wg.done();
        }, g, ch, std::ref(trace), std::ref(wg));
    }
    csp::go([](csp::channel<int> ch, std::vector<int>& trace) -> csp::task<> {
        for (;;) {
            auto r = co_await csp::select(ch.recv(), csp::after(1s));
            if (r.index() == 1) break;
            trace.push_back(100 + *r.get<0>());
        }
    }, ch, std::ref(trace));
    co_await wg.wait();
    co_return trace;
}

}  // namespace

TEST_CASE("a seed replays exactly: same trace, same schedule") {
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        ct::deterministic_executor a(seed), b(seed);
        auto ta = a.run(interleaving);
        auto tb = b.run(interleaving);
        REQUIRE(ta == tb);
        REQUIRE(a.steps() == b.steps());
        REQUIRE(a.schedule_hash() == b.schedule_hash());
    }
}

TEST_CASE("different seeds explore different interleavings") {
    std::vector<std::vector<int>> seen;
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        auto t = ct::run(seed, interleaving);
        if (std::find(seen.begin(), seen.end(), t) == seen.end()) seen.push_back(t);
    }
    CHECK(seen.size() > 10);
}

TEST_CASE("select's random choice among ready cases follows the seed") {
    auto choices = [](std::uint64_t seed) {
        return ct::run(seed, []() -> csp::task<std::string> {
            auto a = csp::make_channel<int>(64), b = csp::make_channel<int>(64);
            std::string s;
            for (int i = 0; i < 32; ++i) {
                co_await a.send(i);
                co_await b.send(i);
                auto r = co_await csp::select(a.recv(), b.recv());
                s += char('a' + r.index());
            }
            co_return s;
        });
    };
    CHECK(choices(7) == choices(7));
    CHECK(choices(7) != choices(8));
    auto s = choices(7);
    CHECK(s.find('a') != std::string::npos);
    CHECK(s.find('b') != std::string::npos);
}

TEST_CASE("a 30-second timeout fires in virtual time, at exactly 30 s") {
    auto wall = std::chrono::steady_clock::now();
    ct::deterministic_executor ex(1);
    auto elapsed = ex.run([]() -> csp::task<csp::clock::duration> {
        auto start = csp::now();
        auto never = csp::make_channel<int>();
        auto r = co_await csp::select(never.recv(), csp::after(30s));
        if (r.index() != 1) throw std::runtime_error("the timeout should have fired");
        co_return csp::now() - start;
    });
    CHECK(elapsed == 30s);
    CHECK(std::chrono::steady_clock::now() - wall < 10s);  // generous: it takes microseconds
}

TEST_CASE("virtual time moves only when every goroutine is blocked") {
    ct::run(3, []() -> csp::task<> {
        auto t0 = csp::now();
        for (int i = 0; i < 100; ++i) co_await csp::yield();
        if (csp::now() != t0) throw std::runtime_error("time moved while a goroutine could run");
        co_await csp::sleep_for(0ms);  // due at once: does not suspend
        co_await csp::sleep_for(1500ms);
        if (csp::now() - t0 != 1500ms) throw std::runtime_error("sleep_for did not end at its deadline");
        co_await csp::sleep_until(t0 + 1h);
        if (csp::now() - t0 != 1h) throw std::runtime_error("sleep_until did not end at its deadline");
    });
}

TEST_CASE("the deterministic executor reports a deadlock instead of hanging") {
    ct::deterministic_executor ex(9);
    auto body = []() -> csp::task<> {
        auto ch = csp::make_channel<int>();
        csp::go([](csp::channel<int> ch) -> csp::task<> { co_await ch.send(1); co_await ch.send(2); }, ch);
        (void)co_await ch.recv();
        (void)co_await ch.recv();
        (void)co_await ch.recv();  // nobody sends a third
    };
    try {
        ex.run(body);
        FAIL("no deadlock reported");
    } catch (const csp::deadlock_error& e) {
        std::string what = e.what();
        CHECK(what.find("deadlock") != std::string::npos);
        CHECK(what.find("receive from channel") != std::string::npos);
        CHECK(what.find("seed 9") != std::string::npos);
    }
    CHECK(ex.goroutines().size() == 0);  // the blocked ones were destroyed
    CHECK(ex.run([]() -> csp::task<int> { co_return 4; }) == 4);  // and it runs again
}

TEST_CASE("a pending timer is not a deadlock; a goroutine blocked behind it is") {
    CHECK_THROWS_AS(ct::run(1, []() -> csp::task<> {
                        co_await csp::sleep_for(1h);
                        auto ch = csp::make_channel<int>();
                        co_await ch.send(1);
                    }),
                    csp::deadlock_error);
}

TEST_CASE("a goroutine blocked forever beside a ticker nobody reads is reported, not spun on") {
    CHECK_THROWS_WITH(ct::run(1, []() -> csp::task<> {
                          csp::ticker t(1ms);
                          auto ch = csp::make_channel<int>();
                          co_await ch.recv();
                      }),
                      Catch::Contains("deadlock") && Catch::Contains("woke nothing"));
}

TEST_CASE("exceptions of the main goroutine and of other goroutines propagate") {
    CHECK_THROWS_WITH(ct::run(1, []() -> csp::task<> {
                          co_await csp::yield();
                          throw std::runtime_error("main failed");
                      }),
                      "main failed");
    CHECK_THROWS_WITH(ct::run(1, []() -> csp::task<> {
                          csp::go([]() -> csp::task<> {
                              co_await csp::sleep_for(1s);
                              throw std::runtime_error("child failed");
                          });
                          co_await csp::sleep_for(1h);
                      }),
                      "child failed");
}

TEST_CASE("goroutines still alive when main returns are destroyed, not resumed") {
    csp_test::counted::live = 0;
    bool resumed = false;
    ct::run(2, [&]() -> csp::task<> {
        csp::go([](bool& resumed) -> csp::task<> {
            csp_test::counted c(1);
            co_await csp::sleep_for(1s);
            resumed = true;
        }, std::ref(resumed));
        co_await csp::yield();
    });
    CHECK_FALSE(resumed);
    CHECK(csp_test::counted::live == 0);
}

TEST_CASE("yield lets every other runnable goroutine run first") {
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
        ct::run(seed, []() -> csp::task<> {
            int others = 0;
            for (int i = 0; i < 3; ++i) csp::go([](int& n) -> csp::task<> { ++n; co_return; }, std::ref(others));
            co_await csp::yield();
            if (others != 3) throw std::runtime_error("yield resumed before the runnable goroutines");
        });
    }
}

TEST_CASE("a goroutine on an always-ready channel cannot starve the others (budget)") {
    ct::run(4, []() -> csp::task<> {
        auto ch = csp::make_channel<int>(1);
        bool stop = false;
        csp::go([](bool& stop) -> csp::task<> { stop = true; co_return; }, std::ref(stop));
        long n = 0;
        while (!stop) {  // never suspends on the channel: only the budget yields
            co_await ch.send(1);
            (void)co_await ch.recv();
            ++n;
        }
        if (n > 10 * csp::detail::budget_per_resumption) throw std::runtime_error("starved");
    });
}

TEST_CASE("for_each_seed names the failing seed") {
    try {
        ct::for_each_seed(100, [](std::uint64_t seed) {
            if (seed == 37) throw std::runtime_error("boom");
        });
        FAIL("no failure reported");
    } catch (const ct::seed_failure& e) {
        CHECK(e.seed() == 37);
        CHECK(std::string(e.what()).find("seed 37") != std::string::npos);
        CHECK(std::string(e.what()).find("boom") != std::string::npos);
    }
}

TEST_CASE("csp::now outside a test executor is the steady clock") {
    auto before = csp::clock::now();
    auto t = csp::now();
    CHECK(t >= before);
    CHECK(t <= csp::clock::now());
}
