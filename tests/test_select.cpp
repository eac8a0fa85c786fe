#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

#include "counting_allocator.hpp"  // this program counts its heap allocations
#include "round_trips.hpp"

using csp::chan_status;

TEST_CASE("select completes a ready receive case and gives its value") {
    auto a = csp::make_channel<int>(1), b = csp::make_channel<int>(1);
    a.try_send(7);
    auto r = csp::sync_wait(csp::select(a.recv(), b.recv()));
    REQUIRE(r.index() == 0);
    CHECK(r.get<0>() == 7);
    CHECK_THROWS_AS(r.get<1>(), std::bad_variant_access);
}

TEST_CASE("select completes a ready send case") {
    auto a = csp::make_channel<int>(), b = csp::make_channel<int>(1);
    auto r = csp::sync_wait(csp::select(a.recv(), b.send(3)));
    CHECK(r.index() == 1);
    CHECK(b.try_recv().value == 3);
}

TEST_CASE("select with default chooses default only when nothing is ready") {
    auto a = csp::make_channel<int>(1);
    auto r = csp::sync_wait(csp::select(a.recv(), csp::default_case));
    CHECK(r.index() == 1);
    a.try_send(1);
    r = csp::sync_wait(csp::select(a.recv(), csp::default_case));
    CHECK(r.index() == 0);
    // The default may stand anywhere in the list.
    a.try_send(2);
    auto r2 = csp::sync_wait(csp::select(csp::default_case, a.recv()));
    CHECK(r2.index() == 1);
    auto r3 = csp::sync_wait(csp::select(csp::default_case, a.recv()));
    CHECK(r3.index() == 0);
}

TEST_CASE("a blocked select wakes when a counterpart arrives on any case") {
    csp::run_loop loop;
    auto a = csp::make_channel<int>();
    auto b = csp::make_channel<std::string>();
    std::size_t fired = 99;
    std::string got;
    csp::spawn(loop, [&]() -> csp::task<> {
        auto r = co_await csp::select(a.recv(), b.recv());
        fired = r.index();
        if (r.index() == 1) got = *r.get<1>();
    });
    loop.run_until_idle();
    CHECK(fired == 99);
    REQUIRE(b.try_send(std::string("hi")) == chan_status::ok);
    loop.run_until_idle();
    CHECK(fired == 1);
    CHECK(got == "hi");
    // The losing case's waiter was removed: a has no receiver now.
    CHECK(a.try_send(1) == chan_status::would_block);
}

TEST_CASE("a blocked select's send case hands its value to a receiver") {
    csp::run_loop loop;
    auto a = csp::make_channel<int>(), b = csp::make_channel<int>();
    std::size_t fired = 99;
    csp::spawn(loop, [&]() -> csp::task<> {
        auto r = co_await csp::select(a.send(1), b.send(2));
        fired = r.index();
    });
    loop.run_until_idle();
    auto v = b.try_recv();
    CHECK(v.value == 2);
    loop.run_until_idle();
    CHECK(fired == 1);
    CHECK(a.try_recv().status == chan_status::would_block);  // a's case sent nothing
}

TEST_CASE("exactly one case completes when several counterparts arrive") {
    csp::run_loop loop;
    auto a = csp::make_channel<int>(), b = csp::make_channel<int>();
    int completed = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await csp::select(a.recv(), b.recv());
        ++completed;
    });
    loop.run_until_idle();
    CHECK(a.try_send(1) == chan_status::ok);
    CHECK(b.try_send(2) == chan_status::would_block);  // the select is no longer waiting on b
    loop.run_until_idle();
    CHECK(completed == 1);
}

TEST_CASE("a losing receive case consumes nothing and a losing send case sends nothing") {
    for (int round = 0; round < 200; ++round) {
        auto a = csp::make_channel<int>(1), b = csp::make_channel<int>(1), out = csp::make_channel<int>(1);
        a.try_send(1);
        b.try_send(2);
        auto r = csp::sync_wait(csp::select(a.recv(), b.recv(), out.send(3)));
        CHECK(a.size() + b.size() + out.size() == (r.index() == 2 ? 3u : 1u));
        if (r.index() == 0) CHECK((b.size() == 1 && out.size() == 0));
        if (r.index() == 1) CHECK((a.size() == 1 && out.size() == 0));
        if (r.index() == 2) CHECK((a.size() == 1 && b.size() == 1));
    }
}

