// A worker's run queue (detail/local_queue.hpp): newest-first for the owner,
// oldest-first for thieves, nothing lost or taken twice under races.
#include <csp/csp.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "catch.hpp"

using csp::detail::local_queue;

namespace {
// Handles that are never resumed: distinct fake addresses 1, 2, 3, ...
std::coroutine_handle<> token(std::uintptr_t i) { return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(i * 16)); }
std::uintptr_t id_of(std::coroutine_handle<> h) { return reinterpret_cast<std::uintptr_t>(h.address()) / 16; }
}  // namespace

TEST_CASE("the owner pops the newest entry; pop_oldest and thieves take the oldest") {
    local_queue q;
    for (std::uintptr_t i = 1; i <= 6; ++i) REQUIRE(q.push(token(i)));
    REQUIRE(q.size() == 6);
    REQUIRE(id_of(q.pop_newest()) == 6);
    REQUIRE(id_of(q.pop_oldest()) == 1);
    local_queue thief;
    // Half of the 4 left, rounded up: 2 and 3; one is returned, one queued.
    REQUIRE(id_of(q.steal_into(thief)) == 2);
    REQUIRE(thief.size() == 1);
    REQUIRE(id_of(thief.pop_newest()) == 3);
    REQUIRE(id_of(q.pop_newest()) == 5);
    REQUIRE(id_of(q.pop_newest()) == 4);
    REQUIRE(!q.pop_newest());
    REQUIRE(!q.pop_oldest());
    REQUIRE(!q.steal_into(thief));
}

TEST_CASE("push_oldest queues behind every entry: the owner reaches it last, a thief first") {
    local_queue q;
    for (std::uintptr_t i = 1; i <= 3; ++i) REQUIRE(q.push(token(i)));
    REQUIRE(q.push_oldest(token(7)));  // a yield: behind 1, 2, 3
    REQUIRE(q.size() == 4);
    REQUIRE(id_of(q.pop_newest()) == 3);
    REQUIRE(id_of(q.pop_newest()) == 2);
    REQUIRE(id_of(q.pop_newest()) == 1);
    REQUIRE(id_of(q.pop_newest()) == 7);
    REQUIRE(q.empty());

    for (std::uintptr_t i = 1; i <= 3; ++i) REQUIRE(q.push(token(i)));
    REQUIRE(q.push_oldest(token(8)));
    REQUIRE(q.push_oldest(token(9)));  // two yields: 9 behind 8
    local_queue thief;
    // Half of 5, rounded up: the three oldest, 9, 8 and 1.
    REQUIRE(id_of(q.steal_into(thief)) == 9);
    REQUIRE(id_of(thief.pop_newest()) == 1);
    REQUIRE(id_of(thief.pop_newest()) == 8);
    REQUIRE(id_of(q.pop_oldest()) == 2);
    REQUIRE(id_of(q.pop_oldest()) == 3);
    REQUIRE(q.empty());

    // Into an empty queue, and until full; a full queue refuses it.
    REQUIRE(q.push_oldest(token(1)));
    REQUIRE(id_of(q.pop_newest()) == 1);
    for (std::uintptr_t i = 1; i <= local_queue::capacity; ++i) REQUIRE(q.push_oldest(token(i)));
    REQUIRE(!q.push_oldest(token(9999)));
    REQUIRE(!q.push(token(9999)));
    for (std::uintptr_t i = 1; i <= local_queue::capacity; ++i) REQUIRE(id_of(q.pop_newest()) == i);
}

TEST_CASE("a full queue refuses a push, and pop_half moves the oldest half out") {
    local_queue q;
    for (std::uintptr_t i = 1; i <= local_queue::capacity; ++i) REQUIRE(q.push(token(i)));
    REQUIRE(!q.push(token(9999)));
    std::vector<std::uintptr_t> moved;
    REQUIRE(q.pop_half([&](std::coroutine_handle<> h) { moved.push_back(id_of(h)); }) == local_queue::capacity / 2);
    for (std::size_t i = 0; i < moved.size(); ++i) REQUIRE(moved[i] == i + 1);
    REQUIRE(q.size() == local_queue::capacity / 2);
    REQUIRE(q.push(token(9999)));
}

TEST_CASE("push_batch queues a batch in order with one commit, as far as there is room") {
    local_queue q;
    REQUIRE(q.push(token(1)));
    std::vector<std::coroutine_handle<>> batch;
    for (std::uintptr_t i = 2; i <= 5; ++i) batch.push_back(token(i));
    REQUIRE(q.push_batch(batch.data(), std::uint32_t(batch.size())) == 4);
    REQUIRE(q.size() == 5);
    REQUIRE(id_of(q.pop_oldest()) == 1);   // the batch went in behind the entry already there,
    REQUIRE(id_of(q.pop_oldest()) == 2);   // first handle oldest
    REQUIRE(id_of(q.pop_newest()) == 5);
    // Only what fits goes in: the first ones.
    for (std::uintptr_t i = 100; q.size() < local_queue::capacity - 2; ++i) REQUIRE(q.push(token(i)));
    std::vector<std::coroutine_handle<>> more{token(7), token(8), token(9)};
    REQUIRE(q.push_batch(more.data(), 3) == 2);
    REQUIRE(q.size() == local_queue::capacity);
    REQUIRE(id_of(q.pop_newest()) == 8);
    REQUIRE(q.push_batch(more.data(), 0) == 0);
}

