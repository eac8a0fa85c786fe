// csp/detail/waiter.hpp - the shared waiting and hand-off machinery.
//
// Every blocking operation (a send, a receive, a wait on a wait_group, or a
// whole select) that cannot complete at once parks itself as one
// `blocked_op`, and enqueues one `waiter` per channel it waits on: a plain
// send or receive has one waiter, a select over k cases has k waiters that
// all point at the same blocked_op. Both live in the awaiting coroutine's
// frame (inside its awaiter), so blocking allocates nothing.
//
// A counterpart that finds a waiter in a queue must *claim* its blocked_op
// before it transfers anything: one compare-and-swap of `fired` from
// `not_fired` to the waiter's case index. Exactly one claim can succeed, so
// exactly one case of a select completes; a waiter whose op was already
// claimed through another channel is stale and is simply dropped. This is
// the design of Go's `selectDone` and crossbeam's `Context::try_select`.
//
// Lifetime rule: every access to a waiter by anyone but its owner happens
// with the lock of the queue it is (or was) in held, and that includes the
// wake-up (posting the handle to the owner's executor). An owner that is
// destroyed while blocked (runtime shutdown) takes the same locks to unlink
// its waiters, so it can never free a frame that a counterpart is using.
#pragma once

#include <atomic>
#include <coroutine>

#include "../executor.hpp"

namespace csp::detail {

/// Outcome that a counterpart reports to a waiter it completed.
enum class wait_status : unsigned char { pending, ok, closed };

/// One suspended operation (a plain channel operation or a whole select).
struct blocked_op {
    static constexpr int not_fired = -1;
    /// The case index of the one waiter of an op that has no other (a
    /// plain channel operation, a wait_group wait): see sole_waiter below.
    static constexpr int sole_case = -2;

    std::coroutine_handle<> handle;
    executor_ref executor;
    /// Index of the case that completed, or not_fired. Last, so that an
    /// awaiter can keep a flag in the tail padding after it.
    std::atomic<int> fired{not_fired};

    /// Claims the op for `case_index`. Called with the lock of the queue
    /// holding the waiter. acq_rel: a successful claim orders after the
    /// owner's arming (which published the waiter under the same or another
    /// queue's lock) and before the transfer; a failed claim acquires the
    /// winner's write so the loser sees the op as taken.
    bool try_claim(int case_index) noexcept {
        int expected = not_fired;
        return fired.compare_exchange_strong(expected, case_index, std::memory_order_acq_rel,
                                             std::memory_order_acquire);
    }

    /// Resumes the owner on its own executor.
    void wake() const { executor.post(handle); }
};

/// One case of a blocked operation, queued on one channel (or wait_group).
struct waiter {
    waiter() noexcept : prev(nullptr), next(nullptr), op(nullptr), case_index(0), status(wait_status::pending) {}

    /// A waiter whose owner sets `op`, `case_index` and `status` before it
    /// queues it, and reads nothing but `queued` before that: a channel
    /// operation, which usually completes without waiting, so that building
    /// one (a select builds one per case) costs a single store here.
    struct filled_when_armed_t {};
    explicit waiter(filled_when_armed_t) noexcept {}

    // Set by wait_queue::push_back.
    waiter* prev;
    waiter* next;
    blocked_op* op;
    int case_index;
    /// Written by the counterpart that completes this waiter.
    wait_status status;
    /// True while linked in a wait_queue. Only read or written under that
    /// queue's lock.
    bool queued = false;
};

/// An intrusive FIFO of waiters. Not synchronised: its owner's lock guards it.
///
/// The one exception is may_hold_waiters(), a peek without the lock that a
/// select uses to skip, before it takes any lock, a channel on which no
/// counterpart waits. For that the head is an atomic, always accessed
/// relaxed: under the lock it is an ordinary variable (a plain load or store
/// on every target csp supports), and the peek is not a data race.
class wait_queue {
public:
    bool empty() const noexcept { return head() == nullptr; }

    /// Without the lock: false if the queue was empty at some recent moment.
    /// A hint only; a waiter may be queued or dequeued right after the
    /// peek, and a queued waiter may be stale (its op fired elsewhere).
    bool may_hold_waiters() const noexcept { return head() != nullptr; }

    void push_back(waiter& w) noexcept {
        w.prev = tail_;
        w.next = nullptr;
        if (tail_) tail_->next = &w; else set_head(&w);
        tail_ = &w;
        w.queued = true;
    }

    /// Unlinks `w` if it is still queued (idempotent).
    void remove(waiter& w) noexcept {
        if (!w.queued) return;
        if (w.prev) w.prev->next = w.next; else set_head(w.next);
        if (w.next) w.next->prev = w.prev; else tail_ = w.prev;
        w.prev = w.next = nullptr;
        w.queued = false;
    }

    /// Dequeues the first waiter whose op this caller manages to claim, or
    /// returns nullptr. Stale waiters (their op fired elsewhere) are dropped
    /// on the way: their owners will find them unqueued and skip them.
    waiter* claim_front() noexcept {
        while (waiter* w = head()) {
            remove(*w);
            if (sole_waiter(*w) || w->op->try_claim(w->case_index)) return w;
        }
        return nullptr;
    }

    /// A waiter armed as case blocked_op::sole_case is the only way to its
    /// op: no other queue and no timer holds the op, and its owner never
    /// reads `fired`. Everything that touches it (this claim, the owner's
    /// unlinking) happens under this queue's lock, so whoever dequeues it
    /// has claimed it, without the compare-and-swap (an atomic
    /// read-modify-write, a few nanoseconds, saved on every wake-up of a
    /// plain send, receive or wait).
    static bool sole_waiter(const waiter& w) noexcept { return w.case_index == blocked_op::sole_case; }

private:
    // relaxed: the lock orders every access but may_hold_waiters' peek,
    // which needs no ordering (it only decides whether to take the lock).
    waiter* head() const noexcept { return head_.load(std::memory_order_relaxed); }
    void set_head(waiter* w) noexcept { head_.store(w, std::memory_order_relaxed); }

    std::atomic<waiter*> head_{nullptr};
    waiter* tail_ = nullptr;
};

/// Completes a claimed waiter: records the outcome and wakes its owner.
/// Called with the queue's lock held (see the lifetime rule above).
inline void complete(waiter& w, wait_status s) {
    w.status = s;
    w.op->wake();
}

}  // namespace csp::detail
