// The per-thread frame caches and the depot that moves frames between
// threads in batches (detail/frame_allocator.hpp).
#include <csp/csp.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
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

TEST_CASE("frames of up to 72 bytes get blocks that start on a cache line; larger ones do not need to") {
    // Each small size, through a cache (new blocks, then reused ones), and
    // through the path a thread without a cache takes (allocate_frame_slow
    // and deallocate_frame_slow after the thread's cache is gone are the
    // same functions: new_block and delete_block).
    for (std::size_t n : {std::size_t(8), std::size_t(40), std::size_t(56), std::size_t(64), std::size_t(72)}) {
        INFO("frame size " << n);
        const std::size_t c = frame_sizes::class_of(n);
        REQUIRE(frame_sizes::line_aligned(c));
        frame_cache cache;
        std::vector<void*> fresh;
        for (std::size_t i = 0; i < 2 * batch + 3; ++i) fresh.push_back(cache.allocate(n));
        for (void* p : fresh) REQUIRE(reinterpret_cast<std::uintptr_t>(p) % frame_sizes::line_size == 0);
        for (void* p : fresh) cache.deallocate(p, n);
        for (std::size_t i = 0; i < 2 * batch + 3; ++i) {
            void* p = cache.allocate(n);
            REQUIRE(reinterpret_cast<std::uintptr_t>(p) % frame_sizes::line_size == 0);
            cache.deallocate(p, n);
        }
        void* direct = frame_sizes::new_block(c);
        REQUIRE(reinterpret_cast<std::uintptr_t>(direct) % frame_sizes::line_size == 0);
        frame_sizes::delete_block(c, direct);
    }
    // The next class up keeps malloc's alignment (W6's blocks stay block + 8
    // bytes of RSS): only the classes up to 72 bytes are rounded to lines.
    REQUIRE_FALSE(frame_sizes::line_aligned(frame_sizes::class_of(73)));
    REQUIRE_FALSE(frame_sizes::line_aligned(frame_sizes::class_of(frame_size)));
}

TEST_CASE("a free list's look-ahead links point two and four blocks down it, whatever the order of pushes and pops") {
    // pop_prefetching_ahead fetches `fourth`, and prefetch_first follows
    // `next` and `second`: they must name the blocks 2 and 4 below (or be
    // null past the end) after any sequence of pushes and pops.
    using csp::detail::block_list;
    using csp::detail::free_block;
    std::vector<free_block> storage(64);
    std::vector<free_block*> free_ones;
    for (auto& b : storage) free_ones.push_back(&b);
    block_list list;
    std::mt19937 rng(7);
    auto below = [](free_block* b, int k) {
        for (int i = 0; i < k && b; ++i) b = b->next;
        return b;
    };
    for (int step = 0; step < 5000; ++step) {
        if (!free_ones.empty() && (list.count == 0 || rng() % 3 != 0)) {
            std::size_t i = rng() % free_ones.size();
            list.push(free_ones[i]);
            free_ones.erase(free_ones.begin() + std::ptrdiff_t(i));
        } else {
            free_ones.push_back(list.pop_prefetching_ahead(sizeof(free_block)));
        }
        std::size_t n = 0;
        for (free_block* b = list.head; b; b = b->next, ++n) {
            REQUIRE(b->second == below(b, 2));
            REQUIRE(b->fourth == below(b, 4));
        }
        REQUIRE(n == list.count);
        list.prefetch_first();  // follows the links: must not fault
    }
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
