#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

#include "counting_allocator.hpp"  // this program counts its heap allocations
#include "round_trips.hpp"

using csp::chan_status;

namespace {

csp::task<> send_all(csp::channel<int> ch, std::vector<int> values) {
    for (int v : values) co_await ch.send(v);
}

csp::task<> recv_into(csp::channel<int> ch, std::vector<int>& out, int n) {
    for (int i = 0; i < n; ++i) out.push_back(*co_await ch.recv());
}

}  // namespace

TEST_CASE("make_channel gives the requested capacity, and a default channel is nil") {
    CHECK(csp::make_channel<int>().capacity() == 0);
    CHECK(csp::make_channel<int>(5).capacity() == 5);
    csp::channel<int> nil;
    CHECK(nil.is_nil());
    CHECK(nil.capacity() == 0);
    CHECK(nil.size() == 0);
    CHECK_FALSE(nil.closed());
    CHECK_FALSE(csp::make_channel<int>().is_nil());
}

TEST_CASE("channels are copyable handles to one shared channel") {
    auto a = csp::make_channel<int>(1);
    auto b = a;
    CHECK(a == b);
    CHECK(a.try_send(1) == chan_status::ok);
    auto r = b.try_recv();
    CHECK(r.status == chan_status::ok);
    CHECK(*r.value == 1);
    CHECK_FALSE(a == csp::make_channel<int>(1));
}

TEST_CASE("an unbuffered send does not complete before a receiver has the value") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    std::vector<std::string> trace;
    csp::spawn(loop, [&]() -> csp::task<> {
        trace.push_back("send start");
        co_await ch.send(1);
        trace.push_back("send done");
    });
    loop.run_until_idle();
    CHECK(trace == std::vector<std::string>{"send start"});
    CHECK(ch.size() == 0);
    csp::spawn(loop, [&]() -> csp::task<> {
        auto v = co_await ch.recv();
        trace.push_back("received " + std::to_string(*v));
    });
    loop.run_until_idle();
    CHECK(trace == std::vector<std::string>{"send start", "received 1", "send done"});
}

TEST_CASE("an unbuffered try_send without a waiting receiver would block") {
    auto ch = csp::make_channel<int>();
    CHECK(ch.try_send(1) == chan_status::would_block);
    CHECK(ch.try_recv().status == chan_status::would_block);
}

TEST_CASE("a buffered send completes as soon as the value is in the buffer") {
    auto ch = csp::make_channel<int>(2);
    csp::sync_wait(ch.send(1));
    csp::sync_wait(ch.send(2));
    CHECK(ch.size() == 2);
    CHECK(ch.try_send(3) == chan_status::would_block);
}

TEST_CASE("a buffered channel is FIFO") {
    auto ch = csp::make_channel<int>(100);
    for (int i = 0; i < 100; ++i) REQUIRE(ch.try_send(int(i)) == chan_status::ok);
    for (int i = 0; i < 100; ++i) CHECK(*ch.try_recv().value == i);
}

TEST_CASE("a buffered channel with a blocked sender keeps FIFO order when a receiver frees a slot") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(2);
    csp::spawn(loop, send_all(ch, {1, 2, 3, 4}));
    loop.run_until_idle();  // 1 and 2 buffered, sender blocked on 3
    CHECK(ch.size() == 2);
    std::vector<int> got;
    for (int i = 0; i < 4; ++i) {
        got.push_back(*ch.try_recv().value);
        loop.run_until_idle();
    }
    CHECK(got == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("values buffered before close are still received in order, then nullopt") {
    auto ch = csp::make_channel<int>(3);
    for (int i = 1; i <= 3; ++i) ch.try_send(int(i));
    ch.close();
    CHECK(ch.closed());
    CHECK(ch.size() == 3);
    CHECK(csp::sync_wait(ch.recv()) == 1);
    CHECK(ch.try_recv().value == 2);
    CHECK(csp::sync_wait(ch.recv()) == 3);
    CHECK(csp::sync_wait(ch.recv()) == std::nullopt);
    auto r = ch.try_recv();
    CHECK(r.status == chan_status::closed);
    CHECK_FALSE(r.value);
}

TEST_CASE("close wakes every blocked receiver with nullopt") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    int woken_with_nullopt = 0;
    for (int i = 0; i < 5; ++i)
        csp::spawn(loop, [&]() -> csp::task<> {
            if (!co_await ch.recv()) ++woken_with_nullopt;
        });
    loop.run_until_idle();
    CHECK(woken_with_nullopt == 0);
    ch.close();
    loop.run_until_idle();
    CHECK(woken_with_nullopt == 5);
}

