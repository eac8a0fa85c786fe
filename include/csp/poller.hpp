// csp/poller.hpp - non-blocking I/O readiness on epoll.
//
//   co_await csp::readable(fd);   // suspends this goroutine, never the worker
//   co_await csp::writable(fd);
//   auto r = co_await csp::select(csp::readable(fd), csp::after(1s));
//
// A `poller` owns one epoll instance and an eventfd that interrupts its wait.
// Every file descriptor is registered once, edge-triggered, for both
// directions, as an `io_source`. Edge-triggered epoll reports a change to
// "ready" once, so the source *latches* it: an event that finds no goroutine
// waiting sets `ready`, and the next wait consumes the latch instead of
// sleeping. Waits only begin after a read or write failed with EAGAIN, so
// the latch closes the window between that failure and the wait: an event
// in between is remembered, never lost. A latch may be stale (the data it
// announced was read already); the cost is one more EAGAIN and a real wait.
//
// Locking follows detail/waiter.hpp: every access to a source's waiters and
// latches happens under the source's lock, and the wake-up (posting the
// goroutine to its executor) happens with that lock held, so a goroutine
// destroyed while it waits never races the event that wakes it.
//
// Timers. A poller owns an externally driven timer queue
// (detail/timer_queue.hpp): a blocking wait sleeps no longer than the
// earliest deadline, and dispatch() fires the timers that are due. A new
// earliest deadline interrupts a wait in progress. The pool and a run_loop
// with a poller hand this queue to their goroutines (executor_ref::timers),
// so their sleeps and timeouts cost no thread hop either.
//
// Who waits in epoll_wait: the work-stealing pool's idle worker (Go's
// netpoller design: readiness is handled by the worker that will run the
// woken goroutine), a run_loop driven with run(poller&), or, for goroutines
// on executors without a poller, one process-wide thread.
//
// Sources are never freed while the poller lives: an event harvested by one
// thread may still name a source that another thread has just removed. A
// removed source goes to a free list and is reused; such a late event only
// sets a stale latch, which is harmless by the rule above.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "detail/goroutine_registry.hpp"
#include "detail/spin_mutex.hpp"
#include "detail/timer_queue.hpp"
#include "detail/waiter.hpp"
#include "executor.hpp"
#include "task.hpp"

namespace csp {

class poller;

namespace detail {

enum class io_direction : unsigned char { read = 0, write = 1 };

[[noreturn]] inline void throw_errno(int err, const char* what) {
    throw std::system_error(err, std::system_category(), what);
}

/// One registered file descriptor. All fields but `fd` and `owner` are
/// guarded by `mu`.
struct io_source {
    spin_mutex mu;
    int fd = -1;
    poller* owner = nullptr;
    /// Goroutines waiting for each direction (read, write); all are woken
    /// by an event, and each retries its system call.
    wait_queue waiters[2];
    /// An event came while nobody waited: the next wait returns at once.
    bool ready[2] = {false, false};
    /// Removed: waits fail with operation_canceled.
    bool closed = false;
    io_source* next_free = nullptr;  // guarded by the poller's lock
};

}  // namespace detail

/// An epoll instance with an eventfd to interrupt its wait. Thread-safe:
/// any thread may add and remove sources and wait on them; at most one
/// thread at a time should block in wait() with a non-zero timeout (the
/// pool and run_loop guarantee that for the pollers they drive).
class poller {
public:
    /// Room for the events one wait() harvests.
    struct event_batch {
        static constexpr int capacity = 128;
        epoll_event events[capacity];
        int count = 0;
    };

