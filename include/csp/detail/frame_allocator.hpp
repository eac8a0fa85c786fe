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
};

/// A free frame, threaded onto a list through its first bytes.
struct free_block {
    free_block* next;
};

/// A list of exactly batch_size free blocks (or fewer, for `active`).
struct block_list {
    free_block* head = nullptr;
    std::size_t count = 0;

    void push(free_block* b) noexcept {
        b->next = head;
        head = b;
        ++count;
    }
    free_block* pop() noexcept {
        free_block* b = head;
        head = b->next;
        --count;
        return b;
    }
    void free_all() noexcept {
        while (head) ::operator delete(pop());
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
        batch.free_all();
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
            b.active.free_all();  // a partial list: the depot only takes full batches
        }
    }

    void* allocate(std::size_t n) {
        std::size_t c = class_of(n);
        if (c >= classes) return ::operator new(n);
        bin& b = bins_[c];
        if (b.active.count == 0) refill(c, b);
        if (b.active.count) return b.active.pop();
        return ::operator new(block_size(c));
    }

    void deallocate(void* p, std::size_t n) noexcept {
        std::size_t c = class_of(n);
        if (c >= classes) {
            ::operator delete(p);
            return;
        }
        bin& b = bins_[c];
        if (b.active.count == batch_size) retire(c, b);
        b.active.push(static_cast<free_block*>(p));
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
    }

    static void retire(std::size_t c, bin& b) noexcept {
        if (b.spare.count) frame_depot::instance().give(c, b.spare);
        b.spare = b.active;
        b.active = {};
    }

    std::array<bin, classes> bins_{};
};

// Trivially destructible, so readable even after thread-local destructors ran.
inline thread_local bool frame_cache_gone = false;

struct frame_cache_holder {
    frame_cache cache;
    ~frame_cache_holder() { frame_cache_gone = true; }
};

/// This thread's cache, or null once it has been destroyed (thread exit).
[[gnu::noinline]] inline frame_cache* this_thread_frame_cache() noexcept {
    if (frame_cache_gone) return nullptr;
    thread_local frame_cache_holder holder;
    return &holder.cache;
}

inline void* allocate_frame(std::size_t n) {
    frame_cache* c = this_thread_frame_cache();
    return c ? c->allocate(n) : ::operator new(n);
}

inline void deallocate_frame(void* p, std::size_t n) noexcept {
    if (frame_cache* c = this_thread_frame_cache()) c->deallocate(p, n);
    else ::operator delete(p);
}

}  // namespace csp::detail
