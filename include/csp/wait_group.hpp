// csp/wait_group.hpp - wait for a collection of goroutines to finish (Go's sync.WaitGroup).
//
// Invariant (under mu_): count_ >= 0, and waiters_ is empty whenever
// count_ == 0 (reaching zero wakes every waiter).
#pragma once

#include <coroutine>
#include <mutex>
#include <stdexcept>

#include "detail/spin_mutex.hpp"
#include "detail/waiter.hpp"
#include "executor.hpp"
#include "task.hpp"

namespace csp {

class wait_group {
public:
    wait_group() = default;
    wait_group(const wait_group&) = delete;
    wait_group& operator=(const wait_group&) = delete;

    /// Adds `delta` (may be negative) to the counter. Safe from any thread.
    /// Throws std::logic_error if the counter would become negative.
    void add(long delta = 1) {
        std::lock_guard lock(mu_);
        if (count_ + delta < 0) throw std::logic_error("csp::wait_group: negative counter");
        count_ += delta;
        if (count_ == 0) {
            while (detail::waiter* w = waiters_.claim_front()) detail::complete(*w, detail::wait_status::ok);
        }
    }

    /// Decrements the counter. Safe from any thread.
    void done() { add(-1); }

    /// The current counter value (a snapshot).
    long count() const {
        std::lock_guard lock(mu_);
        return count_;
    }

    class wait_awaiter;
    /// `co_await wg.wait()` suspends until the counter is zero.
    wait_awaiter wait() noexcept;

private:
    mutable detail::spin_mutex mu_;
    long count_ = 0;
    detail::wait_queue waiters_;
};

class wait_group::wait_awaiter {
public:
    explicit wait_awaiter(wait_group& wg) noexcept : wg_(&wg) {}
    wait_awaiter(const wait_awaiter&) = delete;
    wait_awaiter& operator=(const wait_awaiter&) = delete;
    ~wait_awaiter() {
        // Destroyed while still waiting (the goroutine was destroyed at
        // shutdown): unlink under the lock, which also waits out a wake-up
        // in progress.
        if (armed_) {
            std::lock_guard lock(wg_->mu_);
            wg_->waiters_.remove(waiter_);
        }
    }

    bool await_ready() {
        wg_->mu_.lock();
        if (wg_->count_ == 0) {
            wg_->mu_.unlock();
            return true;
        }
        return false;  // keep the lock: await_suspend enqueues under it
    }

    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        note_.park(detail::goroutine_of(h), kind, wg_);
        executor_ref ex = detail::current_executor();
        if (!ex) {
            wg_->mu_.unlock();
            detail::require_current_executor("co_await wait_group::wait()");
        }
        op_.fired.store(detail::blocked_op::not_fired, std::memory_order_relaxed);
        op_.handle = h;
        op_.executor = ex;
        waiter_.op = &op_;
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
