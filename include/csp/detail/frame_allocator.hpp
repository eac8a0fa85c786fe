// csp/detail/frame_allocator.hpp - per-thread caches of coroutine frames.
//
// Goroutines are created on one worker and often finish on another, and
// glibc's malloc serialises such cross-thread frees on the allocating
// arena's lock. Task frames therefore come from a small per-thread cache of
// free blocks, one free list per size class up to about 1 KiB: a frame
// freed on any thread goes to that thread's cache and is reused there. The
// classes are 24 + 16k bytes, the sizes whose malloc chunks waste nothing
// (glibc adds an 8-byte header and rounds chunks to 16), so a cached frame
// costs exactly the memory that malloc would have given it.
// Each list keeps at most `max_cached` blocks and returns the rest to
// malloc, so a thread that only frees cannot hoard memory.
//
// The cache is thread-local but only reached through non-inlined functions,
// never from a coroutine body, so no compiler caches its address across a
// suspension point. After a thread's cache is destroyed (thread exit), frees
// on that thread go straight to the global allocator.
#pragma once

#include <array>
#include <cstddef>
#include <new>

namespace csp::detail {

class frame_cache {
public:
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t smallest = 24;
    static constexpr std::size_t classes = 64;  // blocks of 24 .. 1032 bytes
    static constexpr std::size_t max_cached = 1024;

    frame_cache() = default;
    frame_cache(const frame_cache&) = delete;
    frame_cache& operator=(const frame_cache&) = delete;
    ~frame_cache() {
        for (bin& b : bins_)
            while (block* x = b.head) {
                b.head = x->next;
                ::operator delete(x);
            }
    }

    void* allocate(std::size_t n) {
        std::size_t c = class_of(n);
        if (c >= classes) return ::operator new(n);
        bin& b = bins_[c];
        if (block* x = b.head) {
            b.head = x->next;
            --b.count;
            return x;
        }
        return ::operator new(smallest + c * granule);
    }

    void deallocate(void* p, std::size_t n) noexcept {
        std::size_t c = class_of(n);
        bin* b = c < classes ? &bins_[c] : nullptr;
        if (!b || b->count >= max_cached) {
            ::operator delete(p);
            return;
        }
        block* x = static_cast<block*>(p);
        x->next = b->head;
        b->head = x;
        ++b->count;
    }

private:
    struct block {
        block* next;
    };
    struct bin {
        block* head = nullptr;
        std::size_t count = 0;
    };
    static std::size_t class_of(std::size_t n) noexcept {
        return n <= smallest ? 0 : (n - smallest + granule - 1) / granule;
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
