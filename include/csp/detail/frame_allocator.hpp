// csp/detail/frame_allocator.hpp - per-thread caches of coroutine frames,
// refilled and drained in batches through a process-wide depot.
//
// Goroutines are created on one worker and often finish on another: in a
// spawn-heavy program (a loop of csp::go, a recursive fork/join) one thread
// allocates frames all the time and another frees them. glibc's malloc
// serialises such cross-thread frees on the allocating arena's lock, and a
// plain per-thread cache does not help: the freeing thread's cache fills up
// while the allocating thread's stays empty. So, as in tcmalloc and in Go's
// mcache/mcentral, frames flow between threads in batches:
//
//   * Each thread keeps, per size class, an active list and at most one full
//     spare batch. Allocation and free touch only the active list: no lock,
//     no atomic.
//   * A free that finds the active list full (batch_size blocks) makes it the
//     spare; if there was a spare already, that one goes to the depot.
//   * An allocation that finds the active list empty takes the spare, else a
//     batch from the depot, else calls malloc.
//   * The depot keeps up to max_depot_batches batches per class (one mutex
//     per class, taken once per batch_size frames); beyond that a batch goes
//     back to malloc, so the memory kept for reuse is bounded.
//
// The two-list hysteresis means a thread that alternates allocation and free
// at a batch boundary does not go to the depot each time: after a trip to the
// depot it holds between one and two batches' worth of room either way.
//
// The classes are 24 + 16k bytes, the sizes whose malloc chunks waste nothing
// (glibc adds an 8-byte header and rounds chunks to 16), so a cached frame
// costs exactly the memory that malloc would have given it.
//
// The cache is thread-local but only reached through non-inlined functions,
// never from a coroutine body, so no compiler caches its address across a
// suspension point. A thread's cache hands its blocks to the depot when the
// thread exits; frees after that go straight to the global allocator. The
// depot itself is never destroyed (frames may be freed during static
// destruction); what it holds stays reachable, so leak checkers do not flag it.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <new>

#include "spin_mutex.hpp"
#include "thread_cache.hpp"

namespace csp::detail {

struct frame_sizes {
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t smallest = 24;
    static constexpr std::size_t classes = 64;  // blocks of 24 .. 1032 bytes
    static constexpr std::size_t batch_size = 64;
    static constexpr std::size_t max_depot_batches = 256;

    static std::size_t class_of(std::size_t n) noexcept {
        return n <= smallest ? 0 : (n - smallest + granule - 1) / granule;
    }
    static std::size_t block_size(std::size_t c) noexcept { return smallest + c * granule; }

    /// The blocks of the classes up to 72 bytes (frames of at most a cache
    /// line, such as an empty goroutine's 64) start on a line boundary, so
    /// that a frame of up to 64 bytes lies in one line instead of
    /// straddling two. Spawned on one core and run on another, a frame
    /// crosses between the cores twice per goroutine (and its block comes
    /// back through the free lists), so a straddling frame moves four lines
    /// where an aligned one moves two. W5 on 2 workers, a trial build with
    /// every block aligned: 0.94 of the time taken with 16-byte aligned
    /// blocks (15 paired rounds, quartiles 0.89-0.98).
    /// Larger classes stay 16-byte aligned: rounding them to lines would
    /// cost W6 (a million parked goroutines) 423 bytes each, against 249.
    static constexpr std::size_t line_size = 64;
    static bool line_aligned(std::size_t c) noexcept { return block_size(c) <= line_size + 8; }

