// csp/work_stealing_pool.hpp - csp's multi-threaded executor.
//
// N worker threads, each with its own bounded run queue (detail/local_queue.hpp),
// a global queue for work posted from outside the pool, and a run-next slot.
// The design follows Go's scheduler (runtime/proc.go) and tokio's
// multi-threaded scheduler, reduced to what csp needs:
//
// * Posting. From a worker of this pool, post() puts the coroutine in the
//   worker's run-next slot: a goroutine woken by the running one (a receiver
//   woken by a send) runs next on the same worker, while its data is hot in
//   cache. The previous occupant moves to the local queue. (If the waker
//   then ends instead of waiting, the newest local entry runs first: see
//   sibling_of_ended.) From any other thread, post() goes to the
//   global queue. Nothing allocates except the global queue when it grows.
// * Order. The local queue runs newest first (detail/local_queue.hpp), so
//   spawned children run depth-first on their parent's worker, as in Cilk
//   and oneTBB; thieves take the oldest entries.
// * Fairness. Every `global_poll_interval` ticks a worker takes the oldest
//   work first (I/O, the global queue, and the oldest local entry if the
//   local queue has not been empty for `oldest_wait_limit_ns`), so neither a
//   ping-pong pair in the run-next slot nor newer work starves older work.
//   yield() re-queues behind all of the worker's queued work, at the oldest
//   end of its local queue (where thieves take first).
// * Stealing. A worker with nothing to do steals half of another worker's
//   queue. At most half of the workers search at once (`searching_`), and a
//   post only wakes a sleeping worker if nobody is searching already, so a
//   burst of posts wakes one thread, not all of them.
// * Contention affinity. Goroutines that lose races on the same buffered
//   channel from different workers gather on the channel's home worker, in
//   its affinity queue, which other workers leave alone while it is served
//   (detail/affinity.hpp, requeue_by_affinity; docs/runtime.md).
// * Parking. An idle worker sleeps on its own futex (detail/parker.hpp); an
//   idle pool uses no CPU. While another worker's affinity queue holds
//   goroutines, an idle worker wakes every millisecond to look at it.
// * I/O and timers (Go's netpoller). The pool owns a poller (poller.hpp),
//   which also holds the timers of the pool's goroutines. While fds are
//   registered or timers pending, a worker that runs out of work first
//   polls without blocking, and the first worker to park sleeps in
//   epoll_wait, until the earliest deadline, instead of on its futex
//   (`polling_worker_`). Readiness and expiry then wake the goroutine on the
//   worker that harvested them: it lands in that worker's run-next slot,
//   with no hop through another thread. That worker then hands the poller
//   role to an idle worker (notify_work). Posts wake futex sleepers first
//   and interrupt the poller (an eventfd write) only when it is the one idle
//   worker. A busy worker polls every `global_poll_interval` ticks when
//   nobody sleeps in the poller, so a busy pool does not starve I/O.
//
// The wake-up protocol (no lost wake-ups). A poster publishes its work (a
// release store of a local queue's tail, or a seq_cst store of the global
// queue's size), then loads `idle_count_` and, if some worker is idle, tries
// to claim the one "searching" token with a CAS on `searching_`. A worker
// about to sleep first gives up searching (an RMW on `searching_`), then
// registers as idle (an RMW on `idle_count_`), then looks at every queue
// once more. Between the poster's store and its load, and between the
// worker's registration and its look, there must be a StoreLoad barrier:
// then either the poster's load comes after the worker's registration, and
// it sees the worker idle (and, having seen its searching_ decrement, wakes
// someone), or the worker's look comes after the poster's store and sees
// the work. The barrier is asymmetric (detail/asymmetric_fence.hpp): a
// membarrier system call on the worker's side, which parks rarely, and only
// a compiler barrier on the poster's, which posts at every csp::go. So a
// post from a worker is a plain store and a plain load on x86, with no
// locked instruction on the local queue or on a line that every worker
// writes. (Before, the push was a compare-and-swap and supplied the barrier
// itself; without membarrier both sides do a read-modify-write of one
// shared atomic.)
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <string>
#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "detail/activity.hpp"
#include "detail/affinity.hpp"
#include "detail/affinity_queue.hpp"
#include "detail/asymmetric_fence.hpp"
#include "detail/budget.hpp"
#include "detail/goroutine_registry.hpp"
#include "detail/local_queue.hpp"
#include "detail/parker.hpp"
#include "detail/random.hpp"
#include "detail/ring_buffer.hpp"
#include "detail/spin_mutex.hpp"
#include "executor.hpp"
#include "poller.hpp"

