// The goroutine registry's slots (detail/goroutine_registry.hpp): they live
// in slabs that outlive goroutines, flow back to the threads that start
// goroutines, survive registries that die while a thread still caches their
// slots, and never show a dead goroutine's wait.
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

namespace {

// Starts `total` goroutines on `pool` from one of its workers, never more than
// `window` alive at once; each finishes at once. Returns when all finished.
void churn(csp::work_stealing_pool& pool, int total, int window) {
    csp::wait_group all;
    all.add(1);
    csp::spawn(pool, [&all, total, window]() -> csp::task<> {
        for (int started = 0; started < total;) {
            csp::wait_group round;
            const int n = std::min(window, total - started);
            round.add(n);
            for (int i = 0; i < n; ++i) csp::go([&round]() -> csp::task<> {
                round.done();
                co_return;
            });
            co_await round.wait();
            started += n;
        }
        all.done();
    });
    csp::sync_wait(all.wait());
}

}  // namespace

TEST_CASE("slots of goroutines that end on other workers come back: the slabs stay as small as the live set") {
    csp::work_stealing_pool pool(2);
    // A slab (256 slots) is added only when the spawning worker's cache and
    // the depot are empty: then every slot is held by a goroutine (at most
    // two rounds of 500: the last round's may still be ending), or sits in
    // another thread's cache (128 at most each: the other worker and the
    // main thread) or in the depot's loose list (under 64). So the slabs
    // never pass 1000 + 256 + 64 + 256 slots, rounded up to whole slabs,
    // however the threads interleave; without the return of slots to the
    // spawner it would be one slot per goroutine ever started.
    const std::size_t bound = 1792;
    churn(pool, 200'000, 500);
    CHECK(pool.goroutines().slot_capacity() <= bound);
    churn(pool, 200'000, 500);
    CHECK(pool.goroutines().slot_capacity() <= bound);
}

TEST_CASE("a thread whose cached slots belong to a destroyed registry starts goroutines elsewhere safely") {
    for (int round = 0; round < 3; ++round) {
        int ran = 0;
        {
            csp::run_loop first;  // this thread's cache now holds first's free slots
            for (int i = 0; i < 100; ++i) csp::spawn(first, [&ran]() -> csp::task<> {
                ++ran;
                co_return;
            });
            first.run_until_idle();
        }
        csp::run_loop second;  // its slabs may reuse first's memory; the cache must not
        for (int i = 0; i < 100; ++i) csp::spawn(second, [&ran]() -> csp::task<> {
            ++ran;
            co_return;
        });
        second.run_until_idle();
        CHECK(ran == 200);
        CHECK(second.goroutines().size() == 0);
    }
}

TEST_CASE("slots cached by a thread that exits go back to the registry") {
    csp::run_loop loop;
    std::thread helper([&] {
        for (int i = 0; i < 1000; ++i) csp::spawn(loop, []() -> csp::task<> { co_return; });
        loop.run_until_idle();
    });
    helper.join();
    const std::size_t capacity = loop.goroutines().slot_capacity();
    for (int i = 0; i < 1000; ++i) csp::spawn(loop, []() -> csp::task<> { co_return; });
    loop.run_until_idle();
    CHECK(loop.goroutines().slot_capacity() == capacity);  // the helper's slots were reused
    CHECK(loop.goroutines().size() == 0);
}

TEST_CASE("a slot reused after its goroutine was destroyed while parked does not show the old wait") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    csp::spawn(loop, [ch]() -> csp::task<> { co_await ch.recv(); });
    loop.run_until_idle();
    auto parked = loop.goroutines().snapshot();
    REQUIRE(parked.size() == 1);
    CHECK(parked[0].wait.what != nullptr);
    loop.reset();  // destroys the parked goroutine; its slot is the next one handed out
    csp::spawn(loop, []() -> csp::task<> { co_return; });
    auto fresh = loop.goroutines().snapshot();
    REQUIRE(fresh.size() == 1);
    CHECK(fresh[0].id > parked[0].id);
    CHECK(fresh[0].wait.what == nullptr);  // runnable, not blocked
    loop.run_until_idle();
}

TEST_CASE("a goroutine started by a destructor during shutdown is destroyed too") {
    struct starts_one_on_destruction {
        csp::executor_ref ex;
        ~starts_one_on_destruction() {
            csp::spawn(ex, []() -> csp::task<> { co_return; });
        }
    };
    auto loop = std::make_unique<csp::run_loop>();
    auto ch = csp::make_channel<int>();
    csp::spawn(*loop, [ch, ex = csp::executor_ref(*loop)]() -> csp::task<> {
        starts_one_on_destruction guard{ex};
        co_await ch.recv();  // never sent: destroyed at shutdown
    });
    loop->run_until_idle();
    REQUIRE(loop->goroutines().size() == 1);
    loop->goroutines().destroy_all();
    CHECK(loop->goroutines().size() == 0);  // the one the destructor started is gone too
    loop.reset();
}

TEST_CASE("registries, threads and goroutines come and go while slots are counted (randomized, for TSan)") {
    const unsigned seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    csp::work_stealing_pool pool(2);
    std::atomic<bool> done{false};
    std::atomic<long> counted{0};
    std::thread counter([&] {  // reads every slot while they change hands
        while (!done.load(std::memory_order_acquire)) counted += long(pool.goroutines().size());
    });
    std::atomic<int> leftover_loops{0};  // Catch's CHECK is not for other threads
    std::vector<std::thread> drivers;
    for (int t = 0; t < 2; ++t) {
        const int loops = 5 + int(rng() % 10);
        drivers.emplace_back([&pool, &leftover_loops, loops] {
            for (int l = 0; l < loops; ++l) {
                csp::run_loop loop;  // this thread's cache moves between the loop and the pool
                csp::wait_group wg;
                wg.add(50);
                for (int i = 0; i < 50; ++i) {
                    csp::spawn(loop, []() -> csp::task<> { co_return; });
                    csp::spawn(pool, [&wg]() -> csp::task<> {
                        csp::go([]() -> csp::task<> { co_return; });
                        wg.done();
                        co_return;
                    });
                }
                loop.run_until_idle();
                csp::sync_wait(wg.wait());
                if (loop.goroutines().size() != 0) ++leftover_loops;
            }
        });
    }
    for (auto& d : drivers) d.join();
    churn(pool, 20'000, 100 + int(rng() % 400));
    done.store(true, std::memory_order_release);
    counter.join();
    CHECK(leftover_loops.load() == 0);
}

TEST_CASE("any_alive stops at the first live goroutine and sees none once all ended") {
    csp::run_loop loop;
    CHECK_FALSE(loop.goroutines().any_alive());
    auto ch = csp::make_channel<int>();
    for (int i = 0; i < 600; ++i) csp::spawn(loop, []() -> csp::task<> { co_return; });  // spans slabs
    csp::spawn(loop, [ch]() -> csp::task<> { co_await ch.recv(); });
    loop.run_until_idle();
    CHECK(loop.goroutines().any_alive());
    CHECK(loop.goroutines().size() == 1);
    ch.close();
    loop.run_until_idle();
    CHECK_FALSE(loop.goroutines().any_alive());
    CHECK(loop.goroutines().size() == 0);
}
