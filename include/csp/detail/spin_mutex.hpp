// csp/detail/spin_mutex.hpp - a small mutex for short critical sections.
//
// Channel critical sections are a few dozen instructions, so a waiter first
// spins (the holder is usually about to release), polling the word with
// exponentially growing pauses in between, for at most about 13 microseconds;
// then it sleeps on the lock word with a futex (std::atomic::wait), so a
// preempted holder never makes others burn a core for long.
//
// The lock word: 0 = free, 1 = held, 2 = held and someone may be asleep.
// This is the classic three-state futex mutex: unlock only pays for a wake-up
// call when the word says a sleeper may exist.
#pragma once

#include <atomic>
#include <thread>

namespace csp::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// Waits 2^round pauses, or 2^max_round once round reaches it: the wait
/// between two attempts on a contended line. Polling after every pause keeps
/// pulling the line away from the core that holds it, in the middle of its
/// work; doubling the wait lets that core finish with the line in its cache
/// (the exponential backoff of crossbeam's Backoff and of test-and-test-
/// and-set locks). A pause is about 25 ns on the machine of
/// docs/performance.md.
inline void backoff_pause(int round, int max_round) noexcept {
    const int pauses = 1 << (round < max_round ? round : max_round);
    for (int i = 0; i < pauses; ++i) cpu_relax();
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
        for (int round = 0; round < spin_rounds; ++round) {
            backoff_pause(round, max_backoff_round);
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

    // Ten rounds of backoff, 1 + 2 + ... + 64 + 3 * 128 = 511 pauses (about
    // 13 microseconds) before sleeping. Measured on W3 with unbuffered
    // channels (4 + 4 goroutines on two workers, the lock contended on
    // almost every operation), medians of five alternating runs, two
    // comparisons: a pause before every poll, 64 polls (the old lock): 242 ns a
    // message, against 74-83 with 8-12 rounds of this backoff; a pause
    // before every poll for 512 polls: 140 ns, against 50 with this one.
    static constexpr int spin_rounds = 10;
    static constexpr int max_backoff_round = 7;
    std::atomic<int> word_{0};
};

/// A lock for critical sections of a few instructions that never block
/// (the goroutine registry's lists). Unlocking is a release store, not the
/// atomic exchange spin_mutex needs to learn whether to wake a sleeper: no
/// waiter ever sleeps on this word. That saves one atomic read-modify-write
/// (a few nanoseconds each, scripts/count_rmw.py) per critical section. A
/// waiter backs off like spin_mutex's and then yields its thread to the OS,
/// so a holder that was preempted gets a core back.
class tiny_spin_lock {
public:
    void lock() noexcept {
        // acquire: the critical section may not begin before we own the word.
        if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]]
            return;
        lock_contended();
    }
    // release: the next owner, who acquires the word, sees our writes.
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    [[gnu::noinline]] void lock_contended() noexcept {
        for (int round = 0;; ++round) {
            if (round < 10) backoff_pause(round, 7);
            else std::this_thread::yield();
            // Poll with a plain load; exchange only when the lock looks free.
            if (!locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire))
                return;
        }
    }
    std::atomic<bool> locked_{false};
};

}  // namespace csp::detail