TEST_CASE("close wakes every blocked sender with channel_closed") {
    csp::run_loop loop;
    for (std::size_t cap : {0u, 1u}) {
        auto ch = csp::make_channel<int>(cap);
        if (cap) ch.try_send(0);
        int threw = 0;
        for (int i = 0; i < 4; ++i)
            csp::spawn(loop, [&]() -> csp::task<> {
                try {
                    co_await ch.send(1);
                } catch (const csp::channel_closed&) {
                    ++threw;
                }
            });
        loop.run_until_idle();
        ch.close();
        loop.run_until_idle();
        CHECK(threw == 4);
        CHECK(ch.size() == cap);  // the buffered value is still there
    }
}

TEST_CASE("send on a closed channel throws channel_closed") {
    auto ch = csp::make_channel<int>(1);
    ch.close();
    CHECK_THROWS_AS(csp::sync_wait(ch.send(1)), csp::channel_closed);
    CHECK_THROWS_AS(csp::sync_wait(ch.send(1)), std::logic_error);
}

TEST_CASE("close of a closed channel throws channel_closed") {
    auto ch = csp::make_channel<int>();
    ch.close();
    CHECK_THROWS_AS(ch.close(), csp::channel_closed);
}

TEST_CASE("close of a nil channel throws channel_closed") {
    csp::channel<int> nil;
    CHECK_THROWS_AS(nil.close(), csp::channel_closed);
}

TEST_CASE("send and recv on a nil channel block forever") {
    csp::run_loop loop;
    csp::channel<int> nil;
    bool sent = false, received = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await nil.send(1);
        sent = true;
    });
    csp::spawn(loop, [&]() -> csp::task<> {
        co_await nil.recv();
        received = true;
    });
    loop.run_until_idle();
    CHECK_FALSE(sent);
    CHECK_FALSE(received);
    CHECK(loop.goroutines().size() == 2);
}

TEST_CASE("non-blocking operations on a nil channel report would_block") {
    csp::channel<int> nil;
    CHECK(nil.try_send(1) == chan_status::would_block);
    CHECK(nil.try_recv().status == chan_status::would_block);
}

TEST_CASE("non-blocking operations report a closed channel instead of throwing") {
    auto ch = csp::make_channel<int>(1);
    ch.close();
    CHECK(ch.try_send(1) == chan_status::closed);
    CHECK(ch.try_recv().status == chan_status::closed);
    int lvalue = 4;
    CHECK(ch.try_send(lvalue) == chan_status::closed);
}

TEST_CASE("try_recv result converts to true only when it holds a value") {
    auto ch = csp::make_channel<int>(1);
    CHECK_FALSE(ch.try_recv());
    ch.try_send(2);
    auto r = ch.try_recv();
    CHECK(r);
    CHECK(*r.value == 2);
}

TEST_CASE("blocked receivers are served first-come first-served") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    std::vector<int> who;
    for (int id = 0; id < 5; ++id)
        csp::spawn(loop, [&who, &ch, id]() -> csp::task<> {
            auto v = co_await ch.recv();
            who.push_back(id * 100 + *v);
        });
    loop.run_until_idle();
    for (int i = 0; i < 5; ++i) REQUIRE(ch.try_send(int(i)) == chan_status::ok);
    loop.run_until_idle();
    CHECK(who == std::vector<int>{0, 101, 202, 303, 404});
}