TEST_CASE("a send case that loses does not move from its argument") {
    auto full = csp::make_channel<std::unique_ptr<int>>(1);
    auto ready = csp::make_channel<int>(1);
    full.try_send(std::make_unique<int>(0));
    ready.try_send(1);
    auto p = std::make_unique<int>(5);
    auto r = csp::sync_wait(csp::select(full.send(std::move(p)), ready.recv()));
    CHECK(r.index() == 1);
    CHECK(p);
    CHECK(*p == 5);
}

// Go's TestSelectFairness: with two ready cases among four, each must be
// chosen about half the time; the bound gives a 1e-6 false-positive rate.
TEST_CASE("select chooses uniformly at random among ready cases") {
    constexpr int trials = 10000;
    auto c1 = csp::make_channel<int>(trials + 1), c2 = csp::make_channel<int>(trials + 1);
    auto c3 = csp::make_channel<int>(), c4 = csp::make_channel<int>();
    for (int i = 0; i < trials + 1; ++i) {
        c1.try_send(1);
        c2.try_send(2);
    }
    int cnt1 = 0, cnt2 = 0;
    for (int i = 0; i < trials; ++i) {
        auto r = csp::sync_wait(csp::select(c3.recv(), c4.recv(), c1.recv(), c2.recv()));
        REQUIRE((r.index() == 2 || r.index() == 3));
        (r.index() == 2 ? cnt1 : cnt2)++;
    }
    double ratio = double(cnt1) / trials;
    double deviation = std::abs(ratio - 0.5);
    INFO("cnt1=" << cnt1 << " cnt2=" << cnt2);
    CHECK(deviation <= 4.891676 * std::sqrt(0.25 / trials));
}

// Unbuffered channels: a case is ready when a counterpart waits (or the
// channel is closed). The select's first pass skips, without the lock, an
// unbuffered channel where it sees no waiter; these check that the skip never
// hides a ready case, parked senders and a closed channel alike.
TEST_CASE("select chooses uniformly among unbuffered channels with parked senders or closed") {
    constexpr int trials = 4000;
    csp::run_loop loop;
    auto idle1 = csp::make_channel<int>(), idle2 = csp::make_channel<int>();
    auto a = csp::make_channel<int>(), b = csp::make_channel<int>(), closed = csp::make_channel<int>();
    closed.close();
    auto sender = [](csp::channel<int> ch, int v) -> csp::task<> { co_await ch.send(v); };
    for (int i = 0; i < trials; ++i) {
        csp::spawn(loop, sender(a, 1));
        csp::spawn(loop, sender(b, 2));
    }
    loop.run_until_idle();  // every sender is parked on a or b
    int from_a = 0, from_b = 0, from_closed = 0, wrong = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        for (int i = 0; i < trials; ++i) {
            auto r = co_await csp::select(idle1.recv(), a.recv(), idle2.recv(), b.recv(), closed.recv());
            switch (r.index()) {
            case 1: from_a += r.get<1>() == 1; break;
            case 3: from_b += r.get<3>() == 2; break;
            case 4: from_closed += !r.get<4>(); break;
            default: ++wrong;
            }
        }
    });
    loop.run_until_idle();
    INFO("a=" << from_a << " b=" << from_b << " closed=" << from_closed);
    REQUIRE(wrong == 0);
    REQUIRE(from_a + from_b + from_closed == trials);
    // Each of the three ready cases has probability 1/3 per select; 5.3
    // standard deviations of a binomial(trials, 1/3) count.
    const double expected = trials / 3.0, bound = 5.3 * std::sqrt(trials * (1 / 3.0) * (2 / 3.0));
    CHECK(std::abs(from_a - expected) <= bound);
    CHECK(std::abs(from_b - expected) <= bound);
    CHECK(std::abs(from_closed - expected) <= bound);
    // The senders not received from stay parked; the loop destroys them.
}

