// csp/run_loop.hpp - a single-threaded, deterministic executor.
//
// Coroutines posted to a run_loop are resumed in FIFO order by whichever
// thread calls its run functions (one thread at a time). Nothing else runs
// them, so a program driven by run_until_idle() is deterministic. It is also
// how csp embeds in another event loop: call run_until_idle() from that
// loop's idle hook, or run() on a dedicated thread.
//
// A loop constructed with a poller drives it: goroutines on the loop watch
// their file descriptors with that poller, run() sleeps in its epoll_wait
// when idle (a post interrupts it), and run_until_idle() looks for ready
// file descriptors without blocking.
#pragma once

#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <mutex>

#include "detail/activity.hpp"
#include "detail/budget.hpp"
#include "detail/goroutine_registry.hpp"
#include "detail/ring_buffer.hpp"
#include "executor.hpp"
#include "poller.hpp"

namespace csp {

class run_loop {
public:
    run_loop() = default;

    /// A loop that drives `p` (which must outlive it).
    explicit run_loop(poller& p) noexcept : poller_(&p) {}
    run_loop(const run_loop&) = delete;
    run_loop& operator=(const run_loop&) = delete;

    /// Destroys the goroutines spawned here that have not finished (they are
    /// never resumed) and drops whatever is still queued.
    ~run_loop() {
        goroutines_.destroy_all();
        std::lock_guard lock(mu_);
        queue_.clear();
    }

    /// Queues `h` to be resumed by a run function. Safe from any thread;
    /// allocates only when the queue has to grow.
    void post(std::coroutine_handle<> h) {
        // Notify while holding the lock: a sync_wait thread may destroy this
        // loop as soon as it can see the handle, and it cannot see it before
        // we unlock.
        std::lock_guard lock(mu_);
        if (queue_.full()) queue_.grow();
        queue_.emplace_back(h);
        wake_locked();
    }

    /// Resumes one queued coroutine if there is one. Never blocks. Rethrows
    /// an exception that escaped a goroutine spawned on this loop.
    bool run_one() {
        std::coroutine_handle<> h;
        {
            std::lock_guard lock(mu_);
            if (queue_.empty()) return false;
            h = queue_.pop_front();
        }
        resume(h);
        return true;
    }

    /// Runs until nothing is queued. Returns how many coroutines it resumed.
    std::size_t run_until_idle() {
        std::size_t n = 0;
        for (;;) {
            while (run_one()) ++n;
            if (!poller_ || !poller_->has_work_to_wait_for() || poller_->poll(std::chrono::nanoseconds::zero()) == 0)
                return n;
        }
    }

    /// Runs, sleeping when idle (no spinning), until stop() is called.
    /// Queued work left at the time of stop() stays queued.
    void run() {
        detail::external_driver_scope driving;  // may wake goroutines elsewhere (deadlock detection)
        std::unique_lock lock(mu_);
        std::uint32_t tick = 0;
        while (!stop_requested_) {
            if (queue_.empty()) {
                sleep(lock);
                continue;
            }
            std::coroutine_handle<> h = queue_.pop_front();
            lock.unlock();
            resume(h);
            // Now and then look for ready fds even while busy, so that an
            // always-ready goroutine cannot starve I/O.
            if (poller_ && ++tick % io_poll_interval == 0 && poller_->has_work_to_wait_for())
                poller_->poll(std::chrono::nanoseconds::zero());
            lock.lock();
        }
        stop_requested_ = false;
    }

    /// Makes run() return once the coroutine it is resuming suspends. Safe
    /// from any thread. A stop() with no run() in progress makes the next
    /// run() return at once.
    void stop() {
        std::lock_guard lock(mu_);
        stop_requested_ = true;
        wake_locked();
    }

    /// Returns the loop to its initial state: destroys the goroutines spawned
    /// here that have not finished, drops what is queued, forgets a stop
    /// request and an uncollected goroutine exception. For a loop that is
    /// not running (sync_wait reuses its loops this way).
    void reset() {
        goroutines_.destroy_all();
        {
            std::lock_guard lock(mu_);
            queue_.clear();
            stop_requested_ = false;
        }
        (void)goroutines_.take_error();
    }

    /// Number of queued coroutines.
    std::size_t pending() const {
        std::lock_guard lock(mu_);
        return queue_.size();
    }

    /// The goroutines spawned on this loop that are still alive.
    detail::goroutine_registry& goroutines() noexcept { return goroutines_; }

    /// The poller this loop drives, or null.
    poller* io_poller() const noexcept { return poller_; }

    /// The timers of this loop's goroutines: its poller's, or the
    /// process-wide queue (fired by its own thread) for a loop without one.
    detail::timer_queue& timers() noexcept { return poller_ ? poller_->timers() : detail::timer_queue::instance(); }

    /// run() looks for ready fds every this many resumptions.
    static constexpr std::uint32_t io_poll_interval = 61;

private:
    /// Sleeps until a post or stop: in the poller's wait if the loop has
    /// one (handling the events it brings), else on the condition variable.
    void sleep(std::unique_lock<std::mutex>& lock) {
        if (!poller_) {
            sleeping_ = true;
            ready_.wait(lock, [&] { return stop_requested_ || !queue_.empty(); });
            sleeping_ = false;
            return;
        }
        sleeping_in_poller_ = true;
        lock.unlock();
        poller::event_batch batch;
        poller_->wait(batch, std::chrono::nanoseconds(-1));
        lock.lock();
        sleeping_in_poller_ = false;
        lock.unlock();
        poller_->dispatch(batch);  // posts to this loop: not under mu_
        lock.lock();
    }

    /// Wakes run() if it sleeps. Requires mu_.
    void wake_locked() {
        if (sleeping_) ready_.notify_all();
        if (sleeping_in_poller_) poller_->interrupt();
    }

    void resume(std::coroutine_handle<> h) {
        {
            detail::current_executor_scope scope(*this);
            detail::refill_budget();
            h.resume();
        }
        goroutines_.rethrow_if_failed();
    }

    mutable std::mutex mu_;
    std::condition_variable ready_;
    detail::ring_buffer<std::coroutine_handle<>> queue_;
    bool sleeping_ = false;
    bool sleeping_in_poller_ = false;
    bool stop_requested_ = false;
    poller* poller_ = nullptr;
    detail::goroutine_registry goroutines_{"run_loop"};
};

}  // namespace csp
