#include <memory>
#include <stdexcept>
#include <string>

#include "catch.hpp"
#include "helpers.hpp"

namespace {

csp::task<int> answer() { co_return 42; }
csp::task<> nothing() { co_return; }
csp::task<int> fails() {
    throw std::runtime_error("boom");
    co_return 0;
}
csp::task<std::unique_ptr<int>> boxed(int v) { co_return std::make_unique<int>(v); }

struct no_default {
    explicit no_default(int v) : v(v) {}
    no_default(no_default&&) = default;
    int v;
};
csp::task<no_default> make_no_default(int v) { co_return no_default(v); }

csp::task<int> nested(int depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await nested(depth - 1);
}

csp::task<long> sum_of_sync_tasks(long n) {
    long s = 0;
    for (long i = 0; i < n; ++i) s += co_await answer();
    co_return s;
}

}  // namespace

TEST_CASE("a task does nothing until it is awaited") {
    bool ran = false;
    auto make = [&]() -> csp::task<> {
        ran = true;
        co_return;
    };
    auto t = make();
    CHECK_FALSE(ran);
    csp::sync_wait(std::move(t));
    CHECK(ran);
}

TEST_CASE("co_await on a task yields its value") {
    CHECK(csp::sync_wait(answer()) == 42);
    csp::sync_wait(nothing());
}

TEST_CASE("an exception in a task propagates to its awaiter") {
    auto outer = []() -> csp::task<std::string> {
        try {
            co_await fails();
        } catch (const std::runtime_error& e) {
            co_return std::string("caught ") + e.what();
        }
        co_return "not caught";
    };
    CHECK(csp::sync_wait(outer()) == "caught boom");
    CHECK_THROWS_AS(csp::sync_wait(fails()), std::runtime_error);
}

TEST_CASE("a task may return a move-only value") {
    auto p = csp::sync_wait(boxed(7));
    REQUIRE(p);
    CHECK(*p == 7);
}

TEST_CASE("a task may return a type without a default constructor") {
    CHECK(csp::sync_wait(make_no_default(3)).v == 3);
}

TEST_CASE("awaiting a task by lvalue gives a reference to its result") {
    auto outer = []() -> csp::task<int> {
        auto t = answer();
        int& r = co_await t;
        co_return r + 1;
    };
    CHECK(csp::sync_wait(outer()) == 43);
}

TEST_CASE("a destroyed task that never ran frees its frame") {
    csp_test::counted::live = 0;
    {
        auto t = [](csp_test::counted c) -> csp::task<long> { co_return c.value; }(csp_test::counted(5));
        CHECK(csp_test::counted::live >= 1);
    }
    CHECK(csp_test::counted::live == 0);
}

// Symmetric transfer: in builds where it compiles to tail calls (optimised
// GCC, any clang), a chain of a million nested co_awaits runs in constant
// stack. Other builds (GCC -O0/-O1 and under sanitizers) bound loops instead,
// and are only asked for a nesting depth that fits the stack.
TEST_CASE("a chain of a million nested co_awaits does not grow the stack") {
#if CSP_DETAIL_TAIL_CALLS
    constexpr int depth = 1'000'000;
#else
    constexpr int depth = 5'000;
#endif
    CHECK(csp::sync_wait(nested(depth)) == depth);
}

TEST_CASE("a long loop of tasks that complete without suspending does not grow the stack") {
    CHECK(csp::sync_wait(sum_of_sync_tasks(2'000'000)) == 42L * 2'000'000);
}

TEST_CASE("a long loop of channel operations that complete without suspending does not grow the stack") {
    auto ch = csp::make_channel<int>(1);
    auto body = [](csp::channel<int> c) -> csp::task<long> {
        long s = 0;
        for (int i = 0; i < 2'000'000; ++i) {
            co_await c.send(i);
            s += *co_await c.recv();
        }
        co_return s;
    };
    CHECK(csp::sync_wait(body(ch)) == 2'000'000L * 1'999'999 / 2);
}