    /// A new block of class c, and its return to the global allocator (every
    /// block of a class comes from new_block, so each is freed in kind).
    static void* new_block(std::size_t c) {
        return line_aligned(c) ? ::operator new(block_size(c), std::align_val_t(line_size))
                               : ::operator new(block_size(c));
    }
    static void delete_block(std::size_t c, void* p) noexcept {
        if (line_aligned(c)) ::operator delete(p, std::align_val_t(line_size));
        else ::operator delete(p);
    }
};

/// A free frame, threaded onto a list through its first bytes (the
/// smallest block, 24 bytes, holds exactly these three pointers).
struct free_block {
    free_block* next;
    free_block* second;  // next->next: the block two pops later
    free_block* fourth;  // the block four pops later
};

/// A list of exactly batch_size free blocks (or fewer, for `active`).
///
/// Each block also points two and four blocks down the list, so that an
/// allocation can start fetching the block it will hand out four
/// allocations later. The blocks of a list were mostly freed by another
/// worker (a goroutine spawned here ran and ended there), so their lines
/// sit in the other core's cache. Through `next` alone an allocation can
/// only see one block ahead, and reading each link is itself that miss.
/// The pointers are set by push, which reads them from the blocks just
/// below, which the pushing thread freed itself moments ago (hot lines),
/// and they stay right for as long as the block is on the list: a list
/// only changes at its head, and moves between a cache and the depot whole.
/// W5 on 2 workers: 0.96 of the time taken when fetching one block ahead
/// (seven sets of 15-31 paired rounds, each between 0.94 and 0.98).
struct block_list {
    free_block* head = nullptr;
    std::size_t count = 0;

    void push(free_block* b) noexcept {
        b->next = head;
        b->second = head ? head->next : nullptr;
        b->fourth = head && head->second ? head->second->next : nullptr;  // three below head
        head = b;
        ++count;
    }
    free_block* pop() noexcept {
        free_block* b = head;
        head = b->next;
        --count;
        return b;
    }
    /// pop(), and starts fetching, for writing, the block (of `bytes` bytes)
    /// that the fourth pop from now takes: a frame's constructor writes its
    /// first lines at once, a store miss per line, which the spawner's next
    /// atomic (the run queue push) would wait for. A prefetch never faults.
    free_block* pop_prefetching_ahead(std::size_t bytes) noexcept {
        free_block* b = pop();
        if (free_block* f = b->fourth) {
            __builtin_prefetch(f, 1);  // 1: we will write it (g++ emits prefetcht0 without -mprfchw; prefetchw measured the same)
            if (bytes > 64) __builtin_prefetch(reinterpret_cast<char*>(f) + 64, 1);  // the promise's start
        }
        return b;
    }
    /// Starts fetching the blocks the next pops take (a list just taken over
    /// from the spare or the depot, whose first blocks nobody fetched).
    void prefetch_first() const noexcept {
        if (!head) return;
        __builtin_prefetch(head, 1);
        __builtin_prefetch(head->next, 1);  // (waits for head's line; once a batch)
        __builtin_prefetch(head->second, 1);
        if (head->second) __builtin_prefetch(head->second->next, 1);
    }
    /// Returns every block (all of class c) to the global allocator.
    void free_all(std::size_t c) noexcept {
        while (head) frame_sizes::delete_block(c, pop());
    }
};

/// Full batches shared by all threads, per size class.
class frame_depot {
public:
    static frame_depot& instance() noexcept {
        static frame_depot* depot = new frame_depot;  // never destroyed: see the file comment
        return *depot;
    }

    /// Takes a batch of class c; empty if there is none.
    block_list take(std::size_t c) noexcept {
        shelf& s = shelves_[c];
        std::lock_guard lock(s.mu);
        if (s.batches == 0) return {};
        --s.batches;
        return s.stack[s.batches];
    }

    /// Keeps a full batch of class c, or frees it if the depot is full.
    void give(std::size_t c, block_list batch) noexcept {
        {
            shelf& s = shelves_[c];
            std::lock_guard lock(s.mu);
            if (s.batches < frame_sizes::max_depot_batches) {
                s.stack[s.batches++] = batch;
                return;
            }
        }
        batch.free_all(c);
    }

private:
    struct shelf {
        spin_mutex mu;
        std::size_t batches = 0;
        std::array<block_list, frame_sizes::max_depot_batches> stack{};
    };
    std::array<shelf, frame_sizes::classes> shelves_{};
};

class frame_cache : frame_sizes {
public:
    frame_cache() = default;
    frame_cache(const frame_cache&) = delete;
    frame_cache& operator=(const frame_cache&) = delete;
    ~frame_cache() {
        frame_depot& depot = frame_depot::instance();
        for (std::size_t c = 0; c < classes; ++c) {
            bin& b = bins_[c];
            if (b.spare.count) depot.give(c, b.spare);
            b.active.free_all(c);  // a partial list: the depot only takes full batches
        }
    }