    poller() {
        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) detail::throw_errno(errno, "csp::poller: epoll_create1");
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) {
            int err = errno;
            ::close(epoll_fd_);
            detail::throw_errno(err, "csp::poller: eventfd");
        }
        // Level-triggered: an interrupt stays visible until the one
        // blocking waiter drains it, however many non-blocking polls run
        // meanwhile (they do not drain it).
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
        timers_.on_deadline_changed(&poller::deadline_changed, this);
    }

    poller(const poller&) = delete;
    poller& operator=(const poller&) = delete;

    /// Nothing may wait on or use a source of this poller any more.
    ~poller() {
        stop_thread();
        ::close(wake_fd_);
        ::close(epoll_fd_);
    }

    /// The poller for goroutines of executors that have none: one thread,
    /// started on first use, waits on it.
    static poller& process_wide() {
        static poller p;
        std::call_once(p.thread_once_, [] { p.thread_ = std::thread([] { p.run_thread(); }); });
        return p;
    }

    /// Registers `fd` (which must be non-blocking) for both directions,
    /// edge-triggered. Throws std::system_error.
    detail::io_source* add(int fd) {
        detail::io_source* s = allocate_source();
        {
            std::lock_guard lock(s->mu);
            s->fd = fd;
            s->ready[0] = s->ready[1] = false;
            s->closed = false;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = s;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
            int err = errno;
            std::lock_guard lock(sources_mu_);
            s->next_free = std::exchange(free_, s);
            detail::throw_errno(err, "csp::poller: epoll_ctl(ADD)");
        }
        sources_in_use_.fetch_add(1, std::memory_order_seq_cst);
        return s;
    }

    /// Unregisters the source: goroutines waiting on it wake with
    /// operation_canceled, and later waits fail at once. Call it while the
    /// fd is still open. Idempotent.
    void remove(detail::io_source* s) noexcept {
        int fd;
        {
            std::lock_guard lock(s->mu);
            if (s->closed) return;
            s->closed = true;
            fd = s->fd;
            for (auto& q : s->waiters) wake_all_locked(q, detail::wait_status::closed);
        }
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        sources_in_use_.fetch_sub(1, std::memory_order_seq_cst);
    }

    /// Returns a removed source for reuse, once nothing can wait on it any
    /// more (its fd is closed and no operation on it is in progress).
    void release(detail::io_source* s) noexcept {
        remove(s);
        std::lock_guard lock(sources_mu_);
        s->next_free = free_;
        free_ = s;
    }

    /// The source registered for `fd` by readable()/writable(), registering
    /// it on first use.
    detail::io_source* source_for(int fd) {
        if (fd < 0) detail::throw_errno(EBADF, "csp::readable/writable");
        std::lock_guard lock(table_mu_);
        if (std::size_t(fd) >= by_fd_.size()) by_fd_.resize(std::size_t(fd) + 1, nullptr);
        if (!by_fd_[std::size_t(fd)]) by_fd_[std::size_t(fd)] = add(fd);
        return by_fd_[std::size_t(fd)];
    }

    /// Forgets `fd` registered by readable()/writable() (before it is
    /// closed): waiters wake with operation_canceled. No-op if unknown.
    void forget(int fd) noexcept {
        detail::io_source* s = nullptr;
        {
            std::lock_guard lock(table_mu_);
            if (fd >= 0 && std::size_t(fd) < by_fd_.size()) s = std::exchange(by_fd_[std::size_t(fd)], nullptr);
        }
        if (s) release(s);
    }

    /// Waits up to `timeout` (negative: forever; zero: just look) for events
    /// and stores them in `batch`. Returns true if it was interrupted.
    bool wait(event_batch& batch, std::chrono::nanoseconds timeout) {
        const bool blocking = timeout != std::chrono::nanoseconds::zero();
        if (blocking) {
            // Announce the wait before reading the earliest deadline: an
            // insert either comes first (we read its deadline under the
            // queue's lock) or sees `blocking_` and interrupts us.
            blocking_.store(true, std::memory_order_seq_cst);
            timeout = until_next_timer(timeout);
        }
        int ms = timeout < std::chrono::nanoseconds::zero()
                     ? -1
                     : int(std::min<std::int64_t>(std::chrono::ceil<std::chrono::milliseconds>(timeout).count(),
                                                  1'000'000));
        int n;
        do n = ::epoll_wait(epoll_fd_, batch.events, event_batch::capacity, ms);
        while (n < 0 && errno == EINTR && ms == 0);
        if (blocking) blocking_.store(false, std::memory_order_relaxed);
        batch.count = n < 0 ? 0 : n;
        bool interrupted = false;
        for (int i = 0; i < batch.count; ++i) {
            if (batch.events[i].data.ptr) continue;
            interrupted = true;
            // Only a blocking waiter drains interrupts (see the constructor).
            if (ms != 0) {
                std::uint64_t value;
                [[maybe_unused]] ssize_t r = ::read(wake_fd_, &value, sizeof value);
            }
        }
        return interrupted;
    }

    /// Wakes the goroutines waiting for the events in `batch` (each goes to
    /// its own executor), latches the events nobody waited for, and fires
    /// the timers that are due. Returns the number of fd events and timers
    /// (interrupts not counted).
    int dispatch(const event_batch& batch) {
        int fired = timers_.maybe_pending() ? int(timers_.fire_due(timers_.now())) : 0;
        int fd_events = 0;
        for (int i = 0; i < batch.count; ++i) {
            auto* s = static_cast<detail::io_source*>(batch.events[i].data.ptr);
            if (!s) continue;
            ++fd_events;
            std::uint32_t ev = batch.events[i].events;
            std::lock_guard lock(s->mu);
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) signal_locked(*s, detail::io_direction::read);
            if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) signal_locked(*s, detail::io_direction::write);
        }
        return fd_events + fired;
    }

    /// wait() then dispatch(). Returns the number of fd events.
    int poll(std::chrono::nanoseconds timeout) {
        event_batch batch;
        wait(batch, timeout);
        return dispatch(batch);
    }

    /// Makes the current (or next) blocking wait() return. Safe from any
    /// thread and from a signal handler.
    void interrupt() noexcept {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);
    }

    /// Number of registered sources (a goroutine may be waiting on one).
    std::size_t sources() const noexcept { return sources_in_use_.load(std::memory_order_seq_cst); }

    /// The timers this poller drives (see the top of this file).
    detail::timer_queue& timers() noexcept { return timers_; }

    /// True if a wait could bring something: a registered fd or a timer.
    bool has_work_to_wait_for() const noexcept { return sources() != 0 || timers_.maybe_pending(); }

