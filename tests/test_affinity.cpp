// Contention affinity (detail/affinity.hpp, detail/affinity_queue.hpp and
// work_stealing_pool::requeue_by_affinity): what a lost race records, the
// queue that keeps goroutines on their channel's home worker, and that a
// goroutine kept there is never stranded.
#include <csp/csp.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "catch.hpp"

using csp::detail::affinity_queue;

namespace {
std::coroutine_handle<> token(std::uintptr_t i) { return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(i * 16)); }
std::uintptr_t id_of(std::coroutine_handle<> h) { return reinterpret_cast<std::uintptr_t>(h.address()) / 16; }

// Records `n` lost races on a channel whose home word is `home`, as a ring
// operation does.
void lose_races(std::atomic<void*>& home, int n) {
    for (int i = 0; i < n; ++i) csp::detail::note_contention(home);
}
}  // namespace

TEST_CASE("a lost race records nothing on a thread that is not a pool worker") {
    std::atomic<void*> home{nullptr};
    csp::detail::finish_resumption();  // a new resumption: no losses yet
    lose_races(home, 3);
    CHECK(home.load() == nullptr);
    CHECK(csp::detail::read_contention().losses == 0);
}

TEST_CASE("the first worker to lose a race on a channel becomes its home, and later losses keep it") {
    int worker_a = 0, worker_b = 0;  // stand-ins for two workers' identities
    std::atomic<void*> home{nullptr};
    std::thread([&] {
        csp::detail::set_affinity_self(&worker_a);
        csp::detail::finish_resumption();  // a new resumption: no losses yet
        lose_races(home, 2);
        auto seen = csp::detail::read_contention();
        CHECK(seen.losses == 2);
        CHECK(seen.home == &worker_a);
    }).join();
    std::thread([&] {
        csp::detail::set_affinity_self(&worker_b);
        csp::detail::finish_resumption();  // a new resumption: no losses yet
        lose_races(home, 5);
        auto seen = csp::detail::read_contention();
        CHECK(seen.losses == 5);
        CHECK(seen.home == &worker_a);  // not moved by another worker's losses
        csp::detail::finish_resumption();  // a new resumption forgets them
        CHECK(csp::detail::read_contention().losses == 0);
    }).join();
    CHECK(home.load() == &worker_a);
}

