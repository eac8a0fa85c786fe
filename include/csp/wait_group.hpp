// csp/wait_group.hpp - wait for a collection of goroutines to finish (Go's sync.WaitGroup).
//
// The counter and the number of queued waiters share one atomic word (as in
// Go's sync.WaitGroup), so add() and done() cost one atomic add, and touch
// nothing else unless the counter reaches zero with waiters queued. That
// matters for more than speed: once the counter is zero, a waiter may return
// and destroy the wait_group, so a done() that finds no waiter must not touch
// it again.
//
// Invariants:
//   W1. A waiter counts itself in the word (a CAS that also checks the
//       counter is non-zero) while holding mu_, and queues itself before
//       releasing mu_. So once the counter is zero, the waiters counted in
//       the word are exactly those queued, or about to be, under mu_.
//   W2. The add() that brings the counter to zero and sees waiters counted
//       takes mu_, wakes every queued waiter and uncounts them. A waiter
//       cannot return before that (it is woken only then, and its
//       await_resume waits for the waker to leave mu_).
// As in Go, a wait_group may be reused only once the previous wait() calls
// have returned: an add() for a new round racing with the wake-up of the old
// one may wake a new-round waiter early.
#pragma once

#include <atomic>
#include <climits>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>

#include "detail/spin_mutex.hpp"
#include "detail/waiter.hpp"
#include "executor.hpp"
#include "task.hpp"

namespace csp {

class wait_group {
public:
    wait_group() noexcept {
        static_assert(offsetof(wait_group, state_) == line_bytes - 8 &&
                          sizeof(wait_group) == offsetof(wait_group, state_) + line_bytes,
                      "wait_group: line_bytes - 8 bytes of its own on each side of the counter word");
    }
    wait_group(const wait_group&) = delete;
    wait_group& operator=(const wait_group&) = delete;

    /// Adds `delta` (may be negative) to the counter. Safe from any thread.
    /// Throws std::logic_error if the counter would become negative (and
    /// leaves it unchanged) or leave the 32-bit range.
    ///
    /// Every goroutine's done() is this, so the rare paths (the throws, the
    /// wake-up) are out-of-line functions and the common one is the atomic
    /// add and two tests: g++ then compiles done() to a copy of add for
    /// delta -1 with the range check folded away (W5 on one worker: 23
    /// instructions a done() before, when the throws were inline).
    void add(long delta = 1) {
        if (delta > INT32_MAX || delta < -INT32_MAX) [[unlikely]] throw_delta_out_of_range();
        const std::uint64_t d = std::uint64_t(std::int64_t(delta)) << 32;  // adds delta to the high half
        // acq_rel: a done() publishes the finished goroutine's writes to the
        // waiter, which reads the word with acquire (the RMW chain carries
        // every earlier done()'s writes along).
        std::uint64_t now = state_.fetch_add(d, std::memory_order_acq_rel) + d;
        if (counter_of(now) < 0) [[unlikely]] undo_and_throw_negative(d);
        if (counter_of(now) == 0 && waiters_of(now) != 0) wake_waiters();  // W2
    }

    /// Decrements the counter. Safe from any thread.
    void done() { add(-1); }

    /// The current counter value (a snapshot).
    long count() const noexcept { return counter_of(state_.load(std::memory_order_acquire)); }

    class wait_awaiter;
    /// `co_await wg.wait()` suspends until the counter is zero.
    wait_awaiter wait() noexcept;

private:
    static std::int32_t counter_of(std::uint64_t s) noexcept { return std::int32_t(s >> 32); }
    static std::uint32_t waiters_of(std::uint64_t s) noexcept { return std::uint32_t(s); }

    [[noreturn, gnu::noinline, gnu::cold]] static void throw_delta_out_of_range() {
        throw std::logic_error("csp::wait_group: delta out of range");
    }
    /// The add of `d` took the counter below zero: takes it back, then throws.
    [[noreturn, gnu::noinline, gnu::cold]] void undo_and_throw_negative(std::uint64_t d) {
        state_.fetch_sub(d, std::memory_order_acq_rel);
        throw std::logic_error("csp::wait_group: negative counter");
    }