private:
    static void deadline_changed(void* self, detail::timer_clock::time_point) {
        auto* p = static_cast<poller*>(self);
        if (p->blocking_.load(std::memory_order_seq_cst)) p->interrupt();  // re-arm with the new deadline
    }

    /// `timeout` (negative: forever) shortened to the earliest deadline.
    std::chrono::nanoseconds until_next_timer(std::chrono::nanoseconds timeout) {
        auto next = timers_.next_deadline();  // under the queue's lock: see wait()
        if (next == detail::timer_clock::time_point::max()) return timeout;
        auto until = std::max(std::chrono::nanoseconds::zero(),
                              std::chrono::duration_cast<std::chrono::nanoseconds>(next - timers_.now()));
        return timeout < std::chrono::nanoseconds::zero() ? until : std::min(timeout, until);
    }

    /// Completes every waiter of `q` with `status`. True if there was one.
    static bool wake_all_locked(detail::wait_queue& q, detail::wait_status status) {
        bool woke = false;
        for (; detail::waiter* w = q.claim_front(); woke = true) detail::complete(*w, status);
        return woke;
    }

    /// Readiness in direction `d`: wakes the waiters, or latches it for the next wait.
    static void signal_locked(detail::io_source& s, detail::io_direction d) {
        if (!wake_all_locked(s.waiters[int(d)], detail::wait_status::ok)) s.ready[int(d)] = true;
    }

    detail::io_source* allocate_source() {
        std::lock_guard lock(sources_mu_);
        if (free_) return std::exchange(free_, free_->next_free);
        all_.push_back(std::make_unique<detail::io_source>());
        all_.back()->owner = this;
        return all_.back().get();
    }

    void run_thread() {
        event_batch batch;
        while (!stopping_.load(std::memory_order_acquire)) {
            wait(batch, std::chrono::nanoseconds(-1));
            dispatch(batch);
        }
    }

    void stop_thread() noexcept {
        if (!thread_.joinable()) return;
        stopping_.store(true, std::memory_order_release);
        interrupt();
        thread_.join();
    }

    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    // seq_cst: the pool's deadlock check reads it together with its idle
    // counters (all seq_cst), and must not see "no fd" while a goroutine
    // that registered one is already counted as parked.
    std::atomic<std::size_t> sources_in_use_{0};
    std::atomic<bool> blocking_{false};  // a blocking wait() is in progress
    detail::timer_queue timers_{detail::timer_queue::clock_kind::steady};

    std::mutex sources_mu_;
    std::vector<std::unique_ptr<detail::io_source>> all_;
    detail::io_source* free_ = nullptr;

    std::mutex table_mu_;
    std::vector<detail::io_source*> by_fd_;

    std::once_flag thread_once_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
};