TEST_CASE("an affinity queue is first in, first out, and keeps each entry's quiet count") {
    affinity_queue q;
    for (std::uintptr_t i = 1; i <= 40; ++i) q.push({token(i), std::uint8_t(i % 7)});  // grows past 16
    CHECK(q.size() == 40);
    affinity_queue::entry e;
    for (std::uintptr_t i = 1; i <= 40; ++i) {
        REQUIRE(q.pop(e, std::int64_t(i) * 1000));
        CHECK(id_of(e.handle) == i);
        CHECK(e.quiet_turns == i % 7);
    }
    CHECK(!q.pop(e, 41'000));
    CHECK(q.size() == 0);
}

TEST_CASE("another worker takes half of an affinity queue only if its owner has not served it meanwhile") {
    affinity_queue q;
    for (std::uintptr_t i = 1; i <= 5; ++i) q.push({token(i)});
    std::vector<std::uintptr_t> taken;
    auto sink = [&](std::coroutine_handle<> h) { taken.push_back(id_of(h)); };

    std::uint64_t seen = q.served();
    affinity_queue::entry e;
    REQUIRE(q.pop(e, 1'000));  // the owner serves it after the thief looked
    CHECK(!q.take_unserved(seen, 100, sink));
    CHECK(taken.empty());

    seen = q.served();
    CHECK(q.take_unserved(seen, 100, sink));  // 4 left: half, the oldest
    CHECK(taken == std::vector<std::uintptr_t>{2, 3});
    CHECK(q.size() == 2);

    seen = q.served();
    taken.clear();
    CHECK(!q.take_unserved(seen, 0, sink));  // no room at the thief
    CHECK(q.take_unserved(seen, 1, sink));   // room for one
    CHECK(taken == std::vector<std::uintptr_t>{4});
    REQUIRE(q.pop(e, 2'000));
    CHECK(id_of(e.handle) == 5);
    CHECK(!q.take_unserved(q.served(), 100, sink));  // empty
}

TEST_CASE("pushes, pops and takes racing on an affinity queue lose and duplicate nothing") {
    affinity_queue q;
    constexpr std::uintptr_t per_pusher = 20000;
    constexpr int pushers = 2;
    std::atomic<int> pushing{pushers};
    std::vector<int> seen(pushers * per_pusher + 1, 0);
    std::atomic<std::uint64_t> total{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < pushers; ++p)
        threads.emplace_back([&, p] {
            for (std::uintptr_t i = 1; i <= per_pusher; ++i) q.push({token(p * per_pusher + i)});
            pushing.fetch_sub(1);
        });
    std::vector<std::uintptr_t> by_owner, by_thief;
    std::thread owner([&] {
        affinity_queue::entry e;
        std::int64_t clock = 0;  // the owner's own clock: a microsecond a turn
        while (pushing.load() != 0 || q.size() != 0)
            if (q.pop(e, clock += 1'000)) by_owner.push_back(id_of(e.handle));
    });
    std::thread thief([&] {
        while (pushing.load() != 0 || q.size() != 0)
            q.take_unserved(q.served(), 64, [&](std::coroutine_handle<> h) { by_thief.push_back(id_of(h)); });
    });
    for (auto& t : threads) t.join();
    owner.join();
    thief.join();
    for (auto id : by_owner) ++seen[id];
    for (auto id : by_thief) ++seen[id];
    for (std::size_t id = 1; id < seen.size(); ++id) {
        INFO("entry " << id);
        REQUIRE(seen[id] == 1);
    }
    total = by_owner.size() + by_thief.size();
    CHECK(total == pushers * per_pusher);
}

// A goroutine that yields after lost races goes to its channel's home
// worker's affinity queue, which other workers do not steal from while the
// home serves it. If the home worker then runs a goroutine that never
// yields, the other worker must still take the kept goroutine (after its
// search pause), or the program would hang here.
TEST_CASE("a goroutine kept on a worker by affinity is not stranded behind one that never yields") {
    std::atomic<bool> kept_ran{false};
    std::atomic<void*> home{nullptr};
    csp::wait_group done;
    done.add(2);
    csp::work_stealing_pool pool(2);  // after the locals its goroutines use
    csp::spawn(pool, [&]() -> csp::task<> {
        // Spawned next on this worker (its run-next slot): it runs here as
        // soon as we yield, and spins until we have run again.
        csp::go([&]() -> csp::task<> {
            while (!kept_ran.load()) csp::detail::cpu_relax();
            done.done();
            co_return;
        });
        lose_races(home, 8);  // home: this worker
        co_await csp::yield();  // into this worker's affinity queue
        kept_ran = true;
        done.done();
    });
    csp::sync_wait(done.wait());
    CHECK(kept_ran);
}

// The same, seen from outside: goroutines hammering one buffered channel
// from every worker (where affinity gathers them) with exact accounting.
TEST_CASE("producers and consumers gathered by affinity on a busy buffered channel lose nothing") {
    constexpr int producers = 4, consumers = 4;
    constexpr std::int64_t per_producer = 50000;
    auto ch = csp::make_channel<std::int64_t>(1024);
    std::atomic<std::int64_t> sum{0}, count{0};
    csp::wait_group sent, received;
    sent.add(producers);
    received.add(consumers);
    csp::work_stealing_pool pool(3);  // after the locals its goroutines use
    for (int c = 0; c < consumers; ++c)
        csp::spawn(pool, [&]() -> csp::task<> {
            std::int64_t s = 0, n = 0;
            while (auto v = co_await ch.recv()) {
                s += *v;
                ++n;
            }
            sum += s;
            count += n;
            received.done();
        });
    for (int p = 0; p < producers; ++p)
        csp::spawn(pool, [&, p]() -> csp::task<> {
            for (std::int64_t i = 1; i <= per_producer; ++i) co_await ch.send(p * per_producer + i);
            sent.done();
        });
    csp::sync_wait(sent.wait());
    ch.close();
    csp::sync_wait(received.wait());
    const std::int64_t n = producers * per_producer;
    CHECK(count == n);
    CHECK(sum == n * (n + 1) / 2);
}

TEST_CASE("another worker may take from an affinity queue whose owner runs long turns") {
    // The owner's pops are given their times: eight turns of 10 microseconds
    // (the running average, weight 1/8, reaches 10 * (1 - (7/8)^8) = 6.6),
    // then one of 300, which takes it to 6.6 + (300 - 6.6) / 8 = 43, over the
    // 30-microsecond line.
    affinity_queue q;
    for (std::uintptr_t i = 1; i <= 6; ++i) q.push({token(i)});
    affinity_queue::entry e;
    std::int64_t now = 1'000'000;
    REQUIRE(q.pop(e, now));
    for (int turn = 0; turn < 8; ++turn) q.push({token(100 + turn)});  // keeps entries queued
    for (int turn = 0; turn < 8; ++turn) REQUIRE(q.pop(e, now += 10'000));
    CHECK(!q.long_turns());
    REQUIRE(q.pop(e, now += 300'000));
    CHECK(q.long_turns());
    std::vector<std::uintptr_t> taken;
    const std::uint64_t stale = q.served() - 1;  // as if served during the pause
    CHECK(q.take_unserved(stale, 100, [&](std::coroutine_handle<> h) { taken.push_back(id_of(h)); }));
    CHECK(taken.size() == 2);  // half of the 4 left
    CHECK(q.size() == 2);
}