TEST_CASE("select_biased chooses the first ready case in argument order") {
    auto a = csp::make_channel<int>(100), b = csp::make_channel<int>(100);
    for (int i = 0; i < 100; ++i) a.try_send(1), b.try_send(2);
    for (int i = 0; i < 100; ++i) CHECK(csp::sync_wait(csp::select_biased(a.recv(), b.recv())).index() == 0);
    CHECK(csp::sync_wait(csp::select_biased(a.recv(), b.recv())).index() == 1);
}

TEST_CASE("a receive case on a closed channel is ready and yields nullopt") {
    auto closed = csp::make_channel<int>(), open = csp::make_channel<int>();
    closed.close();
    auto r = csp::sync_wait(csp::select(open.recv(), closed.recv(), csp::default_case));
    REQUIRE(r.index() == 1);
    CHECK(r.get<1>() == std::nullopt);
}

TEST_CASE("a blocked select's receive case wakes with nullopt when its channel is closed") {
    csp::run_loop loop;
    auto a = csp::make_channel<int>(), b = csp::make_channel<int>();
    std::optional<std::size_t> fired;
    bool got_nullopt = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        auto r = co_await csp::select(a.recv(), b.recv());
        fired = r.index();
        got_nullopt = r.index() == 0 && !r.get<0>();
    });
    loop.run_until_idle();
    a.close();
    loop.run_until_idle();
    CHECK(fired == 0u);
    CHECK(got_nullopt);
}

TEST_CASE("a send case on a closed channel throws channel_closed when chosen") {
    auto closed = csp::make_channel<int>(1);
    closed.close();
    CHECK_THROWS_AS(csp::sync_wait(csp::select(closed.send(1), csp::default_case)), csp::channel_closed);
    // A blocked select's send case also throws when its channel closes.
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(), other = csp::make_channel<int>();
    bool threw = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        try {
            co_await csp::select(ch.send(1), other.recv());
        } catch (const csp::channel_closed&) {
            threw = true;
        }
    });
    loop.run_until_idle();
    ch.close();
    loop.run_until_idle();
    CHECK(threw);
}

TEST_CASE("a send case on a closed channel competes at random with other ready cases") {
    auto closed = csp::make_channel<int>(1), ready = csp::make_channel<int>(1000);
    closed.close();
    for (int i = 0; i < 1000; ++i) ready.try_send(int(i));
    int threw = 0, received = 0;
    for (int i = 0; i < 400; ++i) {
        try {
            auto r = csp::sync_wait(csp::select(closed.send(1), ready.recv()));
            CHECK(r.index() == 1);
            ++received;
        } catch (const csp::channel_closed&) {
            ++threw;
        }
    }
    CHECK(threw > 100);
    CHECK(received > 100);
}

TEST_CASE("nil channel cases never fire") {
    csp::channel<int> nil;
    auto ready = csp::make_channel<int>(100);
    for (int i = 0; i < 50; ++i) ready.try_send(int(i));
    for (int i = 0; i < 50; ++i)
        CHECK(csp::sync_wait(csp::select(nil.recv(), nil.send(1), ready.recv())).index() == 2);
    CHECK(csp::sync_wait(csp::select(nil.recv(), nil.send(1), csp::default_case)).index() == 2);
}

TEST_CASE("a select over only nil channels blocks forever") {
    csp::run_loop loop;
    csp::channel<int> nil;
    bool done = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await csp::select(nil.recv(), nil.send(2));
        done = true;
    });
    loop.run_until_idle();
    CHECK_FALSE(done);
    CHECK(loop.goroutines().size() == 1);
}

TEST_CASE("a select over an empty runtime-sized list blocks forever (an empty fixed select does not compile)") {
    // csp::select() static_asserts; the dynamic form with an empty list and
    // no default blocks forever, like Go's `select {}`.
    csp::run_loop loop;
    bool done = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        std::vector<csp::recv_awaiter<int>> none;
        co_await csp::select(none);
        done = true;
    });
    loop.run_until_idle();
    CHECK_FALSE(done);
}

TEST_CASE("the same channel may appear in several cases") {
    auto ch = csp::make_channel<int>(2);
    ch.try_send(1);
    auto r = csp::sync_wait(csp::select(ch.recv(), ch.recv(), ch.send(5)));
    CHECK(r.index() < 3);
    CHECK(ch.size() == (r.index() == 2 ? 2u : 0u));
}