namespace csp {

/// Deadlock detection for a work_stealing_pool, like Go's "all goroutines
/// are asleep": when every goroutine of the pool is blocked, no worker has
/// work, no timer of the pool is pending, no thread is in sync_wait or
/// drives a run_loop, no ticker lives, and nothing is posted from outside
/// for `grace`, `report` is called once (from a worker) with a description
/// of the blocked goroutines. Off when `report` is empty.
struct deadlock_detection {
    std::function<void(std::string)> report;
    std::chrono::milliseconds grace{50};
};

class work_stealing_pool {
public:
    using deadlock_detection = csp::deadlock_detection;

    /// Starts `threads` workers (at least one; default: one per hardware
    /// thread). Everything the workers read is set before they start.
    explicit work_stealing_pool(std::size_t threads = std::max(1u, std::thread::hardware_concurrency()),
                                deadlock_detection detection = {})
        : workers_(std::max<std::size_t>(threads, 1)),
          deadlock_report_(std::move(detection.report)),
          deadlock_grace_(detection.grace) {
        idle_.reserve(workers_.size());
        detail::asymmetric_fence::enable();  // before any worker posts (see the top of the file)
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            workers_[i].index = i;
            workers_[i].affine_seen.resize(workers_.size());
        }
        for (auto& w : workers_) w.thread = std::thread([this, &w] { run_worker(w); });
    }

    work_stealing_pool(const work_stealing_pool&) = delete;
    work_stealing_pool& operator=(const work_stealing_pool&) = delete;

    /// Stops the workers (each finishes the goroutine it is running), then
    /// destroys the goroutines that did not finish. Work still queued is
    /// dropped with them.
    ~work_stealing_pool() {
        stop();
        join();
        goroutines_.destroy_all();
        // An exception that escaped a goroutine and that nobody collected
        // (csp::run does) must not vanish: report it as Go reports a panic.
        if (std::exception_ptr e = goroutines_.take_error()) detail::terminate_with_escaped_exception(e);
    }

    /// Waits for the workers to exit (after stop()). Idempotent.
    void join() {
        for (auto& w : workers_)
            if (w.thread.joinable()) w.thread.join();
    }

    /// Queues `h`. On a worker of this pool it runs next on that worker;
    /// from elsewhere it goes to the global queue. Safe from any thread.
    void post(std::coroutine_handle<> h) {
        worker* w = current_worker();
        if (w && w->pool == this) {
            std::coroutine_handle<> displaced = std::exchange(w->runnext, h);
            w->runnext_fresh = true;
            if (!displaced) return;  // the worker runs it when the current goroutine suspends
            if (w->running_affine) {
                keep_by_affinity(*w, displaced);
                return;
            }
            push_local(*w, displaced);
            notify_work();
        } else {
            post_from_outside(h);
        }
    }

    /// Queues `h` behind the work already queued (for csp::yield and the
    /// cooperative budget). From a worker of this pool: at the oldest end of
    /// its local queue, so it runs after everything queued there (the local
    /// queue otherwise runs newest first) and is the first entry a thief
    /// takes; the global queue if the local one is full. From elsewhere: the
    /// global queue.
    ///
    /// From a worker it wakes nobody, like Go's Gosched: the yielding
    /// worker itself goes on and runs `h` when its turn comes, so no work can
    /// be stranded, and a cooperative budget spent every 128 operations does
    /// not cost a futex wake of an idle worker (and its going back to sleep)
    /// each time. Staying local, rather than going through the global queue
    /// as Go's Gosched does, keeps a goroutine on its worker and takes no
    /// lock: with goroutines that never block (an always-ready channel),
    /// every budget yield used to pass them through the global queue, whose
    /// lock both workers took, and dealt them out to the two workers at
    /// random (docs/runtime.md).
    ///
    /// A goroutine that lost races on a channel to another worker in this
    /// resumption goes to the channel's home worker instead, and stays on
    /// its worker while it keeps yielding (requeue_by_affinity).
    void post_yield(std::coroutine_handle<> h) {
        worker* w = current_worker();
        bool from_outside = !(w && w->pool == this);
        if (!from_outside && requeue_by_affinity(*w, h)) return;  // (not inlined)
        if (!from_outside && w->queue.push_oldest(h)) return;
        push_global(h, from_outside);
        if (from_outside) notify_work();
    }

    /// Asks the workers to exit once their current goroutine suspends.
    /// Queued work is not run. Safe from any thread, including a worker.
    void stop() noexcept {
        stopping_.store(true, std::memory_order_seq_cst);
        for (auto& w : workers_) w.parker.unpark();
        poller_.interrupt();
    }

    /// True once stop() was called.
    bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

    std::size_t size() const noexcept { return workers_.size(); }

    /// The goroutines spawned on this pool that are still alive.
    detail::goroutine_registry& goroutines() noexcept { return goroutines_; }

