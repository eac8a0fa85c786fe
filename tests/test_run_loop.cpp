#include <coroutine>
#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

static_assert(csp::executor<csp::run_loop>);

TEST_CASE("run_loop resumes posted coroutines in FIFO order") {
    csp::run_loop loop;
    std::vector<int> order;
    for (int i = 0; i < 5; ++i)
        csp::spawn(loop, [&order, i]() -> csp::task<> {
            order.push_back(i);
            co_return;
        });
    CHECK(loop.pending() == 5);
    CHECK(loop.run_until_idle() == 5);
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("run_one resumes exactly one coroutine and never blocks") {
    csp::run_loop loop;
    CHECK_FALSE(loop.run_one());
    int n = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        ++n;
        co_return;
    });
    csp::spawn(loop, [&]() -> csp::task<> {
        ++n;
        co_return;
    });
    CHECK(loop.run_one());
    CHECK(n == 1);
    CHECK(loop.run_one());
    CHECK(n == 2);
    CHECK_FALSE(loop.run_one());
}

TEST_CASE("run_until_idle runs work posted while it runs") {
    csp::run_loop loop;
    std::vector<int> order;
    csp::spawn(loop, [&]() -> csp::task<> {
        order.push_back(1);
        csp::go([&]() -> csp::task<> {
            order.push_back(3);
            co_return;
        });
        co_await csp::yield();
        order.push_back(4);
    });
    csp::spawn(loop, [&]() -> csp::task<> {
        order.push_back(2);
        co_return;
    });
    loop.run_until_idle();
    CHECK(order == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("run returns after stop and sleeps while idle") {
    csp::run_loop loop;
    std::thread driver([&] { loop.run(); });
    auto ch = csp::make_channel<int>();
    // A goroutine on the loop, fed from this thread: the loop thread sleeps
    // between values and wakes on each post.
    csp::wait_group wg;
    wg.add(1);
    long sum = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        while (auto v = co_await ch.recv()) sum += *v;
        wg.done();
    });
    for (int i = 1; i <= 100; ++i) csp::sync_wait(ch.send(i));
    ch.close();
    csp::sync_wait(wg.wait());
    loop.stop();
    driver.join();
    CHECK(sum == 5050);
}

TEST_CASE("stop before run makes run return at once") {
    csp::run_loop loop;
    loop.stop();
    loop.run();
    SUCCEED();
}

TEST_CASE("the current executor inside a goroutine is its run_loop") {
    csp::run_loop loop;
    bool same = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        same = csp::this_executor() == csp::executor_ref(loop);
        co_return;
    });
    loop.run_until_idle();
    CHECK(same);
}

TEST_CASE("this_executor outside any executor throws logic_error") {
    CHECK_THROWS_AS(csp::this_executor(), std::logic_error);
}

TEST_CASE("destroying a run_loop destroys its blocked goroutines") {
    csp_test::counted::live = 0;
    auto ch = csp::make_channel<int>();
    {
        csp::run_loop loop;
        for (int i = 0; i < 10; ++i)
            csp::spawn(loop, [](csp::channel<int> c, csp_test::counted) -> csp::task<> { co_await c.recv(); }, ch,
                       csp_test::counted(i));
        loop.run_until_idle();
        CHECK(loop.goroutines().size() == 10);
        CHECK(csp_test::counted::live >= 10);  // moved-from shells count too
    }
    CHECK(csp_test::counted::live == 0);
    // The destroyed receivers were unlinked from the channel.
    CHECK(ch.try_send(1) == csp::chan_status::would_block);
}

TEST_CASE("an exception escaping a goroutine is rethrown by the loop that runs it") {
    csp::run_loop loop;
    csp::spawn(loop, []() -> csp::task<> {
        throw std::runtime_error("goroutine failed");
        co_return;
    });
    CHECK_THROWS_WITH(loop.run_until_idle(), "goroutine failed");
    CHECK(loop.goroutines().size() == 0);
    CHECK_FALSE(loop.run_one());
}

namespace {
/// A minimal custom executor: a vector of handles run by hand.
struct manual_executor {
    std::vector<std::coroutine_handle<>> queue;
    void post(std::coroutine_handle<> h) { queue.push_back(h); }
    void drain() {
        while (!queue.empty()) {
            auto h = queue.front();
            queue.erase(queue.begin());
            csp::detail::current_executor_scope scope(*this);
            h.resume();
        }
    }
};
}  // namespace

TEST_CASE("a woken coroutine resumes on its own executor, not the waker's") {
    manual_executor mine;
    csp::run_loop other;
    auto ch = csp::make_channel<int>();
    bool received_on_mine = false;
    csp::spawn(mine, [&]() -> csp::task<> {
        co_await ch.recv();
        received_on_mine = csp::this_executor() == csp::executor_ref(mine);
    });
    mine.drain();  // parks on recv
    csp::spawn(other, [&]() -> csp::task<> { co_await ch.send(1); });
    other.run_until_idle();           // the send completes and wakes the receiver...
    CHECK_FALSE(received_on_mine);    // ...which did not run on the waker's loop
    REQUIRE(mine.queue.size() == 1);  // it was posted to its own executor
    mine.drain();
    CHECK(received_on_mine);
}

TEST_CASE("a goroutine on an always-ready channel yields now and then, so others on its executor run") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(1);
    bool stop = false;
    long spins = 0;
    csp::spawn(loop, [&]() -> csp::task<> {
        while (!stop) {  // never blocks: the channel always has room, then a value
            co_await ch.send(1);
            co_await ch.recv();
            ++spins;
        }
    });
    csp::spawn(loop, [&]() -> csp::task<> {
        stop = true;
        co_return;
    });
    loop.run_until_idle();  // would never return without the cooperative budget
    CHECK(stop);
    CHECK(spins > 0);
}

TEST_CASE("a goroutine whose selects are always ready yields now and then") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(1);
    bool stop = false;
    csp::spawn(loop, [&]() -> csp::task<> {
        while (!stop) co_await csp::select(ch.send(1), ch.recv());
    });
    csp::spawn(loop, [&]() -> csp::task<> {
        stop = true;
        co_return;
    });
    loop.run_until_idle();
    CHECK(stop);
}