TEST_CASE("the indices wrap around many times without losing order") {
    local_queue q;
    std::uintptr_t next = 1, oldest = 1;
    for (int round = 0; round < 2000; ++round) {  // 2000 * 100 pushes: the 16-bit counters wrap
        for (int i = 0; i < 100; ++i) REQUIRE(q.push(token(next++)));
        for (int i = 0; i < 100; ++i) REQUIRE(id_of(q.pop_oldest()) == oldest++);
    }
    REQUIRE(q.empty());
}

// The stress harness: two thieves steal from `owner_q` (and run what they
// stole) while `owner(owner_q, take)` drives it from this thread, queueing
// tokens 1..total; then the owner drains what is left. Counts how often each
// token was taken (no REQUIRE on the thieves' threads: Catch is not
// thread-safe).
struct stress_outcome {
    std::uintptr_t lost = 0, duplicated = 0;
    bool empty_at_end = false;
};

template <class Owner>
stress_outcome race_two_thieves(std::uintptr_t total, Owner&& owner) {
    local_queue owner_q;
    std::vector<std::atomic<int>> taken(total + 1);
    std::atomic<bool> done{false};
    auto take = [&](std::coroutine_handle<> h) {
        if (h) taken[id_of(h)].fetch_add(1, std::memory_order_relaxed);
    };
    std::vector<std::thread> thieves;
    for (int t = 0; t < 2; ++t)
        thieves.emplace_back([&] {
            local_queue mine;
            while (!done.load()) {
                take(owner_q.steal_into(mine));
                while (auto h = mine.pop_newest()) take(h);
            }
        });
    owner(owner_q, take);
    while (auto h = owner_q.pop_newest()) take(h);
    done = true;
    for (auto& t : thieves) t.join();
    stress_outcome out;
    for (std::uintptr_t i = 1; i <= total; ++i) {
        out.lost += taken[i].load() == 0;
        out.duplicated += taken[i].load() > 1;
    }
    out.empty_at_end = owner_q.empty();
    return out;
}

TEST_CASE("stress: an owner pushing and popping at both ends races thieves; every entry is taken exactly once") {
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
        constexpr std::uintptr_t total = 200000;
        stress_outcome out = race_two_thieves(total, [&](local_queue& owner_q, auto& take) {
            std::mt19937 rng(seed);
            for (std::uintptr_t i = 1; i <= total;) {
                switch (rng() % 6) {
                    case 0: take(owner_q.pop_newest()); break;
                    case 1: take(owner_q.pop_oldest()); break;
                    case 2:  // a yield: at the end the thieves take from
                        if (owner_q.push_oldest(token(i))) ++i;
                        else owner_q.pop_half(take);
                        break;
                    case 3: {  // a batch (a thief refilling its queue, a share of the global queue)
                        std::coroutine_handle<> batch[5];
                        std::uint32_t n = std::uint32_t(std::min<std::uintptr_t>(1 + rng() % 5, total + 1 - i));
                        for (std::uint32_t k = 0; k < n; ++k) batch[k] = token(i + k);
                        std::uint32_t queued = owner_q.push_batch(batch, n);
                        i += queued;
                        if (queued < n) owner_q.pop_half(take);
                        break;
                    }
                    default:
                        if (owner_q.push(token(i))) ++i;
                        else owner_q.pop_half(take);
                }
            }
        });
        INFO("seed " << seed);
        REQUIRE(out.lost == 0);
        REQUIRE(out.duplicated == 0);
    }
}

// The races at the last entries: the owner keeps its queue at one to three
// entries, pushing and popping the newest, while two thieves steal, so that
// a pop and a steal often go for the same entry (the pop lowers the tail
// and then commits with a CAS; a steal of the one entry commits first).
TEST_CASE("stress: pops of the newest entry race steals of the last ones; every entry is taken exactly once") {
    for (std::uint32_t seed = 1; seed <= 10; ++seed) {
        constexpr std::uintptr_t total = 200000;
        stress_outcome out = race_two_thieves(total, [&](local_queue& owner_q, auto& take) {
            std::mt19937 rng(seed);
            for (std::uintptr_t i = 1; i <= total;) {
                const std::uint32_t burst = 1 + rng() % 3;
                for (std::uint32_t k = 0; k < burst && i <= total; ++k)
                    if (owner_q.push(token(i))) ++i;
                const std::uint32_t pops = rng() % 4;
                for (std::uint32_t k = 0; k < pops; ++k) take(owner_q.pop_newest());
            }
        });
        INFO("seed " << seed);
        REQUIRE(out.lost == 0);
        REQUIRE(out.duplicated == 0);
        REQUIRE(out.empty_at_end);
    }
}