    /// Pending wake-ups from outside the pool (timers of its goroutines).
    std::atomic<long>& pending_wakeups() noexcept { return pending_wakeups_; }

    /// The poller that watches the file descriptors of this pool's goroutines.
    poller& io_poller() noexcept { return poller_; }

    /// The timers of this pool's goroutines, driven by its poller.
    detail::timer_queue& timers() noexcept { return poller_.timers(); }

    /// Scheduling constants (see take_local_or_global).
    static constexpr std::uint32_t global_poll_interval = 61;
    static constexpr std::int64_t oldest_wait_limit_ns = 2'000'000;
    /// How long a searcher that found nothing waits before its last look
    /// (see wait_without_looking).
    static constexpr std::chrono::microseconds search_pause{25};
    /// A thief that finds fewer than `min_steal_batch` entries in a queue
    /// waits `steal_patience` before taking them (see wait_for_a_batch).
    static constexpr std::uint32_t min_steal_batch = detail::local_queue::capacity / 4;
    static constexpr std::chrono::microseconds steal_patience{4};
    /// Contention affinity (detail/affinity.hpp): a yield after this many
    /// lost races in one resumption moves the goroutine to its channel's
    /// home worker; it stays in that worker's affinity queue for up to
    /// `affinity_quiet_limit` resumptions in a row without a lost race.
    static constexpr int contended_losses = 4;
    static constexpr std::uint8_t affinity_quiet_limit = 32;
    static constexpr std::int64_t affinity_notify_interval_ns = 1'000'000;

private:
    struct alignas(64) worker {
        detail::local_queue queue;
        std::coroutine_handle<> runnext;  // owner only
        std::uint32_t ticks_to_poll = global_poll_interval;  // owner only: see take_local_or_global
        bool runnext_fresh = false;       // owner only: the current goroutine filled `runnext`
        bool running_affine = false;      // owner only: the current goroutine came from `affine`
        std::uint8_t running_quiet = 0;   // owner only: and had this many quiet turns
        std::int64_t oldest_served_ns = 0;  // owner only: see take_starving_oldest
        bool searching = false;           // owner only: counted in searching_
        bool idle = false;                // guarded by idle_mu_
        poller::event_batch* io_events = nullptr;  // owner only: where park() harvests I/O
        detail::parker parker;
        std::size_t index = 0;
        work_stealing_pool* pool = nullptr;
        std::thread thread;
        // Contention affinity, on lines of their own: other workers read
        // the queue's counters when they search.
        alignas(64) detail::affinity_queue affine;  // see requeue_by_affinity
        std::vector<std::uint64_t> affine_seen;     // owner only: see note_affine_progress
        std::int64_t affinity_notified_ns = 0;      // owner only: see notify_for_affinity
    };

    // The worker running on this thread, if any. Read through a non-inlined
    // function so that no compiler caches it across a suspension point.
    static inline thread_local worker* current_worker_slot = nullptr;
    [[gnu::noinline]] static worker* current_worker() noexcept { return current_worker_slot; }
    [[gnu::noinline]] static void set_current_worker(worker* w) noexcept { current_worker_slot = w; }

    void run_worker(worker& w) {
        poller::event_batch events;
        w.io_events = &events;
        w.pool = this;
        set_current_worker(&w);
        detail::set_affinity_self(&w);
        detail::current_executor_scope scope(*this);
        detail::finish_resumption();  // a full budget for the first
        std::coroutine_handle<> h = find_work(w);
        while (h) {
            w.runnext_fresh = false;
            h.resume();
            w.running_affine = false;
            std::coroutine_handle<> sibling = detail::finish_resumption() ? sibling_of_ended(w) : nullptr;
            h = sibling ? sibling : next_work(w);
        }
        set_current_worker(nullptr);
        detail::set_affinity_self(nullptr);
    }

    /// What runs next after a goroutine ended, ahead of find_work's order:
    /// a goroutine that ends just after waking another (a child sending its
    /// result to its parked parent) leaves the woken one in the run-next
    /// slot, ahead of the older work in the local queue (the child's
    /// sibling). The run-next slot is for a goroutine that the waker will
    /// wait on next (a ping-pong partner); a waker that ended waits on
    /// nothing, so the newest local entry runs first and the woken one
    /// right after it. In a fork/join tree the parent then finds both
    /// results ready instead of parking once per child.
    ///
    /// The woken one stays in the run-next slot meanwhile: if the sibling
    /// wakes or spawns nothing, the woken one is taken from there, and the
    /// swap costs one queue operation (a CAS) instead of three (moving the
    /// woken one through the queue: W8 fib, where the sibling is a leaf in
    /// a third of the calls). If the sibling does post something, the
    /// woken one is displaced into the queue as usual. Only a run-next
    /// slot that the ended goroutine filled counts (`runnext_fresh`): one
    /// left from before is the woken goroutine of an earlier swap, which
    /// must now run before any older entry.
    std::coroutine_handle<> sibling_of_ended(worker& w) {
        if (!w.runnext || !w.runnext_fresh) return {};
        return w.queue.pop_newest();
    }

