// The epoll poller: readable/writable on raw non-blocking fds, on a run_loop
// that drives a poller (deterministic), on the pool, and from plain threads.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catch.hpp"
#include "helpers.hpp"

using namespace std::chrono_literals;

namespace {

/// A non-blocking pipe, closed (and unwatched) at the end of the test.
struct pipe_pair {
    int read_end = -1, write_end = -1;
    pipe_pair() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
        read_end = fds[0];
        write_end = fds[1];
    }
    ~pipe_pair() {
        ::close(read_end);
        ::close(write_end);
    }
};

/// A connected pair of non-blocking stream sockets.
struct socket_pair {
    int a = -1, b = -1;
    socket_pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        a = fds[0];
        b = fds[1];
    }
    ~socket_pair() {
        ::close(a);
        ::close(b);
    }
};

/// Reads one byte from `fd`, waiting for it without blocking the thread.
csp::task<char> read_byte(int fd) {
    for (;;) {
        char c;
        ssize_t n = ::read(fd, &c, 1);
        if (n == 1) co_return c;
        if (n < 0 && errno != EAGAIN) throw std::system_error(errno, std::system_category(), "read");
        if (n == 0) throw std::runtime_error("unexpected end of file");
        co_await csp::readable(fd);
    }
}

csp::task<> write_byte(int fd, char c) {
    for (;;) {
        ssize_t n = ::write(fd, &c, 1);
        if (n == 1) co_return;
        if (n < 0 && errno != EAGAIN) throw std::system_error(errno, std::system_category(), "write");
        co_await csp::writable(fd);
    }
}

}  // namespace

TEST_CASE("a goroutine waiting for a readable fd is woken by the data, on a loop that drives a poller") {
    csp::poller poller;
    csp::run_loop loop(poller);
    pipe_pair p;
    char got = 0;
    csp::spawn(loop, [&]() -> csp::task<> { got = co_await read_byte(p.read_end); });
    loop.run_until_idle();
    REQUIRE(got == 0);  // parked: nothing to read yet
    REQUIRE(loop.goroutines().size() == 1);
    REQUIRE(::write(p.write_end, "x", 1) == 1);
    loop.run_until_idle();  // polls, wakes the reader, runs it
    CHECK(got == 'x');
    CHECK(loop.goroutines().size() == 0);
    csp::spawn(loop, [&]() -> csp::task<> { csp::unwatch(p.read_end); co_return; });
    loop.run_until_idle();
}

TEST_CASE("readiness that arrives before the wait is latched, not lost") {
    csp::poller poller;
    csp::run_loop loop(poller);
    pipe_pair p;
    std::vector<char> got;
    csp::spawn(loop, [&]() -> csp::task<> {
        // Register, then let data arrive and be harvested by a poll while
        // nobody waits: the next wait must return at once.
        char c;
        REQUIRE(::read(p.read_end, &c, 1) == -1);
        auto wait = csp::readable(p.read_end);
        REQUIRE(::write(p.write_end, "ab", 2) == 2);
        poller.poll(0ns);  // harvests the edge; no waiter yet: latched
        co_await wait;
        got.push_back(co_await read_byte(p.read_end));
        got.push_back(co_await read_byte(p.read_end));
        csp::unwatch(p.read_end);
    });
    loop.run_until_idle();
    CHECK(got == std::vector<char>{'a', 'b'});
}

