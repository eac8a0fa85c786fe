// csp/detail/timer_queue.hpp - pending timers in a binary min-heap, and the thread that fires them.
//
// Each pending timer is a `timer_node` that lives in the waiting coroutine's
// frame (a sleep, an `after` case of a select) or in a ticker. The heap holds
// pointers to the nodes and each node knows its heap position, so inserting
// and cancelling are O(log n) and a million pending timers cost one pointer
// each in the heap. All of it is guarded by one lock, `mu`.
//
// Firing follows the channels' rule (detail/waiter.hpp): the node is removed
// and its blocked_op claimed and woken with `mu` held, so a frame being
// destroyed (which cancels its node under `mu`) never races a firing.
// Tickers are the exception: they send into a channel, whose lock may not be
// taken under `mu` (a select locks channels and the timer lock in address
// order), so a ticker is fired after `mu` is released, guarded by its `busy`
// flag, which the ticker's destructor waits out.
//
// Drive modes. The process-wide queue is driven by its own thread, which
// sleeps on a futex until the earliest deadline (never polling); a new
// earliest deadline wakes it. An executor may own an *externally driven*
// queue instead (no thread): it asks next_deadline() when it goes idle and
// calls fire_due(now) itself, on its own thread, and may register a callback
// to hear of a new earliest deadline (an epoll poller writes its eventfd).
//
// Clocks. A queue reads steady_clock, or, with a virtual clock, a time that
// only moves when its driver calls advance_to() (csp::testing's executor
// jumps it to the next deadline when every goroutine is blocked).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parker.hpp"
#include "spin_mutex.hpp"
#include "waiter.hpp"

namespace csp::detail {

using timer_clock = std::chrono::steady_clock;

struct timer_node {
    static constexpr std::size_t not_queued = std::size_t(-1);

    timer_clock::time_point deadline{};
    std::uint64_t sequence = 0;  // FIFO among equal deadlines
    std::size_t heap_index = not_queued;
    // A one-shot timer claims and wakes `op` as case `case_index`.
    blocked_op* op = nullptr;
    int case_index = 0;
    // A periodic timer (ticker) calls `on_tick` outside the lock instead.
    void (*on_tick)(void* context, timer_clock::time_point) = nullptr;
    void* context = nullptr;
    timer_clock::duration period{};
    std::atomic<bool> busy{false};
    // Counts this timer among its executor's pending wake-ups while queued
    // (the deadlock detector knows a sleeper is not stuck).
    std::atomic<long>* pending_counter = nullptr;

    bool queued() const noexcept { return heap_index != not_queued; }
};

class timer_queue {
public:
    spin_mutex mu;

    enum class drive { own_thread, external };
    enum class clock_kind { steady, virtual_time };
    /// Called with `mu` held when an inserted timer becomes the earliest.
    using deadline_changed_fn = void (*)(void* context, timer_clock::time_point deadline);

    /// The process-wide kind: steady clock, fired by its own thread.
    timer_queue() = default;
    /// An externally driven queue, on the steady or a virtual clock. A
    /// virtual clock starts at steady_clock's epoch plus one hour (so that
    /// code subtracting durations from now() stays after the epoch).
    explicit timer_queue(clock_kind k) noexcept
        : drive_(drive::external), virtual_(k == clock_kind::virtual_time) {}
    timer_queue(const timer_queue&) = delete;
    timer_queue& operator=(const timer_queue&) = delete;
    ~timer_queue() {
        if (thread_.joinable()) {
            {
                std::lock_guard lock(mu);
                stopping_ = true;
            }
            wake_.unpark();
            thread_.join();
        }
    }

    /// The process-wide timer queue, with its firing thread.
    static timer_queue& instance() {
        static timer_queue q;
        return q;
    }

    /// Queues `n` (with its deadline set). Requires `mu`.
    void insert_locked(timer_node& n) {
        if (n.pending_counter) n.pending_counter->fetch_add(1, std::memory_order_seq_cst);
        n.sequence = next_sequence_++;
        n.heap_index = heap_.size();
        heap_.push_back(&n);
        pending_.store(heap_.size(), std::memory_order_relaxed);
        sift_up(n.heap_index);
        if (heap_[0] == &n) earliest_changed_locked(n.deadline);
    }

    /// Removes `n` if it is queued. Requires `mu`.
    void remove_locked(timer_node& n) noexcept {
        if (!n.queued()) return;
        unlink_locked(n);
        if (n.pending_counter) n.pending_counter->fetch_sub(1, std::memory_order_seq_cst);
    }

    /// Takes `n` out of the heap without touching its pending counter.
    void unlink_locked(timer_node& n) noexcept {
        std::size_t i = n.heap_index;
        std::size_t last = heap_.size() - 1;
        if (i != last) {
            swap_nodes(i, last);
            heap_.pop_back();
            sift_down(i);
            sift_up(i);
        } else {
            heap_.pop_back();
        }
        n.heap_index = timer_node::not_queued;
        pending_.store(heap_.size(), std::memory_order_relaxed);
    }

    /// A lock-free hint: true if some timer may be queued. Relaxed: drivers
    /// that see a stale zero re-check at their next poll, and an insert that
    /// becomes the earliest deadline tells the driver itself.
    bool maybe_pending() const noexcept { return pending_.load(std::memory_order_relaxed) != 0; }

    std::size_t size() {
        std::lock_guard lock(mu);
        return heap_.size();
    }

    /// This queue's clock: deadlines are compared with it.
    timer_clock::time_point now() const noexcept {
        if (!virtual_) return timer_clock::now();
        // relaxed: the virtual clock is read and moved by its driver's thread.
        return timer_clock::time_point(timer_clock::duration(virtual_now_.load(std::memory_order_relaxed)));
    }