    // ---- queues ----

    void push_local(worker& w, std::coroutine_handle<> h) {
        if (w.queue.push(h)) return;
        overflow_to_global(w, h);
    }

    // The rare paths of post, out of line: inlined, their locks made every
    // post (a spawn, a wake-up) save and restore six registers.
    [[gnu::noinline]] void post_from_outside(std::coroutine_handle<> h) {
        push_global(h, /*from_outside=*/true);
        notify_work();
    }

    /// A full local queue: moves half of it, and h, to the global queue in
    /// one go.
    [[gnu::noinline]] void overflow_to_global(worker& w, std::coroutine_handle<> h) {
        std::lock_guard lock(global_mu_);
        w.queue.pop_half([&](std::coroutine_handle<> x) { global_push_locked(x); });
        global_push_locked(h);
    }

    /// A post from outside the pool counts as activity for the deadlock
    /// detector; a worker's own yield does not.
    void push_global(std::coroutine_handle<> h, bool from_outside) {
        std::lock_guard lock(global_mu_);
        global_push_locked(h);
        if (from_outside) external_posts_.fetch_add(1, std::memory_order_relaxed);
    }

    void global_push_locked(std::coroutine_handle<> h) {
        if (global_.full()) global_.grow();
        global_.emplace_back(h);
        // seq_cst: publishes the work for the wake-up protocol (top of file).
        global_size_.store(global_.size(), std::memory_order_seq_cst);
    }

    /// Takes one handle from the global queue to run and moves a fair share
    /// of the rest into the worker's local queue.
    std::coroutine_handle<> pop_global(worker& w) {
        if (global_size_.load(std::memory_order_acquire) == 0) return {};
        std::lock_guard lock(global_mu_);
        if (global_.empty()) return {};
        std::coroutine_handle<> first = global_.pop_front();
        // The share fits: only this worker adds to its queue, and thieves
        // only make more room.
        std::uint32_t share = std::uint32_t(std::min<std::size_t>(
            {global_.size() / workers_.size(), detail::local_queue::capacity / 2,
             detail::local_queue::capacity - w.queue.size()}));
        std::array<std::coroutine_handle<>, detail::local_queue::capacity / 2> batch;
        for (std::uint32_t i = 0; i < share; ++i) batch[i] = global_.pop_front();
        w.queue.push_batch(batch.data(), share);
        global_size_.store(global_.size(), std::memory_order_release);
        return first;
    }

    /// Work that `self` (or, given nullptr, any worker) could run: the
    /// global queue, every local queue, and its own affinity queue (or all
    /// of them). Another worker's affinity queue is not work for `self`:
    /// its owner serves it, or `self` takes it only after a search.
    bool any_work_visible(const worker* self = nullptr) const noexcept {
        if (global_size_.load(std::memory_order_seq_cst) != 0) return true;
        for (const auto& w : workers_) {
            if (!w.queue.empty()) return true;
            if ((!self || self == &w) && w.affine.size() != 0) return true;
        }
        return false;
    }

    // ---- contention affinity ----

    /// For a yield: if this resumption lost races on a buffered channel
    /// (`contended_losses` or more), queues `h` on the channel's home worker
    /// (detail/affinity.hpp), waking it if it sleeps; if it was resumed from
    /// this worker's affinity queue, back there, until it has had
    /// `affinity_quiet_limit` resumptions in a row without a lost race (a
    /// goroutine that stopped fighting over a channel becomes stealable
    /// again). False: an ordinary yield.
    [[gnu::noinline]] bool requeue_by_affinity(worker& w, std::coroutine_handle<> h) {
        const detail::contention_record seen = detail::read_contention();
        worker* home = nullptr;
        std::uint8_t quiet = 0;
        if (seen.losses >= contended_losses) {
            home = worker_at(seen.home);  // a home in another pool counts as none
            if (!home) home = &w;
        } else if (w.running_affine && w.running_quiet + 1 < affinity_quiet_limit) {
            home = &w;
            quiet = std::uint8_t(w.running_quiet + 1);
        } else {
            return false;
        }
        home->affine.push({h, quiet});
        if (home != &w) wake_if_idle(*home);
        else notify_for_affinity(w);
        return true;
    }

