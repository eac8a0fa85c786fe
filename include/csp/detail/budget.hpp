// csp/detail/budget.hpp - the cooperative budget (tokio's idea).
//
// A channel operation that can complete at once does not suspend, so a
// goroutine on an always-ready channel could keep its worker forever,
// starving the other goroutines, timers and I/O there. Each thread has a
// budget of operations per resumption; an operation that finds it spent
// completes as usual and then yields (re-queues its coroutine behind the
// others) instead of continuing. Executors refill it on every resumption.
//
// The counter is thread-local but only touched inside non-inlined functions
// (these, and the channel awaiters' continue_or_yield, which inlines
// spend_budget_unit), so no compiler can cache its address across a
// co_await. The same goes for the other per-resumption fact kept here:
// whether a goroutine ended during the resumption (work_stealing_pool's
// run-next rule, after_goroutine_ended, reads it).
#pragma once

#include "affinity.hpp"

namespace csp::detail {

inline constexpr int budget_per_resumption = 128;
inline thread_local int budget_left = budget_per_resumption;

/// Spends one unit; false when the caller should yield now. Only for the
/// body of a non-inlined function (see the top); others call consume_budget.
[[gnu::always_inline]] inline bool spend_budget_unit() noexcept {
    if (--budget_left > 0) return true;
    budget_left = budget_per_resumption;
    return false;
}
[[gnu::noinline]] inline bool consume_budget() noexcept { return spend_budget_unit(); }

[[gnu::noinline]] inline void refill_budget() noexcept { budget_left = budget_per_resumption; }

/// Set on a thread when a goroutine ends there (its root frame is freed).
inline thread_local bool goroutine_ended_here = false;
[[gnu::noinline]] inline void note_goroutine_ended() noexcept { goroutine_ended_here = true; }

/// For an executor, after each resumption: refills the budget for the next
/// one and says whether a goroutine ended during this one (and forgets it).
/// One call where there would be two (work_stealing_pool::run_worker).
[[gnu::noinline]] inline bool finish_resumption() noexcept {
    budget_left = budget_per_resumption;
    current_contention.losses = 0;  // (its `home` means nothing without losses)
    bool ended = goroutine_ended_here;
    goroutine_ended_here = false;
    return ended;
}

}  // namespace csp::detail