    bool has_virtual_clock() const noexcept { return virtual_; }

    /// Moves a virtual clock forward to `t` (never backwards). Fires nothing:
    /// the driver calls fire_due(now()) next.
    void advance_to(timer_clock::time_point t) {
        if (!virtual_) throw std::logic_error("csp: advance_to on a timer queue with a real clock");
        if (t > now()) virtual_now_.store(t.time_since_epoch().count(), std::memory_order_relaxed);
    }

    /// The earliest pending deadline, or time_point::max() if none.
    timer_clock::time_point next_deadline() {
        std::lock_guard lock(mu);
        return heap_.empty() ? timer_clock::time_point::max() : heap_[0]->deadline;
    }

    /// Fires every timer due at `now` (tickers re-arm). For externally driven
    /// queues, from the driver's thread. Returns how many timers fired.
    std::size_t fire_due(timer_clock::time_point now) {
        std::vector<timer_node*> ticks;
        std::size_t fired = 0;
        {
            std::lock_guard lock(mu);
            fired = fire_due_locked(now, ticks);
        }
        run_ticks(ticks, now);
        return fired;
    }

    /// Registers the callback told of each new earliest deadline (one per
    /// queue; null to remove). It runs with `mu` held: it must not touch
    /// timers, only signal the driver.
    void on_deadline_changed(deadline_changed_fn fn, void* context) {
        std::lock_guard lock(mu);
        changed_ = fn;
        changed_context_ = context;
    }

private:
    static bool earlier(const timer_node* a, const timer_node* b) noexcept {
        return a->deadline < b->deadline || (a->deadline == b->deadline && a->sequence < b->sequence);
    }
    void swap_nodes(std::size_t i, std::size_t j) noexcept {
        std::swap(heap_[i], heap_[j]);
        heap_[i]->heap_index = i;
        heap_[j]->heap_index = j;
    }
    void sift_up(std::size_t i) noexcept {
        while (i > 0) {
            std::size_t parent = (i - 1) / 2;
            if (!earlier(heap_[i], heap_[parent])) break;
            swap_nodes(i, parent);
            i = parent;
        }
    }
    void sift_down(std::size_t i) noexcept {
        for (;;) {
            std::size_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < heap_.size() && earlier(heap_[l], heap_[m])) m = l;
            if (r < heap_.size() && earlier(heap_[r], heap_[m])) m = r;
            if (m == i) return;
            swap_nodes(i, m);
            i = m;
        }
    }

    void earliest_changed_locked(timer_clock::time_point deadline) {
        if (drive_ == drive::own_thread) {
            if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
            wake_.unpark();  // a new earliest deadline: the thread must re-arm its sleep
        } else if (changed_) {
            changed_(changed_context_, deadline);
        }
    }

    std::size_t fire_due_locked(timer_clock::time_point now, std::vector<timer_node*>& ticks) {
        std::size_t fired = 0;
        for (; !heap_.empty() && heap_[0]->deadline <= now; ++fired) fire_locked(*heap_[0], now, ticks);
        return fired;
    }

    /// Sends the ticks collected by fire_due_locked, with `mu` released.
    static void run_ticks(std::vector<timer_node*>& ticks, timer_clock::time_point now) {
        for (timer_node* t : ticks) {
            t->on_tick(t->context, now);
            t->busy.store(false, std::memory_order_release);  // pairs with the ticker's destructor
        }
        ticks.clear();
    }

    void run() {
        std::vector<timer_node*> ticks;
        std::unique_lock lock(mu);
        while (!stopping_) {
            auto now = timer_clock::now();
            fire_due_locked(now, ticks);
            auto next = heap_.empty() ? timer_clock::time_point::max() : heap_[0]->deadline;
            lock.unlock();
            run_ticks(ticks, now);
            if (next == timer_clock::time_point::max()) wake_.park();
            else wake_.park_for(next - timer_clock::now());
            lock.lock();
        }
    }

    void fire_locked(timer_node& n, timer_clock::time_point now, std::vector<timer_node*>& ticks) {
        if (!n.on_tick) {
            // One-shot: post the wake-up before the timer stops counting as
            // a pending wake-up, so that the deadlock detector always sees
            // one or the other.
            std::atomic<long>* counter = n.pending_counter;
            unlink_locked(n);
            if (n.op->try_claim(n.case_index)) n.op->wake();
            if (counter) counter->fetch_sub(1, std::memory_order_seq_cst);
            return;
        }
        remove_locked(n);
        {
            // Periodic: re-arm at the next multiple of the period after now
            // (ticks a slow receiver missed are dropped, as in Go).
            auto missed = (now - n.deadline) / n.period;
            n.deadline += n.period * (missed + 1);
            insert_locked(n);
            n.busy.store(true, std::memory_order_relaxed);
            ticks.push_back(&n);
        }
    }

    std::vector<timer_node*> heap_;
    std::atomic<std::size_t> pending_{0};  // heap_.size(), readable without mu
    std::uint64_t next_sequence_ = 0;
    drive drive_ = drive::own_thread;
    bool virtual_ = false;
    // Virtual time in steady_clock ticks; starts one hour after the epoch.
    std::atomic<timer_clock::rep> virtual_now_{
        std::chrono::duration_cast<timer_clock::duration>(std::chrono::hours(1)).count()};
    deadline_changed_fn changed_ = nullptr;
    void* changed_context_ = nullptr;
    bool stopping_ = false;
    parker wake_;
    std::thread thread_;
};

}  // namespace csp::detail