TEST_CASE("a goroutine blocked on a full socket resumes when the peer drains it") {
    csp::poller poller;
    csp::run_loop loop(poller);
    socket_pair s;
    std::size_t written = 0;
    bool done = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        char buf[4096] = {};
        // Fill the socket buffer, then write 64 KiB more, waiting as needed.
        for (;;) {
            ssize_t n = ::write(s.a, buf, sizeof buf);
            if (n < 0) break;
            written += std::size_t(n);
        }
        std::size_t target = written + 65536;
        while (written < target) {
            ssize_t n = ::write(s.a, buf, std::min(sizeof buf, target - written));
            if (n > 0) written += std::size_t(n);
            else co_await csp::writable(s.a);
        }
        done = true;
        csp::unwatch(s.a);
    });
    loop.run_until_idle();
    REQUIRE_FALSE(done);
    std::size_t drained = 0;
    char buf[8192];
    while (!done) {
        ssize_t n = ::read(s.b, buf, sizeof buf);
        if (n > 0) drained += std::size_t(n);
        loop.run_until_idle();
    }
    while (true) {
        ssize_t n = ::read(s.b, buf, sizeof buf);
        if (n <= 0) break;
        drained += std::size_t(n);
    }
    CHECK(written > 65536);
    CHECK(drained == written);  // every byte written arrived
}

TEST_CASE("unwatch wakes a goroutine waiting on the fd with operation_canceled") {
    csp::poller poller;
    csp::run_loop loop(poller);
    pipe_pair p;
    std::error_code error;
    csp::spawn(loop, [&]() -> csp::task<> {
        try {
            co_await csp::readable(p.read_end);
        } catch (const std::system_error& e) {
            error = e.code();
        }
    });
    loop.run_until_idle();
    csp::spawn(loop, [&]() -> csp::task<> {
        csp::unwatch(p.read_end);
        co_return;
    });
    loop.run_until_idle();
    CHECK(error == std::errc::operation_canceled);
}

TEST_CASE("readable is a select case: a timeout wins when no data comes, data wins otherwise") {
    csp::poller poller;
    csp::run_loop loop(poller);
    pipe_pair p;
    std::vector<std::size_t> winners;
    csp::spawn(loop, [&]() -> csp::task<> {
        auto r = co_await csp::select(csp::readable(p.read_end), csp::after(1ms));
        winners.push_back(r.index());
        REQUIRE(::write(p.write_end, "z", 1) == 1);
        auto r2 = co_await csp::select(csp::readable(p.read_end), csp::after(1h));
        winners.push_back(r2.index());
        CHECK(!r2.get<0>());  // no error
        csp::unwatch(p.read_end);
        loop.stop();
    });
    loop.run();
    CHECK(winners == std::vector<std::size_t>{1, 0});
}

TEST_CASE("run(poller) sleeps in the poller and wakes for fds, posts and stop") {
    csp::poller poller;
    csp::run_loop loop(poller);
    pipe_pair p;
    auto values = csp::make_channel<char>(8);
    csp::spawn(loop, [&]() -> csp::task<> {
        for (int i = 0; i < 3; ++i) co_await values.send(co_await read_byte(p.read_end));
        csp::unwatch(p.read_end);
    });
    std::thread driver([&] { loop.run(); });
    for (char c : {'1', '2', '3'}) {
        REQUIRE(::write(p.write_end, &c, 1) == 1);
        auto got = csp::sync_wait(values.recv());  // the loop woke from epoll_wait for the fd
        CHECK(got == c);
    }
    loop.stop();  // interrupts the poller's wait
    driver.join();
}

TEST_CASE("goroutines on the pool wait for fds without blocking workers") {
    constexpr int pairs = 16, rounds = 200;
    std::vector<std::unique_ptr<socket_pair>> sockets;
    for (int i = 0; i < pairs; ++i) sockets.push_back(std::make_unique<socket_pair>());
    long echoed = csp::run(
        {.threads = 2}, [&]() -> csp::task<long> {
            csp::wait_group wg;
            std::atomic<long> total{0};
            for (auto& sp : sockets) {
                int a = sp->a, b = sp->b;
                wg.add(2);
                csp::go([&wg, a]() -> csp::task<> {  // echo side
                    for (int r = 0; r < rounds; ++r) co_await write_byte(a, co_await read_byte(a));
                    csp::unwatch(a);
                    wg.done();
                });
                csp::go([&wg, &total, b]() -> csp::task<> {  // client side
                    for (int r = 0; r < rounds; ++r) {
                        char c = char('a' + r % 26);
                        co_await write_byte(b, c);
                        if (co_await read_byte(b) != c) throw std::logic_error("echo mismatch");
                        total.fetch_add(1);
                    }
                    csp::unwatch(b);
                    wg.done();
                });
            }
            co_await wg.wait();
            co_return total.load();
        });
    CHECK(echoed == long(pairs) * rounds);
}

