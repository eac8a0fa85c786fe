#include <stdexcept>
#include <thread>

#include "catch.hpp"
#include "helpers.hpp"

TEST_CASE("sync_wait returns a task's value") {
    auto t = []() -> csp::task<int> { co_return 5; };
    CHECK(csp::sync_wait(t()) == 5);
}

TEST_CASE("sync_wait rethrows a task's exception") {
    auto t = []() -> csp::task<> {
        throw std::out_of_range("x");
        co_return;
    };
    CHECK_THROWS_AS(csp::sync_wait(t()), std::out_of_range);
}

TEST_CASE("sync_wait blocks a plain thread until a goroutine on another thread sends") {
    csp_test::loop_thread lt;
    auto ch = csp::make_channel<int>();
    csp::spawn(lt.loop(), [ch]() mutable -> csp::task<> { co_await ch.send(17); });
    CHECK(csp::sync_wait(ch.recv()) == 17);
}

TEST_CASE("sync_wait works on send and recv awaiters directly between two threads") {
    auto ch = csp::make_channel<int>();
    std::thread t([&] {
        for (int i = 0; i < 1000; ++i) csp::sync_wait(ch.send(i));
        ch.close();
    });
    long sum = 0;
    while (auto v = csp::sync_wait(ch.recv())) sum += *v;
    t.join();
    CHECK(sum == 999L * 1000 / 2);
}

TEST_CASE("goroutines started inside sync_wait run on its loop and are destroyed when it returns") {
    csp_test::counted::live = 0;
    auto ch = csp::make_channel<int>();
    auto body = [](csp::channel<int> c) -> csp::task<int> {
        csp::go([](csp::channel<int> c2) -> csp::task<> { co_await c2.send(3); }, c);
        csp::go([](csp::channel<int> c2, csp_test::counted) -> csp::task<> { co_await c2.send(4); }, c,
                csp_test::counted(0));
        co_return *co_await c.recv();
    };
    CHECK(csp::sync_wait(body(ch)) == 3);
    CHECK(csp_test::counted::live == 0);  // the second sender was destroyed, blocked
    CHECK(ch.try_recv().status == csp::chan_status::would_block);
}
