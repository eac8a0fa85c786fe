// csp/detail/thread_cache.hpp - one object of type T per thread, reachable
// at any point of the thread's life, including its exit.
//
// The per-thread caches of coroutine frames (frame_allocator.hpp) and of
// goroutine slots (goroutine_registry.hpp) are reached this way:
//   * The fast path is one load of a plain thread_local pointer (slot()):
//     null before the thread's first use of the cache and again once the
//     cache is destroyed at thread exit. A pointer is trivially
//     destructible, so it stays readable while other thread-local
//     destructors run (and free frames), and it needs no initialisation
//     guard.
//   * get() creates the object on first use, and returns null once it is
//     destroyed: a thread-exit path then bypasses the cache.
//   * Both are functions that are never inlined: a coroutine body that read
//     the pointer itself might keep the thread's TLS address across a
//     suspension and, resumed on another worker, use the first thread's
//     cache.
// T's destructor runs at thread exit, after slot() is cleared, and hands
// what the cache holds back to wherever it came from.
#pragma once

namespace csp::detail {

template <class T>
class thread_cache {
public:
    /// This thread's object, or null (not created yet, or destroyed).
    [[gnu::noinline]] static T*& slot() noexcept {
        thread_local T* object = nullptr;
        return object;
    }

    /// This thread's object, created on first use; null once destroyed.
    [[gnu::noinline]] static T* get() noexcept {
        if (gone) return nullptr;
        thread_local holder h;
        return &h.object;
    }

private:
    struct holder {
        T object;
        holder() noexcept { slot() = &object; }
        ~holder() {  // then ~T, with slot() already null
            slot() = nullptr;
            gone = true;
        }
    };
    static inline thread_local bool gone = false;  // trivially destructible: readable at thread exit
};

}  // namespace csp::detail
