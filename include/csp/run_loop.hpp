// csp/run_loop.hpp - a single-threaded, deterministic executor.
//
// Coroutines posted to a run_loop are resumed in FIFO order by whichever
// thread calls its run functions (one thread at a time). Nothing else runs
// them, so a program driven by run_until_idle() is deterministic. It is also
// how csp embeds in another event loop: call run_until_idle() from that
// loop's idle hook, or run() on a dedicated thread.
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

namespace csp {

class run_loop {
public:
    run_loop() = default;
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
        if (sleeping_) ready_.notify_one();
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
        while (run_one()) ++n;
        return n;
    }

    /// Runs, sleeping when idle (no spinning), until stop() is called.
    /// Queued work left at the time of stop() stays queued.
    void run() {
        detail::external_driver_scope driving;  // may wake goroutines elsewhere (deadlock detection)
        std::unique_lock lock(mu_);
        while (!stop_requested_) {
            if (queue_.empty()) {
                sleeping_ = true;
                ready_.wait(lock, [&] { return stop_requested_ || !queue_.empty(); });
                sleeping_ = false;
                continue;
            }
            std::coroutine_handle<> h = queue_.pop_front();
            lock.unlock();
            resume(h);
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
        ready_.notify_all();
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

private:
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
    bool stop_requested_ = false;
    detail::goroutine_registry goroutines_{"run_loop"};
};

}  // namespace csp