TEST_CASE("a select sending and receiving on one unbuffered channel never matches itself") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    std::optional<std::size_t> fired;
    csp::spawn(loop, [&]() -> csp::task<> {
        auto r = co_await csp::select(ch.send(1), ch.recv());
        fired = r.index();
    });
    loop.run_until_idle();
    CHECK_FALSE(fired);  // it did not rendezvous with itself
    // A receiver takes the send case...
    auto got = ch.try_recv();
    CHECK(got.value == 1);
    loop.run_until_idle();
    CHECK(fired == 0u);
    // ... and, in a second select, a sender takes the receive case.
    fired.reset();
    csp::spawn(loop, [&]() -> csp::task<> {
        auto r = co_await csp::select(ch.send(1), ch.recv());
        fired = r.index();
    });
    loop.run_until_idle();
    CHECK(ch.try_send(9) == chan_status::ok);
    loop.run_until_idle();
    CHECK(fired == 1u);
}

TEST_CASE("two selects sending and receiving on one unbuffered channel complete each other") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    std::vector<std::size_t> fired;
    for (int g = 0; g < 2; ++g)
        csp::spawn(loop, [&, g]() -> csp::task<> {
            auto r = co_await csp::select(ch.send(g), ch.recv());
            fired.push_back(r.index());
        });
    loop.run_until_idle();
    REQUIRE(fired.size() == 2);
    CHECK(fired[0] + fired[1] == 1);  // one sent, the other received
}

// Go's TestPseudoRandomSend: a select blocked with two send cases on one
// channel must be taken through either case.
TEST_CASE("a receiver takes either of two blocked send cases on one channel") {
    int first = 0, second = 0;
    for (int i = 0; i < 200; ++i) {
        csp::run_loop loop;
        auto ch = csp::make_channel<int>();
        csp::spawn(loop, [&]() -> csp::task<> { co_await csp::select(ch.send(0), ch.send(1)); });
        loop.run_until_idle();
        auto r = ch.try_recv();
        REQUIRE(r);
        (*r.value == 0 ? first : second)++;
        loop.run_until_idle();
    }
    CHECK(first > 20);
    CHECK(second > 20);
}

TEST_CASE("sync_wait on a select works from plain threads racing goroutines") {
    csp_test::loop_thread lt;
    auto jobs = csp::make_channel<int>(), done = csp::make_channel<int>();
    std::atomic<long> sum{0};
    csp::wait_group wg;
    wg.add(1);
    csp::spawn(lt.loop(), [&]() -> csp::task<> {
        for (;;) {
            auto r = co_await csp::select(jobs.recv(), done.recv());
            if (r.index() == 1 || !r.get<0>()) break;
            sum += *r.get<0>();
        }
        wg.done();
    });
    std::thread other([&] {
        for (;;) {
            auto r = csp::sync_wait(csp::select(jobs.recv(), done.recv()));
            if (r.index() == 1 || !r.get<0>()) break;
            sum += *r.get<0>();
        }
    });
    for (int i = 1; i <= 1000; ++i) csp::sync_wait(jobs.send(i));
    done.close();
    other.join();
    csp::sync_wait(wg.wait());
    CHECK(sum == 500500);
}

TEST_CASE("select over a runtime-sized list of receive cases fans in") {
    std::vector<csp::channel<int>> chans;
    for (int i = 0; i < 10; ++i) chans.push_back(csp::make_channel<int>(1));
    chans[7].try_send(70);
    std::vector<csp::recv_awaiter<int>> cases;
    for (auto& c : chans) cases.push_back(c.recv());
    auto r = csp::sync_wait(csp::select(cases));
    CHECK(r.index() == 7);
    CHECK(r.value() == 70);
    cases.clear();
    for (auto& c : chans) cases.push_back(c.recv());
    auto d = csp::sync_wait(csp::select(cases, csp::default_case));
    CHECK(d.index() == 10);
    CHECK_THROWS_AS(d.value(), std::bad_variant_access);
}

