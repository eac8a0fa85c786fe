// csp/detail/affinity_queue.hpp - a worker's queue of goroutines kept on it
// by contention affinity (detail/affinity.hpp).
//
// A FIFO under a spin lock: any worker may push (a goroutine moving to its
// channel's home worker), the owner pops, and another worker takes entries
// only when the owner has stopped serving the queue (see
// work_stealing_pool::steal_starving_affine). It is touched once per
// resumption of a goroutine that lives here (a push when it yields, a pop
// when it runs again), never per channel operation, so a lock costs
// nothing that matters. The ring grows when full and never shrinks: no
// allocation in steady state.
//
// A thief may take entries when the owner did not serve the queue during
// the thief's search pause, or when the owner's turns have lately been long
// (`long_turn_ns`, a running average of the time between its pops): then
// the goroutines compute more than they fight over a channel, and a second
// core is worth more to them than a shared cache. Measured on a fan-out of
// compute consumers (docs/performance.md): without that rule a busy pool
// kept them all on one worker.
#pragma once

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <mutex>

#include "ring_buffer.hpp"
#include "spin_mutex.hpp"

namespace csp::detail {

class affinity_queue {
public:
    struct entry {
        std::coroutine_handle<> handle;
        std::uint8_t quiet_turns = 0;  ///< resumptions since it last lost a race
    };

    void push(entry e) {
        std::lock_guard lock(mu_);
        if (entries_.empty()) last_pop_ns_ = 0;  // an empty spell is not a turn
        if (entries_.full()) entries_.grow();
        entries_.emplace_back(e);
        // seq_cst: publishes the entry for the pool's wake-up protocol (a
        // worker about to sleep looks at this size after it registers idle).
        size_.store(std::uint32_t(entries_.size()), std::memory_order_seq_cst);
    }

    /// The oldest entry, if any (for the owner), taken at `now_ns` (any
    /// monotonic clock in nanoseconds, above zero: the pool passes the
    /// steady clock, the tests a clock of their own).
    bool pop(entry& out, std::int64_t now_ns) {
        if (size_.load(std::memory_order_relaxed) == 0) return false;
        std::lock_guard lock(mu_);
        if (entries_.empty()) return false;
        out = entries_.pop_front();
        note_taken();
        note_turn(now_ns);
        return true;
    }

    /// How many times entries were taken: a thief that sees the same count
    /// before and after a pause knows the owner did not serve the queue
    /// meanwhile.
    std::uint64_t served() const noexcept { return served_.load(std::memory_order_relaxed); }

    /// For another worker: moves up to half of the entries (at most
    /// `limit`, at least one) to `sink`, if the queue has entries and has not
    /// been served since served() returned `seen`. True if it moved any.
    template <class Sink>
    bool take_unserved(std::uint64_t seen, std::uint32_t limit, Sink&& sink) {
        if (size_.load(std::memory_order_relaxed) == 0 || limit == 0) return false;
        auto stealable = [&] { return served() == seen || long_turns(); };
        if (!stealable()) return false;
        std::lock_guard lock(mu_);
        if (entries_.empty() || !stealable()) return false;
        std::size_t n = std::min<std::size_t>((entries_.size() + 1) / 2, limit);
        for (std::size_t i = 0; i < n; ++i) sink(entries_.pop_front().handle);
        note_taken();
        return true;
    }

    /// True if the goroutines here have lately run for `long_turn_ns` or
    /// more between two pops: they compute more than they fight over a
    /// channel, and two workers are worth more to them than one cache.
    bool long_turns() const noexcept { return mean_turn_ns_.load(std::memory_order_relaxed) >= long_turn_ns; }
    static constexpr std::int64_t long_turn_ns = 30'000;

    /// Entries queued (a snapshot; seq_cst for the wake-up protocol).
    std::uint32_t size() const noexcept { return size_.load(std::memory_order_seq_cst); }

private:
    /// The owner's pops are one turn apart: a running average (weight 1/8)
    /// of the time between them says how long the goroutines here run.
    /// Under mu_.
    void note_turn(std::int64_t now) noexcept {
        const std::int64_t mean = mean_turn_ns_.load(std::memory_order_relaxed);
        if (last_pop_ns_ != 0) mean_turn_ns_.store(mean + (now - last_pop_ns_ - mean) / 8, std::memory_order_relaxed);
        last_pop_ns_ = now;
    }

    void note_taken() noexcept {  // under mu_: the only writer of these
        size_.store(std::uint32_t(entries_.size()), std::memory_order_relaxed);
        served_.store(served_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    spin_mutex mu_;
    ring_buffer<entry> entries_;  // guarded by mu_
    std::atomic<std::uint32_t> size_{0};
    // Memory orders. `size_` is stored seq_cst for the pool's wake-up
    // protocol (push). `served_` and `mean_turn_ns_` are only hints for a
    // thief's choice: a stale value makes it take a little early or late,
    // never lose or duplicate an entry (every move of an entry happens under
    // mu_), so they are relaxed; all three are written under mu_ only.
    std::atomic<std::uint64_t> served_{0};
    std::int64_t last_pop_ns_ = 0;              // guarded by mu_; 0: none since empty
    std::atomic<std::int64_t> mean_turn_ns_{0};  // written by the owner
};

}  // namespace csp::detail