    /// A goroutine woken by one that lives in the affinity queue shares its
    /// channel (a partner on the other end, or a peer that parked on the
    /// same end): it joins the waker's worker there instead of the local
    /// queue, where another worker would take it back to the contended
    /// channel. (The one it displaced from the run-next slot is meant.)
    [[gnu::noinline]] void keep_by_affinity(worker& w, std::coroutine_handle<> h) {
        w.affine.push({h, 0});
        notify_for_affinity(w);
    }

    /// After a push into the worker's own affinity queue: wakes an idle
    /// worker, at most once per `affinity_notify_interval_ns`. That worker
    /// takes nothing while this one keeps serving the queue (try_steal), but
    /// if this one runs something long (a goroutine that computes or never
    /// yields), it takes half of the queue instead of leaving it waiting. A
    /// wake-up per push would cost a futex call every few microseconds on a
    /// busy channel; this bounds the wait of a kept goroutine instead.
    void notify_for_affinity(worker& w) {
        if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
        const std::int64_t now = detail::coarse_now_ns();
        if (now - w.affinity_notified_ns < affinity_notify_interval_ns) return;
        w.affinity_notified_ns = now;
        notify_work();
    }

    bool others_hold_affine(const worker& self) const noexcept {
        for (const auto& w : workers_)
            if (&w != &self && w.affine.size() != 0) return true;
        return false;
    }

    /// The worker of this pool at `p`, or nullptr (no dereference: `p` may
    /// name a worker of a pool that is gone).
    worker* worker_at(const void* p) noexcept {
        for (auto& w : workers_)
            if (static_cast<const void*>(&w) == p) return &w;
        return nullptr;
    }

    /// The oldest entry of the worker's affinity queue, marked for the yield
    /// that will follow its resumption.
    std::coroutine_handle<> take_affine(worker& w) {
        detail::affinity_queue::entry e;
        if (!w.affine.pop(e, std::chrono::steady_clock::now().time_since_epoch().count())) return {};
        w.running_affine = true;
        w.running_quiet = e.quiet_turns;
        return e.handle;
    }

