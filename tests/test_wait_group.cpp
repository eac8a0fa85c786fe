#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

TEST_CASE("wait on a wait_group at zero does not block") {
    csp::wait_group wg;
    csp::sync_wait(wg.wait());
    SUCCEED();
}

TEST_CASE("wait_group wait resumes once every goroutine called done") {
    csp::run_loop loop;
    csp::wait_group wg;
    int finished = 0;
    bool waited = false;
    wg.add(3);
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await wg.wait();
        waited = finished == 3;
    });
    for (int i = 0; i < 3; ++i)
        csp::spawn(loop, [&]() -> csp::task<> {
            co_await csp::yield();
            ++finished;
            wg.done();
        });
    loop.run_until_idle();
    CHECK(waited);
    CHECK(wg.count() == 0);
}

TEST_CASE("wait_group add and done work from plain threads") {
    csp::wait_group wg;
    std::atomic<int> n{0};
    std::vector<std::thread> threads;
    wg.add(8);
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            ++n;
            wg.done();
        });
    csp::sync_wait(wg.wait());
    CHECK(n == 8);
    for (auto& t : threads) t.join();
}

TEST_CASE("wait_group wakes every waiter") {
    csp::run_loop loop;
    csp::wait_group wg;
    wg.add(1);
    int woken = 0;
    for (int i = 0; i < 5; ++i)
        csp::spawn(loop, [&]() -> csp::task<> {
            co_await wg.wait();
            ++woken;
        });
    loop.run_until_idle();
    CHECK(woken == 0);
    wg.done();
    loop.run_until_idle();
    CHECK(woken == 5);
}

TEST_CASE("a negative wait_group counter throws logic_error") {
    csp::wait_group wg;
    CHECK_THROWS_AS(wg.done(), std::logic_error);
    CHECK(wg.count() == 0);
}

namespace {
// fib(n) with a goroutine per call; each call waits for its two children on
// a wait_group in its own frame, which it destroys as soon as wait() returns,
// while the last child's done() may still be returning on another worker.
csp::task<> fib_tree(int n, long* out, csp::wait_group* parent) {
    if (n < 2) {
        *out = n;
    } else {
        long a = 0, b = 0;
        csp::wait_group children;
        children.add(2);
        csp::go(fib_tree(n - 1, &a, &children));
        csp::go(fib_tree(n - 2, &b, &children));
        co_await children.wait();
        *out = a + b;
    }
    parent->done();
}
}  // namespace

TEST_CASE("stress: wait_groups in the frames of a fork/join tree are destroyed as soon as wait returns") {
    // Under ASan this catches a done() that touches its wait_group after the
    // counter reached zero with nobody waiting (the waiter may be gone).
    for (int round = 0; round < 20; ++round) {
        long result = -1;
        csp::run(csp::run_options{.threads = 2}, [&]() -> csp::task<> {
            csp::wait_group done;
            done.add(1);
            csp::go(fib_tree(16, &result, &done));
            co_await done.wait();
        });
        REQUIRE(result == 987);
    }
}

TEST_CASE("a wait_group can be waited on again after its counter went back up") {
    csp::run_loop loop;
    csp::wait_group wg;
    auto next_round = csp::make_channel<int>(1);
    int rounds_seen = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        while (co_await next_round.recv()) {
            co_await wg.wait();
            ++rounds_seen;
        }
    });
    for (int round = 0; round < 3; ++round) {
        wg.add(2);
        REQUIRE(next_round.try_send(round) == csp::chan_status::ok);
        loop.run_until_idle();  // the waiter parks on this round
        REQUIRE(rounds_seen == round);
        wg.done();
        loop.run_until_idle();
        REQUIRE(rounds_seen == round);  // one done left
        wg.done();
        loop.run_until_idle();
        REQUIRE(rounds_seen == round + 1);
    }
    next_round.close();
    loop.run_until_idle();
}
