// csp/timer.hpp - sleeping, timeouts and tickers.
//
//   co_await csp::sleep_for(10ms);
//   auto r = co_await csp::select(ch.recv(), csp::after(1s));   // r.index() == 1: timed out
//   csp::ticker t(100ms);  while (...) co_await t.channel().recv();
//
// Timers live in detail/timer_queue.hpp: a heap driven by one sleeping
// thread, so pending timers cost no CPU and a million of them are cheap.
// A sleeping coroutine resumes on its own executor.
//
// Each timer belongs to the timer queue of the executor current where it is
// made (executor_ref::timers(): the process-wide queue unless the executor
// has its own), and its deadline is read on that queue's clock, csp::now().
// Under csp::testing's executor that clock is virtual.
#pragma once

#include <chrono>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <thread>

#include "channel.hpp"
#include "detail/activity.hpp"
#include "detail/timer_queue.hpp"
#include "executor.hpp"
#include "task.hpp"

namespace csp {

using clock = std::chrono::steady_clock;

namespace detail {

/// The timer queue of the calling thread's executor, or the process-wide one.
inline timer_queue& current_timers() noexcept {
    executor_ref e = current_executor();
    return e ? e.timers() : timer_queue::instance();
}

}  // namespace detail

/// The current time on the clock of the calling goroutine's executor: the
/// steady clock, or virtual time under csp::testing. Deadlines for
/// sleep_until and at() are points on this clock.
inline clock::time_point now() noexcept { return detail::current_timers().now(); }

namespace detail {

inline constexpr wait_kind sleep_kind{"sleep"};

/// A one-shot timer that completes at `deadline`: the awaiter behind
/// sleep_for/sleep_until, and a case of select (csp::after).
class deadline_timer {
public:
    deadline_timer(clock::time_point deadline, timer_queue& queue) noexcept : queue_(&queue) {
        node_.deadline = deadline;
    }
    deadline_timer(deadline_timer&& other) noexcept : queue_(other.queue_) {
        if (other.node_.queued()) std::terminate();  // never moved once armed
        node_.deadline = other.node_.deadline;
    }
    deadline_timer& operator=(deadline_timer&&) = delete;
    ~deadline_timer() { case_disarm(); }

    clock::time_point deadline() const noexcept { return node_.deadline; }

    /// The timer as a receive-once channel (Go's `<-time.After(d)`):
    /// `co_await csp::after(d).recv()` or `select(..., timeout.recv())`.
    /// Completes at the deadline and yields it. Unlike Go's channel, a second
    /// receive completes at once rather than blocking forever.
    deadline_timer recv() const noexcept { return deadline_timer(node_.deadline, *queue_); }

    // ---- awaitable: co_await suspends until the deadline ----
    bool await_ready() const noexcept { return queue_->now() >= node_.deadline; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        note_.park(goroutine_of(h), sleep_kind, this);
        own_op_.fired.store(blocked_op::not_fired, std::memory_order_relaxed);
        own_op_.handle = h;
        own_op_.executor = require_current_executor("csp::sleep_for / csp::after");
        std::lock_guard lock(queue().mu);
        case_arm_locked(own_op_, 0);
    }
    /// The deadline (Go's time.After delivers the time; we deliver the
    /// deadline, which is never later than the wake-up).
    std::optional<clock::time_point> await_resume() noexcept {
        note_.unpark();
        return case_result();
    }

    // ---- case interface, used by csp::select ----
    using case_result_type = std::optional<clock::time_point>;
    spin_mutex* case_mutex() noexcept { return &queue().mu; }
    bool case_try_locked() noexcept { return queue_->now() >= node_.deadline; }
    void case_arm_locked(blocked_op& op, int index) {
        node_.op = &op;
        node_.case_index = index;
        node_.pending_counter = op.executor.pending_wakeups();
        queue().insert_locked(node_);
    }
    /// Cancels the timer at once (a timeout case that lost its select
    /// leaves nothing behind).
    void case_disarm() noexcept {
        if (!node_.op) return;  // never armed
        std::lock_guard lock(queue().mu);
        queue().remove_locked(node_);
    }
    void case_woken() noexcept {}
    case_result_type case_result() noexcept { return node_.deadline; }

private:
    timer_queue& queue() const noexcept { return *queue_; }

    timer_queue* queue_;
    timer_node node_;
    blocked_op own_op_;
    wait_note note_;
};

}  // namespace detail

/// `co_await csp::sleep_until(t)` suspends the calling coroutine until t
/// (a point on csp::now()'s clock).
inline detail::deadline_timer sleep_until(clock::time_point t) noexcept {
    return detail::deadline_timer(t, detail::current_timers());
}

/// `co_await csp::sleep_for(d)` suspends the calling coroutine for d.
template <class Rep, class Period>
detail::deadline_timer sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
    detail::timer_queue& q = detail::current_timers();
    return detail::deadline_timer(q.now() + std::chrono::ceil<clock::duration>(d), q);
}

/// A timeout, like Go's time.After: its clock starts now. Use it as a case
/// of csp::select (it fires with the deadline, as a receive case would with
/// a value), or await it directly.
template <class Rep, class Period>
detail::deadline_timer after(std::chrono::duration<Rep, Period> d) noexcept {
    return sleep_for(d);  // the same timer; only the spelling differs
}

/// A deadline as a select case: fires at t.
inline detail::deadline_timer at(clock::time_point t) noexcept { return sleep_until(t); }

/// Delivers the time on a channel every `period`, like Go's time.Ticker.
/// The channel holds one tick; a receiver too slow to take it misses the
/// ticks that come meanwhile (they are dropped, not queued).
class ticker {
public:
    template <class Rep, class Period>
    explicit ticker(std::chrono::duration<Rep, Period> period)
        : channel_(make_channel<clock::time_point>(1)), queue_(&detail::current_timers()) {
        auto p = std::chrono::ceil<clock::duration>(period);
        if (p <= clock::duration::zero()) throw std::invalid_argument("csp::ticker: period must be positive");
        node_.period = p;
        node_.deadline = queue_->now() + p;
        node_.context = this;
        detail::external_drivers.fetch_add(1, std::memory_order_seq_cst);  // ticks may wake anyone
        node_.on_tick = [](void* self, clock::time_point now) {
            (void)static_cast<ticker*>(self)->channel_.try_send(now);  // full: the tick is dropped
        };
        std::lock_guard lock(queue().mu);
        queue().insert_locked(node_);
    }
    ticker(const ticker&) = delete;
    ticker& operator=(const ticker&) = delete;
    ~ticker() { stop(); }

    /// The channel the ticks arrive on.
    csp::channel<clock::time_point>& channel() noexcept { return channel_; }

    /// Stops the ticker: no tick is sent after stop() returns.
    void stop() noexcept {
        {
            std::lock_guard lock(queue().mu);
            queue().remove_locked(node_);
        }
        while (node_.busy.load(std::memory_order_acquire)) std::this_thread::yield();  // a tick in flight
        if (std::exchange(counted_, false)) detail::external_drivers.fetch_sub(1, std::memory_order_seq_cst);
    }

private:
    detail::timer_queue& queue() const noexcept { return *queue_; }

    csp::channel<clock::time_point> channel_;
    detail::timer_queue* queue_;  // the queue of the executor that made it
    detail::timer_node node_;
    bool counted_ = true;  // among the external drivers until stopped
};

}  // namespace csp
