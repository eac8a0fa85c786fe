#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

#include "catch.hpp"
#include "helpers.hpp"

TEST_CASE("run returns the main task's value") {
    CHECK(csp::run([]() -> csp::task<int> { co_return 42; }) == 42);
}

TEST_CASE("run rethrows the main task's exception") {
    CHECK_THROWS_WITH(csp::run([]() -> csp::task<> {
                          throw std::runtime_error("main failed");
                          co_return;
                      }),
                      "main failed");
}

TEST_CASE("run accepts a task object and options") {
    auto main_task = []() -> csp::task<std::string> { co_return "hi"; };
    CHECK(csp::run(csp::run_options{.threads = 1}, main_task()) == "hi");
    CHECK(csp::run(main_task()) == "hi");
}

TEST_CASE("run may be called again and again in one process") {
    for (int i = 0; i < 20; ++i) CHECK(csp::run([i]() -> csp::task<int> { co_return i; }) == i);
}

TEST_CASE("run returns a move-only value") {
    auto p = csp::run([]() -> csp::task<std::unique_ptr<int>> { co_return std::make_unique<int>(3); });
    CHECK(*p == 3);
}

TEST_CASE("go inside run starts goroutines on the runtime's pool") {
    long sum = csp::run([]() -> csp::task<long> {
        auto ch = csp::make_channel<int>();
        csp::wait_group wg;
        wg.add(10);
        for (int i = 1; i <= 10; ++i)
            csp::go([&wg, ch, i]() mutable -> csp::task<> {
                co_await ch.send(i);
                wg.done();
            });
        long s = 0;
        for (int i = 0; i < 10; ++i) s += *co_await ch.recv();
        co_await wg.wait();
        co_return s;
    });
    CHECK(sum == 55);
}

TEST_CASE("run does not wait for other goroutines and frees the ones left blocked") {
    csp_test::counted::live = 0;
    csp::run([]() -> csp::task<> {
        auto never = csp::make_channel<int>();
        for (int i = 0; i < 100; ++i)
            csp::go([](csp::channel<int> c, csp_test::counted) -> csp::task<> { co_await c.recv(); }, never,
                    csp_test::counted(i));
        co_await csp::yield();
    });
    CHECK(csp_test::counted::live == 0);
}

TEST_CASE("an exception escaping a goroutine stops run, which rethrows it") {
    CHECK_THROWS_WITH(csp::run([]() -> csp::task<> {
                          csp::go([]() -> csp::task<> {
                              throw std::logic_error("goroutine panicked");
                              co_return;
                          });
                          co_await csp::make_channel<int>().recv();  // would block forever
                      }),
                      "goroutine panicked");
}

TEST_CASE("the run's current executor is the pool inside every goroutine") {
    bool ok = csp::run([]() -> csp::task<bool> {
        auto outer = csp::this_executor();
        auto ch = csp::make_channel<bool>(1);
        csp::go([outer, ch]() mutable -> csp::task<> { co_await ch.send(csp::this_executor() == outer); });
        co_return *co_await ch.recv();
    });
    CHECK(ok);
}

TEST_CASE("run throws deadlock_error when every goroutine is blocked, naming them") {
    try {
        csp::run([]() -> csp::task<> {
            auto a = csp::make_channel<int>();
            auto b = csp::make_channel<int>();
            csp::go([](csp::channel<int> c) -> csp::task<> { co_await c.recv(); }(b));
            co_await a.recv();  // nobody will ever send
        });
        FAIL("no deadlock_error");
    } catch (const csp::deadlock_error& e) {
        std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("all goroutines are asleep") != std::string::npos);
        CHECK(msg.find("receive from channel") != std::string::npos);
        CHECK(msg.find("test_runtime.cpp") != std::string::npos);
    }
}

TEST_CASE("a deadlock on a wait_group or a select is detected too") {
    CHECK_THROWS_AS(csp::run([]() -> csp::task<> {
                        csp::wait_group wg;
                        wg.add(1);
                        co_await wg.wait();
                    }),
                    csp::deadlock_error);
    CHECK_THROWS_AS(csp::run([]() -> csp::task<> {
                        auto a = csp::make_channel<int>();
                        co_await csp::select(a.recv(), a.send(1));  // cannot match itself
                    }),
                    csp::deadlock_error);
}

TEST_CASE("a goroutine sleeping on a timer is not a deadlock") {
    using namespace std::chrono_literals;
    int v = csp::run([]() -> csp::task<int> {
        auto ch = csp::make_channel<int>();
        csp::go([](csp::channel<int> c) -> csp::task<> {
            co_await csp::sleep_for(150ms);  // longer than the detector's grace period
            co_await c.send(4);
        }(ch));
        co_return *co_await ch.recv();
    });
    CHECK(v == 4);
}

TEST_CASE("a plain thread in sync_wait keeps the runtime from being called deadlocked") {
    auto ch = csp::make_channel<int>();
    long drivers_before = csp::detail::external_drivers.load();
    std::thread feeder([&] { csp::sync_wait(ch.send(5)); });
    // Start the runtime only once the thread is inside sync_wait.
    while (csp::detail::external_drivers.load() == drivers_before) std::this_thread::yield();
    int v = csp::run([&]() -> csp::task<int> { co_return *co_await ch.recv(); });
    feeder.join();
    CHECK(v == 5);
}

TEST_CASE("deadlock detection can be switched off") {
    auto ch = csp::make_channel<int>();
    std::thread feeder;
    int v = csp::run(csp::run_options{.detect_deadlocks = false}, [&]() -> csp::task<int> {
        // A plain thread that feeds the runtime with try_send, which the
        // detector cannot see. An unbuffered try_send succeeds only once the
        // receiver below is parked, so the thread synchronises on the channel
        // itself; with detection off, nothing else watches the idle runtime.
        feeder = std::thread([ch]() mutable {
            while (ch.try_send(9) != csp::chan_status::ok) std::this_thread::yield();
        });
        co_return *co_await ch.recv();
    }());
    feeder.join();
    CHECK(v == 9);
}