TEST_CASE("a blocked runtime-sized select wakes on any of its channels") {
    csp::run_loop loop;
    std::vector<csp::channel<int>> chans;
    for (int i = 0; i < 100; ++i) chans.push_back(csp::make_channel<int>());
    std::optional<std::size_t> fired;
    int value = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        std::vector<csp::recv_awaiter<int>> cases;
        for (auto& c : chans) cases.push_back(c.recv());
        auto r = co_await csp::select(cases);
        fired = r.index();
        value = *r.value();
    });
    loop.run_until_idle();
    CHECK(chans[63].try_send(5) == chan_status::ok);
    loop.run_until_idle();
    CHECK(fired == 63u);
    CHECK(value == 5);
    for (auto& c : chans) CHECK(c.try_send(1) == chan_status::would_block);  // all disarmed
}

TEST_CASE("a runtime-sized select over send cases sends exactly one value") {
    std::vector<csp::channel<int>> chans;
    for (int i = 0; i < 5; ++i) chans.push_back(csp::make_channel<int>(1));
    std::vector<csp::send_awaiter<int>> cases;
    for (int i = 0; i < 5; ++i) cases.push_back(chans[i].send(i));
    auto r = csp::sync_wait(csp::select_biased(cases));
    CHECK(r.index() == 0);
    std::size_t total = 0;
    for (auto& c : chans) total += c.size();
    CHECK(total == 1);
}

TEST_CASE("a ready select allocates nothing") {
    if (!counting_allocations) WARN("allocation counting is off in this (AddressSanitizer) build");
    auto a = csp::make_channel<int>(1), b = csp::make_channel<int>(1), c = csp::make_channel<int>(1),
         d = csp::make_channel<int>(1);
    csp::run_loop loop;
    long fired = 0;
    long before = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        before = g_allocations.load();
        for (int i = 0; i < 10'000; ++i) {
            a.try_send(1);
            auto r = co_await csp::select(a.recv(), b.recv(), c.recv(), d.recv(), csp::default_case);
            fired += long(r.index() == 0);
        }
    });
    loop.run_until_idle();
    CHECK(g_allocations.load() == before);
    CHECK(fired == 10'000);
}

// Answers each ping through two selects that block: a receive select (ping
// or quit) until the client sends, then a send select (pong or quit) until the
// client receives. quit is never used: it makes each select a real choice.
csp::task<> select_echo_server(csp::channel<int> ping, csp::channel<int> pong, int rounds) {
    auto quit = csp::make_channel<int>(0);
    for (int i = 0; i < rounds; ++i) {
        auto in = co_await csp::select(ping.recv(), quit.recv());
        int v = *in.get<0>();
        co_await csp::select(pong.send(v), quit.recv());
    }
}

TEST_CASE("a select that blocks and is woken allocates nothing, on a run_loop") {
    if (!counting_allocations) WARN("allocation counting is off in this (AddressSanitizer) build");
    csp::run_loop loop;
    auto ping = csp::make_channel<int>(0), pong = csp::make_channel<int>(0);
    long sum = 0;
    csp::spawn(loop, select_echo_server(ping, pong, 10'000));
    csp::spawn(loop, [&]() -> csp::task<> {
        for (int i = 0; i < 10'000; ++i) {
            co_await ping.send(i);  // the server is blocked in its select: this wakes it
            sum += *co_await pong.recv();
        }
    });
    loop.run_one();  // the server blocks in its first select
    loop.run_one();  // the client hands it the first value and blocks on pong
    long before = g_allocations.load();
    loop.run_until_idle();
    CHECK(g_allocations.load() == before);
    CHECK(sum == 9'999L * 10'000 / 2);
}

TEST_CASE("a select that blocks and is woken on a pool allocates nothing in steady state") {
    if (!counting_allocations) WARN("allocation counting is off in this (AddressSanitizer) build");
    auto r = csp_test::pool_round_trips(select_echo_server, 1000, 10'000);
    CHECK(r.sum == 10'000L * (1000 + 10'999) / 2);
    if (counting_allocations) CHECK(r.allocations == 0);
}

TEST_CASE("a goroutine destroyed while blocked in select unlinks every case") {
    auto a = csp::make_channel<int>(), b = csp::make_channel<int>();
    {
        csp::run_loop loop;
        csp::spawn(loop, [&]() -> csp::task<> { co_await csp::select(a.recv(), b.send(1)); });
        loop.run_until_idle();
    }
    CHECK(a.try_send(1) == chan_status::would_block);
    CHECK(b.try_recv().status == chan_status::would_block);
}
