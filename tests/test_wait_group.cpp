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