    /// For a searching worker, before and after its pause (try_steal): the
    /// entries of an affinity queue whose owner did not serve it during the
    /// pause (it runs a goroutine that does not yield, or one that runs
    /// long) are not left waiting while this worker has nothing to do. Up
    /// to half of them move to this worker's local queue; it runs the first.
    void note_affine_progress(worker& w) {
        for (std::size_t i = 0; i < workers_.size(); ++i) w.affine_seen[i] = workers_[i].affine.served();
    }
    std::coroutine_handle<> steal_unserved_affine(worker& w) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            if (&workers_[i] == &w) continue;
            std::coroutine_handle<> first;
            const auto room = std::uint32_t(detail::local_queue::capacity - w.queue.size());
            workers_[i].affine.take_unserved(w.affine_seen[i], room, [&](std::coroutine_handle<> h) {
                if (!first) first = h;
                else w.queue.push(h);
            });
            if (first) return first;
        }
        return {};
    }

    /// Wakes `target` if it sleeps (after work was queued for it alone). The
    /// same protocol as notify_work: the push published the work (seq_cst)
    /// before this load of idle_count_.
    void wake_if_idle(worker& target) {
        if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
        bool in_poller = false;
        {
            std::lock_guard lock(idle_mu_);
            if (!target.idle) return;
            in_poller = polling_worker_ == &target;
            if (!in_poller) idle_.erase(std::find(idle_.begin(), idle_.end(), &target));
            target.idle = false;
            idle_count_.fetch_sub(1, std::memory_order_seq_cst);
            searching_.fetch_add(1, std::memory_order_seq_cst);  // it wakes up searching (leave_idle)
        }
        if (in_poller) poller_.interrupt();
        else target.parker.unpark();
    }

    // ---- the scheduling loop ----

    /// find_work's first look, inlined into the scheduling loop for its
    /// common case: a running worker that is not due for its periodic look
    /// at older work takes its run-next slot or its newest local entry, in
    /// find_work's order and with the same tick, without a call into
    /// find_work (a large function: saving and restoring its registers was
    /// about 18 instructions a goroutine, W5 on one worker, callgrind).
    /// Anything else (the periodic look, an empty local queue, a searching
    /// worker, a stopping pool) goes to find_work, whose own first look
    /// then counts the tick.
    std::coroutine_handle<> next_work(worker& w) {
        if (w.ticks_to_poll > 1 && !w.searching && !stopping_.load(std::memory_order_acquire)) {
            if (std::coroutine_handle<> h = take_newest_own(w)) {
                --w.ticks_to_poll;
                return h;
            }
        }
        return find_work(w);
    }

    /// The run-next slot, else the newest local entry (owner only): the
    /// common case of take_local_or_global, shared with next_work.
    std::coroutine_handle<> take_newest_own(worker& w) noexcept {
        if (w.runnext) return std::exchange(w.runnext, {});
        return w.queue.pop_newest();
    }

    [[gnu::noinline]] std::coroutine_handle<> find_work(worker& w) {
        for (;;) {
            if (stopping_.load(std::memory_order_acquire)) return {};
            if (std::coroutine_handle<> h = take_local_or_global(w)) {
                stop_searching(w);
                return h;
            }
            if (poll_io(w)) continue;  // ready fds woke goroutines onto this worker
            if (std::coroutine_handle<> h = try_steal(w)) {
                stop_searching(w);
                return h;
            }
            park(w);
        }
    }



    /// The order: the run-next slot, then the local queue newest first, then
    /// the global queue. Every `global_poll_interval` ticks, I/O and the
    /// global queue go first; and if the local queue has not been empty for
    /// `oldest_wait_limit`, its oldest entry runs, so nothing waits forever
    /// behind newer work (a ping-pong pair that keeps refilling the run-next
    /// slot, a goroutine that keeps spawning). The limit is in time rather
    /// than ticks so that a fork/join tree is not pulled out of depth-first
    /// order every few ticks: each oldest entry taken starts another branch,
    /// and a branch costs a frame per level of the tree.
    std::coroutine_handle<> take_local_or_global(worker& w) {
        if (--w.ticks_to_poll == 0) {  // a countdown: no division per look
            w.ticks_to_poll = global_poll_interval;
            if (!someone_in_epoll_.load(std::memory_order_relaxed)) poll_io(w);
            if (auto h = pop_global(w)) return h;
            if (auto h = take_affine(w)) return h;
            if (auto h = take_starving_oldest(w)) return h;
        }
        if (auto h = take_newest_own(w)) return h;
        if (auto h = take_affine(w)) return h;
        return pop_global(w);
    }

    /// The oldest local entry, if the queue has not been empty (nothing
    /// waiting) for oldest_wait_limit_ns since the last one was served.
    std::coroutine_handle<> take_starving_oldest(worker& w) {
        std::int64_t now = detail::coarse_now_ns();
        bool waiting = !w.queue.empty();
        if (waiting && now - w.oldest_served_ns < oldest_wait_limit_ns) return {};
        w.oldest_served_ns = now;
        return waiting ? w.queue.pop_oldest() : std::coroutine_handle<>{};
    }

    /// Looks for ready fds without blocking and wakes their goroutines (into
    /// this worker's queues). True if there were any.
    bool poll_io(worker& w) {
        if (!poller_.has_work_to_wait_for()) return false;
        if (poller_.sources() != 0) poller_.wait(*w.io_events, std::chrono::nanoseconds::zero());
        else w.io_events->count = 0;
        return poller_.dispatch(*w.io_events) != 0;
    }

    std::coroutine_handle<> try_steal(worker& w) {
        const std::size_t n = workers_.size();
        if (n == 1) return {};
        if (!w.searching) {
            // Throttle: at most half of the workers search at once.
            int s = searching_.load(std::memory_order_relaxed);
            if (2 * std::size_t(s) >= n) return {};
            searching_.fetch_add(1, std::memory_order_seq_cst);
            w.searching = true;
        }
        for (int round = 0; round < 4; ++round) {
            if (round == 3) {
                note_affine_progress(w);
                wait_without_looking();
            }
            std::size_t start = detail::random_below(std::uint32_t(n));
            for (std::size_t i = 0; i < n; ++i) {
                worker& victim = workers_[(start + i) % n];
                if (&victim == &w) continue;
                if (round < 3) wait_for_a_batch(victim.queue);
                if (auto h = victim.queue.steal_into(w.queue)) return h;
            }
            if (auto h = pop_global(w)) return h;
        }
        return steal_unserved_affine(w);
    }

    /// Before its last look, a searcher that found nothing waits for
    /// `search_pause` without touching any queue: it spins on the clock (no
    /// shared line), still holding its searching token, so new work wakes
    /// nobody else meanwhile; then it looks once more and, finding nothing,
    /// parks (park() looks again after registering as idle, so nothing is
    /// lost). Work that trickles in (a goroutine that the running one wakes
    /// just before it parks itself, a message at a time) is then mostly run
    /// by the worker that queued it, a microsecond later, with its frame and
    /// channels in that core's cache, instead of being stolen as soon as it
    /// appears and its lines pulled to the other core and back for every
    /// message. A busy pool is unaffected (a queue with work is found in the
    /// first rounds), and an idle one spins 25 microseconds per worker
    /// before it sleeps. Measured with two workers, medians of five
    /// alternating runs, without -> with the pause: W4a 196 -> 133 ns a
    /// message, bounded0_select_rx 199 -> 120, bounded0_mpsc 61 -> 38, W2 cap
    /// 0 56 -> 35, W5 95 -> 79, W7 53 -> 49 ms; W1, W3 and W8 unchanged
    /// within their spread (docs/runtime.md).
    void wait_without_looking() const noexcept { spin_for(search_pause); }

    /// A thief that finds only a few entries in a victim's queue (fewer than
    /// min_steal_batch) gives the victim `steal_patience` before it steals
    /// them. Stealing a handful costs the victim about as much as running
    /// them: the thief's CAS takes the queue word's line, and its reads the
    /// slots the victim is writing, so the victim's next pushes miss on both.
    /// A goroutine that spawns in a loop (W5) then lost half its speed to a
    /// thief that kept up with it three entries at a time (300,000 steals
    /// for a million goroutines); after the wait the thief finds a batch,
    /// or the victim has run the entries itself. Either way the wait touches
    /// no shared line, and it happens once per steal: the thief then takes
    /// whatever is there. Go's scheduler waits 3 microseconds in the same
    /// spirit before it steals a victim's run-next goroutine. Measured with
    /// two workers, medians of nine alternating runs, without -> with (64
    /// entries, 4 microseconds): W5 86 -> 47 ns a goroutine; W2 cap 0, W3
    /// cap 0, W4a, W7 and bounded0_select_rx unchanged within their spread.
    void wait_for_a_batch(const detail::local_queue& victim) const noexcept {
        const std::uint32_t n = victim.size();
        if (n != 0 && n < min_steal_batch) spin_for(steal_patience);
    }

    /// Spins on the clock for `d`, touching no shared line except the stop
    /// flag, which a running pool never writes.
    void spin_for(std::chrono::nanoseconds d) const noexcept {
        const auto deadline = std::chrono::steady_clock::now() + d;
        do {
            for (int i = 0; i < 32; ++i) detail::cpu_relax();
        } while (std::chrono::steady_clock::now() < deadline && !stopping_.load(std::memory_order_relaxed));
    }

    /// A searching worker that found work: if it was the last searcher,
    /// wake another so that more work, if any, is picked up (Go's
    /// resetspinning).
    void stop_searching(worker& w) {
        if (!w.searching) return;
        w.searching = false;
        if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1) notify_work();
    }

    void park(worker& w) {
        if (w.searching) {
            w.searching = false;
            searching_.fetch_sub(1, std::memory_order_seq_cst);
        }
        bool as_poller;
        {
            std::lock_guard lock(idle_mu_);
            w.idle = true;
            // The first worker to park while fds are registered sleeps in
            // epoll_wait; the others sleep on their futex.
            as_poller = !polling_worker_ && poller_.has_work_to_wait_for();
            if (as_poller) {
                polling_worker_ = &w;
                someone_in_epoll_.store(true, std::memory_order_relaxed);
            } else {
                idle_.push_back(&w);
            }
            idle_count_.fetch_add(1, std::memory_order_seq_cst);
        }
        // The rare side of the wake-up protocol's StoreLoad barrier (see
        // the top of the file): a push that our look below misses is one
        // whose poster sees us idle. A lone worker needs none: only it
        // pushes to its local queue, and posts from outside go through the
        // global queue's seq_cst size.
        if (workers_.size() > 1) detail::asymmetric_fence::heavy();
        w.io_events->count = 0;
        if (!any_work_visible(&w) && !stopping_.load(std::memory_order_seq_cst)) {
            // Goroutines kept in another worker's affinity queue are not ours
            // to take unless that worker stops serving them (try_steal), and
            // their pushes wake us at most once per interval
            // (notify_for_affinity): while there are any, look again after
            // that interval instead of sleeping until a post.
            const std::chrono::nanoseconds timeout = others_hold_affine(w)
                                                         ? std::chrono::nanoseconds(affinity_notify_interval_ns)
                                                         : std::chrono::nanoseconds(-1);
            if (as_poller) poller_.wait(*w.io_events, timeout);
            else if (deadlock_report_ && looks_deadlocked()) watch_for_deadlock(w);
            else if (timeout.count() > 0) w.parker.park_for(timeout);
            else w.parker.park();
        }
        leave_idle(w);
        if (!as_poller) return;
        // Not idle any more: the goroutines these events wake land in this
        // worker's run-next slot and queue, and a post does not try to wake us.
        poller_.dispatch(*w.io_events);
        // Hand the poller role over (Go's wakep after netpoll): if fds or
        // timers are still watched, an idle worker must take our place, or
        // they would wait until we are idle again, which a goroutine that
        // computes without yielding could put off indefinitely.
        if (poller_.has_work_to_wait_for()) notify_work();
    }

    // ---- deadlock detection ----

    bool looks_deadlocked() const {
        return idle_count_.load(std::memory_order_seq_cst) == workers_.size() &&
               pending_wakeups_.load(std::memory_order_seq_cst) == 0 &&
               detail::external_drivers.load(std::memory_order_seq_cst) == 0 && poller_.sources() == 0 &&
               goroutines_.any_alive() &&
               !any_work_visible();
    }

    /// The last worker to go idle while the pool looks deadlocked sleeps for
    /// the grace period; if it is still so afterwards and nothing was posted
    /// from outside meanwhile, the deadlock is reported.
    void watch_for_deadlock(worker& w) {
        std::uint64_t epoch = external_posts_.load(std::memory_order_relaxed);
        auto deadline = std::chrono::steady_clock::now() + deadlock_grace_;
        bool still_idle = true;
        // Sleep out the whole grace period: a leftover wake-up token or a
        // spurious wake-up must not cut it short.
        for (auto now = std::chrono::steady_clock::now(); still_idle && now < deadline;
             now = std::chrono::steady_clock::now()) {
            w.parker.park_for(deadline - now);
            std::lock_guard lock(idle_mu_);
            still_idle = w.idle;
        }
        if (!still_idle || stopping_.load(std::memory_order_acquire) || !looks_deadlocked() ||
            external_posts_.load(std::memory_order_relaxed) != epoch)
            return;
        if (deadlock_reported_.exchange(true)) return;
        deadlock_report_(goroutines_.describe());
        w.parker.park();  // until the pool is stopped
    }

    void leave_idle(worker& w) {
        std::lock_guard lock(idle_mu_);
        bool was_poller = polling_worker_ == &w;
        if (was_poller) {
            polling_worker_ = nullptr;
            someone_in_epoll_.store(false, std::memory_order_relaxed);
        }
        if (!w.idle) {
            // notify_work() took us off the list and counted us as searching.
            w.searching = true;
            return;
        }
        w.idle = false;
        if (!was_poller) idle_.erase(std::find(idle_.begin(), idle_.end(), &w));
        idle_count_.fetch_sub(1, std::memory_order_seq_cst);
    }

    /// Wakes one idle worker to look for work, unless one is searching already.
    /// The check is inline (every spawn makes it, and a busy pool has no idle
    /// worker); the wake-up is not.
    void notify_work() {
        detail::asymmetric_fence::light();  // after the push, before this look (see the top of the file)
        if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
        wake_an_idle_worker();
    }

    [[gnu::noinline]] void wake_an_idle_worker() {
        int zero = 0;
        if (!searching_.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
        worker* w = nullptr;
        bool in_poller = false;
        {
            std::lock_guard lock(idle_mu_);
            if (!idle_.empty()) {
                w = idle_.back();
                idle_.pop_back();
            } else if (polling_worker_ && polling_worker_->idle) {
                w = polling_worker_;  // the only idle worker sleeps in epoll_wait
                in_poller = true;
            }
            if (w) {
                w->idle = false;
                idle_count_.fetch_sub(1, std::memory_order_seq_cst);
            }
        }
        if (!w) {
            // Everyone got busy meanwhile; they will find the work.
            searching_.fetch_sub(1, std::memory_order_seq_cst);
            return;
        }
        // It wakes up searching (see leave_idle).
        if (in_poller) poller_.interrupt();
        else w->parker.unpark();
    }

    poller poller_;  // before the workers, which use it from the start
    std::vector<worker> workers_;

    detail::spin_mutex global_mu_;
    detail::ring_buffer<std::coroutine_handle<>> global_;
    std::atomic<std::size_t> global_size_{0};

    std::mutex idle_mu_;
    std::vector<worker*> idle_;  // reserved up front: never allocates after start
    worker* polling_worker_ = nullptr;  // the idle worker in epoll_wait (not in idle_)
    // A hint, written under idle_mu_ and read relaxed by busy workers to skip
    // their periodic non-blocking poll: a stale value costs one extra poll or
    // delays one by 61 ticks, never a lost event (the sleeper in epoll_wait
    // or the next idle worker still harvests it).
    std::atomic<bool> someone_in_epoll_{false};
    std::atomic<std::size_t> idle_count_{0};
    std::atomic<int> searching_{0};
    std::atomic<bool> stopping_{false};

    std::atomic<long> pending_wakeups_{0};
    std::atomic<std::uint64_t> external_posts_{0};
    std::function<void(std::string)> deadlock_report_;
    std::chrono::milliseconds deadlock_grace_{50};
    std::atomic<bool> deadlock_reported_{false};

    detail::goroutine_registry goroutines_{"work_stealing_pool"};
};

}  // namespace csp
