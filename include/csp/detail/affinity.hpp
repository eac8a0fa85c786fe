// csp/detail/affinity.hpp - contention affinity: what a resumption learned
// about goroutines on other workers fighting over the same channel.
//
// Two workers that run goroutines on the same busy buffered channel at the
// same moment move the channel's position words between their cores on
// almost every operation: 70-100 ns a transfer on the reference machine,
// against about 20 ns for the whole operation when the line stays in one
// core's cache (docs/performance.md, the note on W3). Neither more
// backoff nor a bigger budget removes that; only running those goroutines
// on one worker does. So a ring operation that loses a CAS race records it
// here, with the channel's *home*: the first worker that ever lost a race
// on that channel claims it as the home (a relaxed CAS on a word in the
// ring's padding, once per channel). When the goroutine then yields (its
// cooperative budget spent, or csp::yield) after several such losses in
// one resumption, work_stealing_pool re-queues it on the home worker's
// affinity queue instead of its own local queue; goroutines there are not
// stolen (unless their worker stops serving them, or its turns grow long:
// detail/affinity_queue.hpp), so contending goroutines gather on one worker
// and stay there while they keep yielding. The policy is in
// work_stealing_pool (requeue_by_affinity); docs/runtime.md has the design
// and the measurements.
//
// Everything here is per thread and per resumption, touched only through
// non-inlined functions (like budget.hpp), so that no compiler caches a
// thread-local address across a suspension point.
#pragma once

#include <atomic>
#include <cstdint>

namespace csp::detail {

/// What the current resumption has seen (reset by finish_resumption).
struct contention_record {
    int losses = 0;        ///< ring operations that lost a CAS race
    void* home = nullptr;  ///< the home of the channel of the last loss
};

inline thread_local contention_record current_contention{};
/// The identity of the scheduler thread running here (a work_stealing_pool
/// worker), or nullptr on any other thread: a loss there records nothing.
inline thread_local void* affinity_self = nullptr;

[[gnu::noinline]] inline void set_affinity_self(void* self) noexcept { affinity_self = self; }

/// Called by a ring operation that lost a CAS race on a channel whose home
/// word is `home`. The word is only ever changed from null, so a relaxed
/// CAS suffices: it carries no data, and a stale null only makes a second
/// worker try (and fail) to claim it.
[[gnu::noinline]] inline void note_contention(std::atomic<void*>& home) noexcept {
    void* self = affinity_self;
    if (!self) return;
    void* owner = home.load(std::memory_order_relaxed);
    if (!owner && home.compare_exchange_strong(owner, self, std::memory_order_relaxed)) owner = self;
    ++current_contention.losses;
    current_contention.home = owner;
}

/// For the pool's yield: what the resumption saw so far.
[[gnu::noinline]] inline contention_record read_contention() noexcept { return current_contention; }

}  // namespace csp::detail