TEST_CASE("blocked senders are served first-come first-served") {
    for (std::size_t cap : {0u, 2u}) {
        csp::run_loop loop;
        auto ch = csp::make_channel<int>(cap);
        for (int id = 0; id < 5; ++id) csp::spawn(loop, send_all(ch, {id}));
        loop.run_until_idle();
        std::vector<int> got;
        while (auto r = ch.try_recv()) {
            got.push_back(*r.value);
            loop.run_until_idle();
        }
        CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
    }
}

TEST_CASE("values from one sender arrive in the order they were sent") {
    for (std::size_t cap : {0u, 1u, 3u}) {
        csp::run_loop loop;
        auto ch = csp::make_channel<int>(cap);
        std::vector<int> a, b;
        for (int i = 0; i < 50; ++i) a.push_back(i), b.push_back(1000 + i);
        csp::spawn(loop, send_all(ch, a));
        csp::spawn(loop, send_all(ch, b));
        std::vector<int> got;
        csp::spawn(loop, recv_into(ch, got, 100));
        loop.run_until_idle();
        REQUIRE(got.size() == 100);
        int last_a = -1, last_b = 999;
        for (int v : got) {
            int& last = v < 1000 ? last_a : last_b;
            CHECK(v > last);
            last = v;
        }
    }
}

TEST_CASE("channels carry move-only values") {
    auto ch = csp::make_channel<std::unique_ptr<int>>(1);
    csp::sync_wait(ch.send(std::make_unique<int>(3)));
    auto v = csp::sync_wait(ch.recv());
    REQUIRE(v);
    CHECK(**v == 3);
}

TEST_CASE("channels carry values without a default constructor") {
    csp::run_loop loop;
    auto ch = csp::make_channel<csp_test::counted>();
    long got = 0;
    csp::spawn(loop, [&]() -> csp::task<> { got = (co_await ch.recv())->value; });
    csp::spawn(loop, [&]() -> csp::task<> { co_await ch.send(csp_test::counted(12)); });
    loop.run_until_idle();
    CHECK(got == 12);
}

TEST_CASE("channels carry large values") {
    using big = std::array<long, 512>;
    auto ch = csp::make_channel<big>(2);
    big b{};
    b[511] = 7;
    csp::sync_wait(ch.send(b));
    CHECK((*csp::sync_wait(ch.recv()))[511] == 7);
}

TEST_CASE("an lvalue send copies the value and leaves the original alone") {
    auto ch = csp::make_channel<std::string>(1);
    std::string s = "hello";
    csp::sync_wait(ch.send(s));
    CHECK(s == "hello");
    CHECK(*csp::sync_wait(ch.recv()) == "hello");
}

TEST_CASE("a try_send that would block or finds the channel closed does not move from its argument") {
    auto ch = csp::make_channel<std::unique_ptr<int>>();
    auto p = std::make_unique<int>(1);
    CHECK(ch.try_send(std::move(p)) == chan_status::would_block);
    CHECK(p);
    ch.close();
    CHECK(ch.try_send(std::move(p)) == chan_status::closed);
    CHECK(p);
}

TEST_CASE("a send that throws channel_closed does not move from its argument") {
    auto ch = csp::make_channel<std::unique_ptr<int>>();
    ch.close();
    auto p = std::make_unique<int>(1);
    CHECK_THROWS_AS(csp::sync_wait(ch.send(std::move(p))), csp::channel_closed);
    CHECK(p);
    // ... also when the close happens while the sender is blocked.
    csp::run_loop loop;
    auto ch2 = csp::make_channel<std::unique_ptr<int>>();
    auto q = std::make_unique<int>(2);
    bool threw = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        try {
            co_await ch2.send(std::move(q));
        } catch (const csp::channel_closed&) {
            threw = true;
        }
    });
    loop.run_until_idle();
    ch2.close();
    loop.run_until_idle();
    CHECK(threw);
    CHECK(q);
}