TEST_CASE("sync_wait on readable from a plain thread uses the process-wide poller") {
    pipe_pair p;
    std::thread writer([&] { REQUIRE(::write(p.write_end, "q", 1) == 1); });
    char c = csp::sync_wait(read_byte(p.read_end));
    writer.join();
    CHECK(c == 'q');
    csp::unwatch(p.read_end);
}

TEST_CASE("a goroutine waiting for an fd is not a deadlock") {
    pipe_pair p;
    auto parked = csp::make_channel<int>(0);
    std::thread writer([&] {
        csp::sync_wait(parked.recv());
        // The interval is what is under test, not a way to wait for
        // something: the detector (grace 50 ms) must stay quiet for all of it
        // while the only goroutine waits on an fd. A slower machine only
        // shortens the window the detector gets; it cannot fail the test.
        std::this_thread::sleep_for(200ms);
        REQUIRE(::write(p.write_end, "k", 1) == 1);
    });
    char c = csp::run([&]() -> csp::task<char> {
        co_await parked.send(1);
        char got = co_await read_byte(p.read_end);
        csp::unwatch(p.read_end);
        co_return got;
    });
    writer.join();
    CHECK(c == 'k');
}

TEST_CASE("run_until_idle returns although an interrupt of the poller is pending") {
    csp::poller poller;
    csp::run_loop loop(poller);
    pipe_pair p;
    bool woke = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        (void)co_await read_byte(p.read_end);  // registers an fd, so the loop polls
        woke = true;
        csp::unwatch(p.read_end);
    });
    loop.run_until_idle();
    poller.interrupt();  // nobody drains it: only a blocking wait does
    loop.run_until_idle();
    CHECK_FALSE(woke);
    REQUIRE(::write(p.write_end, "w", 1) == 1);
    loop.run_until_idle();
    CHECK(woke);
}

TEST_CASE("a run_loop with a poller fires its goroutines' timers from the poller's wait") {
    csp::poller poller;
    csp::run_loop loop(poller);
    std::vector<int> order;
    for (int i : {3, 1, 2})
        csp::spawn(loop, [&, i]() -> csp::task<> {
            co_await csp::sleep_for(std::chrono::milliseconds(i));
            order.push_back(i);
            if (order.size() == 3) loop.stop();
        });
    loop.run();  // sleeps in epoll_wait until each deadline
    CHECK(order == std::vector<int>{1, 2, 3});
    CHECK(&csp::executor_ref(loop).timers() == &poller.timers());
}

TEST_CASE("a new earliest deadline cuts short a poller wait for a later one") {
    // A worker may sleep in the poller until the hour-long timer; the short
    // sleeps inserted later must interrupt it, or this test would take an hour.
    int rounds = csp::run({.threads = 2}, []() -> csp::task<int> {
        auto started = csp::make_channel<int>();
        csp::go([started]() -> csp::task<> {
            co_await started.send(1);
            co_await csp::sleep_for(1h);
        });
        co_await started.recv();
        int n = 0;
        for (; n < 20; ++n) co_await csp::sleep_for(1ms);
        co_return n;
    });
    CHECK(rounds == 20);
}

TEST_CASE("a sleeping goroutine wakes while another goroutine computes without yielding") {
    bool ok = csp::run({.threads = 2}, []() -> csp::task<bool> {
        std::atomic<bool> flag{false};
        auto done = csp::make_channel<int>(1);
        csp::go([&flag, done]() -> csp::task<> {  // never yields until the flag is set
            while (!flag.load()) {
            }
            co_await done.send(1);
        });
        csp::go([&flag]() -> csp::task<> {
            co_await csp::sleep_for(5ms);
            flag.store(true);
        });
        co_await done.recv();
        co_return true;
    });
    CHECK(ok);
}
