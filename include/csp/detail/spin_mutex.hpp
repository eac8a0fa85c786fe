// csp/detail/spin_mutex.hpp - a small mutex for short critical sections.
//
// Channel critical sections are a few dozen instructions, so a waiter first
// spins briefly (the holder is usually about to release), then sleeps on the
// lock word with a futex (std::atomic::wait), so a preempted holder never
// makes others burn a core.
//
// The lock word: 0 = free, 1 = held, 2 = held and someone may be asleep.
// This is the classic three-state futex mutex: unlock only pays for a wake-up
// call when the word says a sleeper may exist.
#pragma once

#include <atomic>

namespace csp::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

class spin_mutex {
public:
    void lock() noexcept {
        int expected = 0;
        // acquire: the critical section may not begin before we own the word.
        if (word_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
        lock_contended();
    }

    bool try_lock() noexcept {
        int expected = 0;
        return word_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
    }

    void unlock() noexcept {
        // release: everything written in the critical section is visible to
        // the next owner, who acquires the word.
        if (word_.exchange(0, std::memory_order_release) == 2) word_.notify_one();
    }

private:
    void lock_contended() noexcept {
        for (int i = 0; i < spin_limit; ++i) {
            cpu_relax();
            if (word_.load(std::memory_order_relaxed) == 0) {
                int expected = 0;
                if (word_.compare_exchange_weak(expected, 1, std::memory_order_acquire, std::memory_order_relaxed))
                    return;
            }
        }
        // Announce a sleeper by storing 2. If the word was 0 we own the lock
        // (conservatively marked 2, which costs at most one spurious wake).
        while (word_.exchange(2, std::memory_order_acquire) != 0) word_.wait(2, std::memory_order_relaxed);
    }

    static constexpr int spin_limit = 64;
    std::atomic<int> word_{0};
};

}  // namespace csp::detail