TEST_CASE("a channel destroyed with buffered values destroys each exactly once") {
    csp_test::counted::live = 0;
    {
        auto ch = csp::make_channel<csp_test::counted>(4);
        for (int i = 0; i < 3; ++i) REQUIRE(ch.try_send(csp_test::counted(i)) == chan_status::ok);
        CHECK(csp_test::counted::live == 3);
        auto one = ch.try_recv();
        CHECK(csp_test::counted::live == 3);  // two buffered + the one received
    }
    CHECK(csp_test::counted::live == 0);
}

TEST_CASE("size reports the number of buffered values") {
    auto ch = csp::make_channel<int>(3);
    CHECK(ch.size() == 0);
    ch.try_send(1);
    ch.try_send(2);
    CHECK(ch.size() == 2);
    ch.try_recv();
    CHECK(ch.size() == 1);
}

TEST_CASE("closed reports whether close was called") {
    auto ch = csp::make_channel<int>();
    CHECK_FALSE(ch.closed());
    ch.close();
    CHECK(ch.closed());
}

TEST_CASE("senders and receivers on different executors and threads share one channel") {
    csp_test::loop_thread a, b;
    auto ch = csp::make_channel<int>(0);
    csp::wait_group wg;
    std::atomic<long> sum{0};
    wg.add(2);
    csp::spawn(a.loop(), [&]() -> csp::task<> {
        for (int i = 0; i < 1000; ++i) co_await ch.send(1);
        wg.done();
    });
    csp::spawn(b.loop(), [&]() -> csp::task<> {
        for (int i = 0; i < 1000; ++i) sum += *co_await ch.recv();
        wg.done();
    });
    std::thread sender([&] {
        for (int i = 0; i < 1000; ++i) csp::sync_wait(ch.send(1));
    });
    for (int i = 0; i < 1000; ++i) sum += *csp::sync_wait(ch.recv());
    sender.join();
    csp::sync_wait(wg.wait());
    CHECK(sum == 2000);
}

TEST_CASE("channel operations allocate nothing, blocked or not") {
    if (!counting_allocations) WARN("allocation counting is off in this (AddressSanitizer) build");
    csp::run_loop loop;
    auto unbuffered = csp::make_channel<int>();
    auto buffered = csp::make_channel<int>(4);
    long sum = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        for (int i = 0; i < 10'000; ++i) {
            co_await unbuffered.send(i);
            co_await buffered.send(i);
        }
    });
    csp::spawn(loop, [&]() -> csp::task<> {
        for (int i = 0; i < 10'000; ++i) {
            sum += *co_await unbuffered.recv();
            sum += *co_await buffered.recv();
        }
    });
    loop.run_one();  // both goroutines started; the run queue has reached its size
    loop.run_one();
    long before = g_allocations.load();
    loop.run_until_idle();
    CHECK(g_allocations.load() == before);
    CHECK(sum == 2 * (9'999L * 10'000 / 2));
}

csp::task<> echo_server(csp::channel<int> ping, csp::channel<int> pong, int rounds) {
    for (int i = 0; i < rounds; ++i) co_await pong.send(*co_await ping.recv());
}

TEST_CASE("blocked-and-woken send and recv on a pool allocate nothing in steady state") {
    if (!counting_allocations) WARN("allocation counting is off in this (AddressSanitizer) build");
    auto r = csp_test::pool_round_trips(echo_server, 1000, 10'000);
    CHECK(r.sum == 10'000L * (1000 + 10'999) / 2);
    if (counting_allocations) CHECK(r.allocations == 0);
}

TEST_CASE("sync_wait on channel operations allocates nothing in steady state") {
    if (!counting_allocations) WARN("allocation counting is off in this (AddressSanitizer) build");
    auto ch = csp::make_channel<int>(1);
    for (int i = 0; i < 10; ++i) {  // warm up this thread's loop and frame cache
        csp::sync_wait(ch.send(i));
        (void)csp::sync_wait(ch.recv());
    }
    long before = g_allocations.load();
    for (int i = 0; i < 1000; ++i) {
        csp::sync_wait(ch.send(i));
        CHECK(csp::sync_wait(ch.recv()) == i);
    }
    CHECK(g_allocations.load() == before);
}