namespace detail {

/// The poller of the calling goroutine's executor, or the process-wide one.
inline poller& current_poller() {
    executor_ref e = current_executor();
    if (e)
        if (poller* p = e.io()) return *p;
    return poller::process_wide();
}

/// Waits for one direction of one source: the awaiter behind
/// csp::readable/writable, and a case of select.
inline constexpr wait_kind readable_kind{"wait for fd readable"};
inline constexpr wait_kind writable_kind{"wait for fd writable"};

class io_wait {
public:
    io_wait(io_source* s, io_direction d) noexcept : source_(s), direction_(d) {}
    io_wait(io_wait&& other) noexcept : source_(other.source_), direction_(other.direction_) {
        if (other.armed_) std::terminate();  // never moved once armed
    }
    io_wait& operator=(io_wait&&) = delete;
    ~io_wait() { case_disarm(); }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        source_->mu.lock();
        if (case_try_locked()) {
            source_->mu.unlock();
            return false;
        }
        executor_ref ex = current_executor();
        if (!ex) {
            source_->mu.unlock();
            require_current_executor("csp::readable / csp::writable");
        }
        note_.park(goroutine_of(h), direction_ == io_direction::read ? readable_kind : writable_kind, source_);
        own_op_.fired.store(blocked_op::not_fired, std::memory_order_relaxed);
        own_op_.handle = h;
        own_op_.executor = ex;
        case_arm_locked(own_op_, 0);
        source_->mu.unlock();  // from here on this frame may be resumed elsewhere
        return true;
    }
    /// Throws std::system_error(operation_canceled) if the source was
    /// removed (its socket closed) before or while waiting.
    void await_resume() {
        note_.unpark();
        if (armed_) case_woken();
        if (std::error_code ec = case_result()) throw std::system_error(ec, "csp: fd closed while waiting");
    }

    // ---- case interface, used by csp::select ----
    using case_result_type = std::error_code;
    spin_mutex* case_mutex() noexcept { return &source_->mu; }
    bool case_try_locked() noexcept {
        if (source_->closed) {
            status_ = wait_status::closed;
            return true;
        }
        bool& latch = source_->ready[int(direction_)];
        if (!latch) return false;
        latch = false;
        status_ = wait_status::ok;
        return true;
    }
    void case_arm_locked(blocked_op& op, int index) noexcept {
        waiter_.op = &op;
        waiter_.case_index = index;
        waiter_.status = wait_status::pending;
        armed_ = true;
        source_->waiters[int(direction_)].push_back(waiter_);
    }
    void case_disarm() noexcept {
        if (!armed_) return;
        std::lock_guard lock(source_->mu);
        source_->waiters[int(direction_)].remove(waiter_);
        armed_ = false;
    }
    void case_woken() noexcept {
        armed_ = false;
        status_ = waiter_.status;
    }
    case_result_type case_result() const noexcept {
        return status_ == wait_status::closed ? std::make_error_code(std::errc::operation_canceled) : std::error_code();
    }

private:
    io_source* source_;
    io_direction direction_;
    waiter waiter_;
    blocked_op own_op_;
    wait_note note_;
    wait_status status_ = wait_status::pending;
    bool armed_ = false;
};

}  // namespace detail

/// `co_await csp::readable(fd)` suspends the calling goroutine until the
/// non-blocking `fd` may be readable (a read may still find EAGAIN: retry).
/// The fd is registered with the current executor's poller on first use;
/// call csp::unwatch(fd) before closing it. Also a case of csp::select.
inline detail::io_wait readable(int fd) {
    return detail::io_wait(detail::current_poller().source_for(fd), detail::io_direction::read);
}

/// `co_await csp::writable(fd)`: as readable(), for writing.
inline detail::io_wait writable(int fd) {
    return detail::io_wait(detail::current_poller().source_for(fd), detail::io_direction::write);
}

/// Stops watching `fd` (registered by readable/writable on the current
/// executor's poller); goroutines waiting on it wake with an error. Call it
/// before closing the fd: a closed fd's number may be reused.
inline void unwatch(int fd) noexcept {
    try {
        detail::current_poller().forget(fd);
    } catch (...) {
    }
}

}  // namespace csp
