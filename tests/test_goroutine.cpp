#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "catch.hpp"
#include "helpers.hpp"

TEST_CASE("go starts a goroutine on the caller's executor") {
    csp::run_loop loop;
    int ran = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        csp::go([&]() -> csp::task<> {
            ran = csp::this_executor() == csp::executor_ref(loop) ? 1 : -1;
            co_return;
        });
        co_return;
    });
    loop.run_until_idle();
    CHECK(ran == 1);
}

TEST_CASE("go outside an executor throws logic_error") {
    CHECK_THROWS_AS(csp::go([]() -> csp::task<> { co_return; }), std::logic_error);
}

TEST_CASE("go moves a capturing lambda and its arguments into the goroutine") {
    csp::run_loop loop;
    std::string result;
    {
        std::string captured = "captured";
        auto ptr = std::make_unique<int>(5);
        csp::spawn(loop, [&result, captured](std::unique_ptr<int> p, std::string s) -> csp::task<> {
            co_await csp::yield();  // the lambda temporary is long gone by now
            result = captured + " " + std::to_string(*p) + " " + s;
        }, std::move(ptr), std::string("arg"));
    }
    loop.run_until_idle();
    CHECK(result == "captured 5 arg");
}

TEST_CASE("spawn accepts a task and runs it as a goroutine") {
    csp::run_loop loop;
    int v = 0;
    auto make = [](int* out) -> csp::task<int> {
        *out = 9;
        co_return 1;
    };
    csp::spawn(loop, make(&v));
    loop.run_until_idle();
    CHECK(v == 9);
}

TEST_CASE("yield lets the other goroutines on the executor run") {
    csp::run_loop loop;
    std::string trace;
    for (char c : {'a', 'b'})
        csp::spawn(loop, [&trace, c]() -> csp::task<> {
            for (int i = 0; i < 3; ++i) {
                trace += c;
                co_await csp::yield();
            }
        });
    loop.run_until_idle();
    CHECK(trace == "ababab");
}

TEST_CASE("a million goroutines can be spawned and run") {
    csp::run_loop loop;
    long count = 0;
    constexpr long n = 1'000'000;
    for (long i = 0; i < n; ++i)
        csp::spawn(loop, [&count]() -> csp::task<> {
            ++count;
            co_return;
        });
    loop.run_until_idle();
    CHECK(count == n);
}

TEST_CASE("goroutines blocked forever are freed when their executor is destroyed") {
    csp_test::counted::live = 0;
    {
        csp::run_loop loop;
        csp::channel<int> nil;
        csp::spawn(loop, [](csp::channel<int> c, csp_test::counted) -> csp::task<> { co_await c.recv(); }, nil,
                   csp_test::counted(1));
        csp::spawn(loop, [](csp::channel<int> c, csp_test::counted) -> csp::task<> { co_await c.send(1); }, nil,
                   csp_test::counted(2));
        loop.run_until_idle();
        CHECK(loop.goroutines().size() == 2);
    }
    CHECK(csp_test::counted::live == 0);
}
