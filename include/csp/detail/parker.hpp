// csp/detail/parker.hpp - put one thread to sleep until another wakes it.
//
// A one-token semaphore on a futex: unpark() leaves a token (waking the
// thread if it sleeps), park() consumes the token or sleeps until one
// arrives or the timeout passes. Because the token persists, an unpark that
// comes before the park is never lost. Spurious returns are allowed; callers
// re-check their condition.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace csp::detail {

inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const struct timespec* relative_timeout) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, relative_timeout,
              nullptr, 0);
}

inline void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

class parker {
public:
    /// Sleeps until unpark() (or a spurious wake-up). A token left by an
    /// earlier unpark() is consumed at once.
    void park() noexcept { park_impl(nullptr); }

    /// Like park(), but returns after at most `timeout`.
    void park_for(std::chrono::nanoseconds timeout) noexcept {
        if (timeout <= std::chrono::nanoseconds::zero()) {
            state_.exchange(empty, std::memory_order_acquire);  // consume a token, if any
            return;
        }
        struct timespec ts;
        ts.tv_sec = time_t(timeout.count() / 1'000'000'000);
        ts.tv_nsec = long(timeout.count() % 1'000'000'000);
        park_impl(&ts);
    }

    /// Wakes the parked thread, or makes its next park() return at once.
    void unpark() noexcept {
        // release: what the waker did before unpark is visible after park.
        if (state_.exchange(notified, std::memory_order_release) == sleeping) futex_wake_one(state_);
    }

private:
    void park_impl(const struct timespec* timeout) noexcept {
        // acquire: pairs with unpark's release.
        if (state_.exchange(empty, std::memory_order_acquire) == notified) return;
        std::uint32_t expected = empty;
        if (state_.compare_exchange_strong(expected, sleeping, std::memory_order_acquire)) {
            futex_wait(state_, sleeping, timeout);
        }
        state_.exchange(empty, std::memory_order_acquire);  // consume the token (or give up on timeout)
    }

    static constexpr std::uint32_t empty = 0, notified = 1, sleeping = 2;
    std::atomic<std::uint32_t> state_{empty};
};

}  // namespace csp::detail
