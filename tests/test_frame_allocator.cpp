// The per-thread frame caches and the depot that moves frames between
// threads in batches (detail/frame_allocator.hpp).
#include <csp/csp.hpp>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

using csp::detail::frame_cache;
using csp::detail::frame_sizes;

namespace {
constexpr std::size_t frame_size = 200;  // any size in the cached range
constexpr std::size_t batch = frame_sizes::batch_size;

std::vector<void*> allocate_n(frame_cache& c, std::size_t n) {
    std::vector<void*> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(c.allocate(frame_size));
    return out;
}
}  // namespace

TEST_CASE("a thread's cache reuses the frames it freed, newest first") {
    frame_cache c;
    std::vector<void*> a = allocate_n(c, 3);
    for (void* p : a) c.deallocate(p, frame_size);
    std::vector<void*> b = allocate_n(c, 3);
    REQUIRE(b == std::vector<void*>{a[2], a[1], a[0]});
    for (void* p : b) c.deallocate(p, frame_size);
}

TEST_CASE("frames freed on one cache reach another through the depot, a batch at a time") {
    frame_cache producer, consumer;
    // Enough blocks that the freeing cache fills its active list and its
    // spare and must hand one full batch to the depot.
    std::vector<void*> blocks = allocate_n(producer, 3 * batch);
    frame_cache freer;
    for (void* p : blocks) freer.deallocate(p, frame_size);
    // The consumer's cache is empty: its next `batch` allocations come from
    // the batch in the depot, that is, from the first `batch` frames freed.
    std::vector<void*> got = allocate_n(consumer, batch);
    std::set<void*> first_batch(blocks.begin(), blocks.begin() + batch);
    REQUIRE(std::set<void*>(got.begin(), got.end()) == first_batch);
    for (void* p : got) consumer.deallocate(p, frame_size);
}

TEST_CASE("a cache alternating allocation and free at a batch boundary does not go to the depot each time") {
    frame_cache c;
    std::vector<void*> blocks = allocate_n(c, batch + 1);
    for (void* p : blocks) c.deallocate(p, frame_size);  // active: 1, spare: a full batch
    // Allocate and free across the boundary many times: every block comes
    // from this cache's own lists (the depot would hand out other blocks).
    std::set<void*> own(blocks.begin(), blocks.end());
    for (int round = 0; round < 100; ++round) {
        std::vector<void*> got = allocate_n(c, 2);
        for (void* p : got) REQUIRE(own.count(p) == 1);
        for (void* p : got) c.deallocate(p, frame_size);
    }
    for (void* p : allocate_n(c, batch + 1)) REQUIRE(own.count(p) == 1);  // and they stay usable
    // (the test's blocks go back to malloc when `c` is destroyed: nothing leaks)
    for (void* p : blocks) c.deallocate(p, frame_size);
}

TEST_CASE("sizes beyond the cached classes go straight to malloc") {
    frame_cache c;
    std::size_t big = frame_sizes::block_size(frame_sizes::classes) + 1;
    void* p = c.allocate(big);
    REQUIRE(p != nullptr);
    c.deallocate(p, big);
}

TEST_CASE("stress: goroutines spawned on one worker and finished on another recycle frames without loss") {
    // Randomised over seeds: a producer spawns bursts of goroutines of
    // varying frame sizes that finish on whichever worker runs them; an
    // exact count checks that every one ran once. Run under the sanitizers,
    // this checks the depot's hand-off between threads.
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
        std::mt19937 rng(seed);
        long expected = 0;
        std::atomic<long> ran{0};
        csp::run(csp::run_options{.threads = 2}, [&]() -> csp::task<> {
            csp::wait_group wg;
            for (int burst = 0; burst < 20; ++burst) {
                int n = int(rng() % 300);
                wg.add(n);
                expected += n;
                for (int i = 0; i < n; ++i) {
                    if (rng() % 2)
                        csp::go([](csp::wait_group* w, std::atomic<long>* r) -> csp::task<> {
                            r->fetch_add(1, std::memory_order_relaxed);
                            w->done();
                            co_return;
                        }(&wg, &ran));
                    else
                        csp::go([](csp::wait_group* w, std::atomic<long>* r) -> csp::task<> {
                            char pad[256] = {};  // a bigger frame: another size class
                            pad[r->fetch_add(1, std::memory_order_relaxed) % 256] = 1;
                            co_await csp::yield();
                            w->done();
                            (void)pad;
                        }(&wg, &ran));
                }
                co_await wg.wait();
            }
        });
        REQUIRE(ran.load() == expected);
    }
}