    void* allocate(std::size_t n) {
        std::size_t c = class_of(n);
        if (c >= classes) return ::operator new(n);
        if (void* p = try_pop(c)) return p;
        bin& b = bins_[c];
        refill(c, b);
        if (b.active.count) return b.active.pop_prefetching_ahead(block_size(c));
        return new_block(c);
    }

    void deallocate(void* p, std::size_t n) noexcept {
        std::size_t c = class_of(n);
        if (c >= classes) {
            ::operator delete(p);
            return;
        }
        if (try_push(c, p)) return;
        bin& b = bins_[c];
        retire(c, b);
        b.active.push(static_cast<free_block*>(p));
    }

    /// The fast paths, inlined into every frame's operator new and delete:
    /// a block from (to) the active list of class c < classes, or null
    /// (false) when the list is empty (full) and allocate (deallocate) must
    /// move a batch.
    [[gnu::always_inline]] void* try_pop(std::size_t c) noexcept {
        bin& b = bins_[c];
        return b.active.count ? b.active.pop_prefetching_ahead(block_size(c)) : nullptr;
    }
    [[gnu::always_inline]] bool try_push(std::size_t c, void* p) noexcept {
        bin& b = bins_[c];
        if (b.active.count == batch_size) return false;
        b.active.push(static_cast<free_block*>(p));
        return true;
    }

private:
    struct bin {
        block_list active;
        block_list spare;  // empty or exactly batch_size blocks
    };

    static void refill(std::size_t c, bin& b) noexcept {
        if (b.spare.count) {
            b.active = b.spare;
            b.spare = {};
        } else {
            b.active = frame_depot::instance().take(c);
        }
        b.active.prefetch_first();
    }

    static void retire(std::size_t c, bin& b) noexcept {
        if (b.spare.count) frame_depot::instance().give(c, b.spare);
        b.spare = b.active;
        b.active = {};
    }

    std::array<bin, classes> bins_{};
};

// This thread's cache: see thread_cache.hpp for how it is reached (one
// load on the fast paths below) and why it lives until the thread's last
// thread-local destructor.
using this_thread_frames = thread_cache<frame_cache>;

// Without a cache (the thread is exiting), a frame of a class still gets a
// block of that class, as every frame of it must (see new_block).
[[gnu::noinline]] inline void* allocate_frame_slow(std::size_t n) {
    if (frame_cache* c = this_thread_frames::get()) return c->allocate(n);
    const std::size_t c = frame_sizes::class_of(n);
    return c < frame_sizes::classes ? frame_sizes::new_block(c) : ::operator new(n);
}

[[gnu::noinline]] inline void deallocate_frame_slow(void* p, std::size_t n) noexcept {
    if (frame_cache* c = this_thread_frames::get()) return c->deallocate(p, n);
    const std::size_t c = frame_sizes::class_of(n);
    if (c < frame_sizes::classes) frame_sizes::delete_block(c, p);
    else ::operator delete(p);
}

// The size class folds to a constant where n is one (a frame's size); both
// are forced inline into each coroutine's frame operators for that reason
// (as a call, a free computed the class at run time: about 30 instructions
// a free, W5 on one worker, callgrind).
[[gnu::always_inline]] inline void* allocate_frame(std::size_t n) {
    const std::size_t c = frame_sizes::class_of(n);
    if (c < frame_sizes::classes) [[likely]] {
        if (frame_cache* cache = this_thread_frames::slot()) [[likely]] {
            if (void* p = cache->try_pop(c)) [[likely]]
                return p;
        }
    }
    return allocate_frame_slow(n);
}

[[gnu::always_inline]] inline void deallocate_frame(void* p, std::size_t n) noexcept {
    const std::size_t c = frame_sizes::class_of(n);
    if (c < frame_sizes::classes) [[likely]] {
        if (frame_cache* cache = this_thread_frames::slot()) [[likely]] {
            if (cache->try_push(c, p)) [[likely]]
                return;
        }
    }
    deallocate_frame_slow(p, n);
}

}  // namespace csp::detail