    [[gnu::noinline]] void wake_waiters() {
        std::lock_guard lock(mu_);
        std::uint64_t woken = 0;
        while (detail::waiter* w = waiters_.claim_front()) {
            detail::complete(*w, detail::wait_status::ok);
            ++woken;
        }
        state_.fetch_sub(woken, std::memory_order_acq_rel);
    }

    /// W1: counts the caller as a waiter unless the counter is zero. Under mu_.
    bool count_waiter_locked() noexcept {
        std::uint64_t s = state_.load(std::memory_order_acquire);
        do {
            if (counter_of(s) == 0) return false;
        } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire));
        return true;
    }
    void uncount_waiter_locked() noexcept { state_.fetch_sub(1, std::memory_order_acq_rel); }

    // The counter word is written by every done(), typically on other
    // cores than the waiter's. A wait_group usually lives in the waiting
    // goroutine's frame, next to the variables of its spawning loop, so the
    // word gets a cache line of its own: at least line_bytes - 8 bytes of
    // this object on each side of it. Otherwise each done() would pull the
    // spawner's loop counter away from it (W5: a third of csp::go's time).
    static constexpr std::size_t line_bytes = 64;
    detail::wait_queue waiters_;  // guarded by mu_
    mutable detail::spin_mutex mu_;
    [[maybe_unused]] char gap_before_[line_bytes - 8 - sizeof(detail::wait_queue) - sizeof(detail::spin_mutex)];  // never read
    std::atomic<std::uint64_t> state_{0};  // counter (signed, high half) | waiters counted (low half)
    [[maybe_unused]] char gap_after_[line_bytes - 8];
};

class wait_group::wait_awaiter {
public:
    explicit wait_awaiter(wait_group& wg) noexcept : wg_(&wg) {}
    wait_awaiter(const wait_awaiter&) = delete;
    wait_awaiter& operator=(const wait_awaiter&) = delete;
    ~wait_awaiter() {
        // Destroyed while still waiting (the goroutine was destroyed at
        // shutdown): unlink and uncount under the lock, which also waits out
        // a wake-up in progress.
        if (armed_) {
            std::lock_guard lock(wg_->mu_);
            if (waiter_.queued) {
                wg_->waiters_.remove(waiter_);
                wg_->uncount_waiter_locked();
            }
        }
    }

    bool await_ready() {
        if (wg_->count() == 0) return true;  // acquire: see the goroutines' writes
        wg_->mu_.lock();
        if (!wg_->count_waiter_locked()) {  // reached zero meanwhile
            wg_->mu_.unlock();
            return true;
        }
        return false;  // counted; keep the lock: await_suspend queues under it (W1)
    }

    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        note_.park(detail::goroutine_of(h), kind, wg_);
        executor_ref ex = detail::current_executor();
        if (!ex) {
            wg_->uncount_waiter_locked();
            wg_->mu_.unlock();
            detail::require_current_executor("co_await wait_group::wait()");
        }
        op_.fired.store(detail::blocked_op::not_fired, std::memory_order_relaxed);
        op_.handle = h;
        op_.executor = ex;
        waiter_.op = &op_;
        waiter_.case_index = detail::blocked_op::sole_case;  // claimed without a CAS (wait_queue::sole_waiter)
        armed_ = true;
        wg_->waiters_.push_back(waiter_);
        wg_->mu_.unlock();  // from here on the frame may already be resumed elsewhere
    }

    void await_resume() noexcept {
        note_.unpark();
        if (!armed_) return;
        armed_ = false;
        // The add() that woke us may still be inside its critical section
        // (waking further waiters). Wait until it leaves before returning:
        // the caller may destroy the wait_group as soon as wait() returns.
        wg_->mu_.lock();
        wg_->mu_.unlock();
    }

private:
    static constexpr detail::wait_kind kind{"wait_group wait"};

    wait_group* wg_;
    detail::blocked_op op_;
    detail::waiter waiter_;
    bool armed_ = false;
    detail::wait_note note_;
};

inline wait_group::wait_awaiter wait_group::wait() noexcept { return wait_awaiter(*this); }

}  // namespace csp
