// csp/select.hpp - csp::select: wait on several channel operations, complete exactly one.
//
//   auto r = co_await csp::select(jobs.recv(), results.send(x), csp::default_case);
//   switch (r.index()) {
//   case 0: use(r.get<0>()); break;   // std::optional<Job>& (nullopt: jobs closed)
//   case 1: break;                    // x was sent
//   case 2: break;                    // nothing was ready
//   }
//
// The algorithm is Go's (runtime/select.go), on the waiting machinery of
// detail/waiter.hpp, after a fast path (complete_one_at_a_time, run from
// await_ready, so that a select that completes at once never suspends) that
// tries the cases in a random order one lock at a time (skipping, without
// the lock, a buffered channel its lock-free path answers for and an
// unbuffered one where no counterpart waits) and completes the first ready
// one; only if none is ready:
//  1. Lock every distinct channel of the select, in address order (a global
//     order, so two selects over the same channels cannot deadlock).
//  2. Visit the cases in a uniformly random order (argument order for
//     select_biased) and complete the first that can complete now: a
//     receive from a waiting sender or the buffer, or from a closed channel
//     (nullopt); a send to a waiting receiver or into the buffer, or to a
//     closed channel (which throws channel_closed, as Go panics). Nothing is
//     taken from or given to any other case.
//  2b. If a case is on a buffered channel, its buffer can still change
//     under the lock, through the channel's lock-free path: raise the
//     gates of every such case (G2 in detail/channel_state.hpp) and repeat
//     step 2. Now a case found not ready stays so until the locks are
//     released, so "none is ready" is a fact for steps 3 and 4. If a case
//     completes, or step 3 chooses the default, lower the gates again.
//  3. If none can and there is a default_case, choose it.
//  4. Otherwise queue one waiter per case, all pointing at one blocked_op,
//     unlock and suspend. Every counterpart must claim the blocked_op (one
//     compare-and-swap) before it transfers a value, so exactly one case
//     fires; waiters of the other cases are stale from that moment on and no
//     counterpart can use them.
//  5. When woken, unlink the remaining waiters, one channel at a time
//     (no one can claim them any more, so they need not be locked together).
// A select's own waiters are queued together only after step 2 failed for
// all of them, so a select never matches its own send with its own receive.
//
// Cost: steps 1 and 4/5 are O(k) lock operations for k cases, plus sorting
// the k channel addresses (insertion sort on the stack for up to 16 cases,
// std::sort beyond). Cases of one type (the usual select over receives of
// one T) are reached through an array, other mixes through a chain of
// branches on the case's position, which the random order mispredicts. Nothing is allocated: the waiters live in the select's
// awaiter, in the coroutine frame (a runtime-sized select over more than 16
// cases allocates two scratch arrays per call).
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <ranges>
#include <span>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "channel.hpp"
#include "detail/budget.hpp"
#include "detail/random.hpp"
#include "detail/small_buffer.hpp"
#include "detail/spin_mutex.hpp"
#include "detail/waiter.hpp"
#include "executor.hpp"

namespace csp {

/// The case that makes a select non-blocking: chosen when no other case can
/// complete at once.
struct default_case_t {
    explicit constexpr default_case_t() = default;
};
inline constexpr default_case_t default_case{};

/// What a case type must provide to take part in a select. The channel
/// awaiters (ch.recv(), ch.send(v)) are cases; timers will be too.
template <class C>
concept select_case = requires(C& c, detail::blocked_op& op, int index) {
    typename C::case_result_type;
    { c.case_mutex() } -> std::same_as<detail::spin_mutex*>;  // null: never ready (nil channel)
    { c.case_try_locked() } -> std::same_as<bool>;            // complete now if possible
    c.case_arm_locked(op, index);                             // queue a waiter for op
    c.case_disarm();                                          // unlink it (takes the lock)
    c.case_woken();                                           // a counterpart completed it
    { c.case_result() } -> std::same_as<typename C::case_result_type>;
};

/// The result of a select over a fixed list of cases: which case fired and,
/// for a receive case, what it received.
template <class... Rs>
class select_result {
public:
    template <std::size_t I, class... A>
    explicit select_result(std::in_place_index_t<I> i, A&&... a) : value_(i, std::forward<A>(a)...) {}

    /// The position (in the select's argument list) of the case that fired.
    std::size_t index() const noexcept { return value_.index(); }

    /// The fired case's value: for a receive case a std::optional<T>
    /// (nullopt: the channel was closed), std::monostate for the others.
    /// Throws std::bad_variant_access if case I did not fire.
    template <std::size_t I>
    auto& get() & {
        return std::get<I>(value_);
    }
    template <std::size_t I>
    const auto& get() const& {
        return std::get<I>(value_);
    }
    template <std::size_t I>
    auto&& get() && {
        return std::get<I>(std::move(value_));
    }

private:
    std::variant<Rs...> value_;
};

/// The result of a select over a runtime-sized list of cases.
template <class R>
class dynamic_select_result {
public:
    dynamic_select_result(std::size_t index, std::optional<R> value) : index_(index), value_(std::move(value)) {}

    /// Position of the fired case in the list; the list's size if the
    /// default case was chosen.
    std::size_t index() const noexcept { return index_; }
    /// The fired case's value (std::optional<T> for a receive case).
    /// Throws std::bad_variant_access if the default case was chosen.
    R& value() {
        if (!value_) throw std::bad_variant_access();
        return *value_;
    }

private:
    std::size_t index_;
    std::optional<R> value_;
};

namespace detail {

template <class C>
inline constexpr bool is_default_case = std::is_same_v<std::remove_cvref_t<C>, default_case_t>;

/// The locks of a select's distinct channels, sorted so that every select
/// takes them in the same global order.
template <std::size_t N>
class select_locks {
public:
    template <class MutexOf>
    select_locks(std::size_t cases, MutexOf mutex_of) : locks_(cases) {
        if (cases <= N) {
            for (std::size_t i = 0; i < cases; ++i)
                if (spin_mutex* m = mutex_of(i)) insert(m);
            return;
        }
        // A long runtime-sized list: sort once instead.
        for (std::size_t i = 0; i < cases; ++i)
            if (spin_mutex* m = mutex_of(i)) locks_[n_++] = m;
        std::sort(locks_.begin(), locks_.begin() + n_, std::less<spin_mutex*>());
        n_ = std::size_t(std::unique(locks_.begin(), locks_.begin() + n_) - locks_.begin());
    }
    void lock_all() noexcept {
        for (std::size_t i = 0; i < n_; ++i) locks_[i]->lock();
    }
    void unlock_all() noexcept {
        for (std::size_t i = n_; i-- > 0;) locks_[i]->unlock();
    }

private:
    // Insertion into the sorted prefix, skipping duplicates (the same
    // channel in several cases is locked once).
    void insert(spin_mutex* m) noexcept {
        std::size_t i = n_;
        while (i > 0 && std::less<spin_mutex*>()(m, locks_[i - 1])) --i;
        if (i > 0 && locks_[i - 1] == m) return;
        for (std::size_t j = n_; j > i; --j) locks_[j] = locks_[j - 1];
        locks_[i] = m;
        ++n_;
    }

    small_buffer<spin_mutex*, N> locks_;
    std::size_t n_ = 0;
};

inline constexpr int default_fired = -2;

/// Step 2b for one case: cases on buffered channels have gates to raise
/// (and settle); timers and I/O waits have no lock-free path to shut.
template <class C>
bool case_gate(C& c) noexcept {
    if constexpr (requires { c.case_gate_locked(); }) return c.case_gate_locked();
    else return false;
}
template <class C>
void case_settle(C& c) noexcept {
    if constexpr (requires { c.case_settle_locked(); }) c.case_settle_locked();
}
/// Step 0's lock-free attempt, for the cases that have one: a buffered
/// channel's lock-free path, or, for an unbuffered one, a peek that finds
/// no counterpart waiting (not_ready: skip the case without its lock).
template <class C>
ring_result case_fast(C& c) noexcept {
    ring_result r = ring_result::refused;
    if constexpr (requires { c.case_try_fast(); }) r = c.case_try_fast();
    if constexpr (requires { c.case_may_be_ready(); })
        if (r == ring_result::refused && !c.case_may_be_ready()) r = ring_result::not_ready;
    return r;
}

inline constexpr wait_kind select_kind{"select"};

/// A select that completed at once still yields when the thread's
/// cooperative budget is spent (detail/budget.hpp). True if it re-queued `h`.
inline bool yield_if_budget_spent(std::coroutine_handle<> h) {
    if (!should_yield()) return false;
    current_executor().post_yield(h);
    return true;
}

/// Tries case i as a non-blocking operation: a buffered channel's lock-free
/// path first, which completes the case, or says it was not ready at some
/// moment (skip it, as a locked try would have; a nil case never is), or
/// refers us to the lock. An unbuffered channel on which no counterpart
/// waits is skipped the same way, without its lock. True if the case
/// completed.
template <class Cases>
bool try_case_at_once(Cases& cases, std::size_t i) {
    ring_result fast = cases.try_fast(i);
    if (fast != ring_result::refused) return fast == ring_result::done;
    spin_mutex* m = cases.mutex(i);
    if (!m) return false;
    m->lock();
    bool done = cases.try_locked(i);
    m->unlock();
    return done;
}

/// The fast path of step 2: visits the cases in `order` taking one lock at a
/// time (none for a buffered channel whose lock-free path answers, nor for
/// an unbuffered one where no counterpart waits), and
/// completes the first that can complete. Each attempt is an
/// ordinary non-blocking operation under its channel's lock, so a success
/// is a valid outcome of the select at that moment, and visiting in a
/// uniformly random order picks uniformly among the cases that are ready
/// throughout. A select whose ready case is found here takes one lock pair
/// per case visited instead of every lock and a sort (crossbeam's select
/// also tries operations one by one first). Failing here proves nothing
/// (a case may have become ready behind us), so the caller then runs the
/// locked pass, which alone may choose the default case or park.
template <class Cases, class Order>
bool complete_one_at_a_time(Cases& cases, Order& order, int& fired) {
    if (order.size() < 2) return false;  // the locked pass is as cheap
    for (std::uint32_t i : order) {
        if (try_case_at_once(cases, i)) {
            fired = int(i);
            return true;
        }
    }
    return false;
}

/// Step 2 (and 2b): visits the cases in `order` and completes the first
/// that can complete now; all their locks are held.
template <class Cases, class Order>
bool try_each_locked(Cases& cases, Order& order, int& fired) {
    for (std::uint32_t i : order) {
        if (cases.mutex(i) && cases.try_locked(i)) {
            fired = int(i);
            return true;
        }
    }
    return false;
}

/// Step 2b: raises the gates of every case on a buffered channel. True if
/// there was any.
template <class Cases>
bool gate_all_locked(Cases& cases) {
    bool any = false;
    for (std::size_t i = 0; i < cases.size(); ++i)
        if (cases.mutex(i) && cases.gate_locked(i)) any = true;
    return any;
}

/// Lowers what gate_all_locked raised, for a select that will not park.
template <class Cases>
void settle_all_locked(Cases& cases) {
    for (std::size_t i = 0; i < cases.size(); ++i)
        if (cases.mutex(i)) cases.settle_locked(i);
}

/// The order in which a select visits its cases: uniformly random (every
/// permutation equally likely), or argument order for select_biased.
template <class Order>
void choose_case_order(Order& order, bool biased) noexcept {
    using index = std::remove_reference_t<decltype(order[0])>;
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = index(i);
    if (!biased && order.size() > 1) shuffle_with_few_draws(order.begin(), order.size());
}

/// Steps 1-4 of the algorithm above, for any list of cases, after the fast
/// path (complete_one_at_a_time) failed with the same `order`. `Cases` gives
/// size(), mutex(i), try_locked(i), arm_locked(i, op) and note_parked()
/// (records the wait for goroutine dumps; only a select that parks pays for
/// it). Returns true if the caller must stay suspended (its waiters are
/// armed); otherwise `fired` holds the completed case, or default_fired.
///
/// Every write to the awaiter (`fired`, `armed`, `op`) happens before the
/// locks are released: after that, a counterpart may resume the coroutine
/// on another thread, so only locals of this function are touched.
template <std::size_t N, class Cases, class Order>
bool select_start(Cases& cases, Order& order, bool has_default, blocked_op& op, std::coroutine_handle<> h,
                  int& fired, bool& armed) {
    const std::size_t k = cases.size();
    select_locks<N> locks(k, [&](std::size_t i) { return cases.mutex(i); });
    locks.lock_all();
    if (try_each_locked(cases, order, fired)) {
        locks.unlock_all();
        return false;
    }
    executor_ref ex = current_executor();
    if (gate_all_locked(cases)) {
        bool done = try_each_locked(cases, order, fired);
        if (done || has_default || !ex) settle_all_locked(cases);  // not parking: the gates go down
        if (done) {
            locks.unlock_all();
            return false;
        }
    }
    if (has_default) {
        fired = default_fired;
        locks.unlock_all();
        return false;
    }
    if (!ex) {
        locks.unlock_all();
        require_current_executor("a blocking csp::select");
    }
    cases.note_parked();  // before arming: once armed, the goroutine may resume and unpark
    op.fired.store(blocked_op::not_fired, std::memory_order_relaxed);  // the awaiter may be reused
    op.handle = h;
    op.executor = ex;
    // Armed in the same random order, so that a counterpart finding several
    // of our cases on one channel takes either (Go's TestPseudoRandomSend).
    for (std::uint32_t i : order)
        if (cases.mutex(i)) cases.arm_locked(i, op);
    armed = true;
    locks.unlock_all();  // the coroutine may be resumed from here on
    return true;
}

/// Step 5: which case fired, with every waiter unlinked.
template <class Cases>
int select_finish(Cases& cases, blocked_op& op) {
    // acquire: pairs with the claimer's compare-and-swap; the transfer it
    // made into our case is also ordered by the executor's queue.
    int fired = op.fired.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < cases.size(); ++i) cases.disarm(i);
    cases.woken(std::size_t(fired));
    return fired;
}

/// How a select_awaiter refers to a case: the argument itself, which lives
/// until the end of the full expression that awaits the select.
template <class C>
using case_ref = std::conditional_t<is_default_case<C>, const C&, C&>;

template <class C>
struct case_result_of {
    using type = typename C::case_result_type;
};
template <>
struct case_result_of<default_case_t> {
    using type = std::monostate;
};

/// select over the fixed list of cases given as arguments.
template <bool Biased, class... Cases>
class select_awaiter {
    static constexpr std::size_t N = sizeof...(Cases);
    static constexpr std::size_t defaults = (std::size_t(is_default_case<Cases>) + ... + 0);
    static_assert(N > 0,
                  "csp::select() needs at least one case (a select with no cases would block forever; "
                  "co_await a nil channel's recv() if that is really what you want)");
    static_assert(defaults <= 1, "csp::select accepts at most one default_case");
    static_assert(((is_default_case<Cases> || select_case<Cases>) && ...),
                  "csp::select cases are ch.recv(), ch.send(v) and csp::default_case");

public:
    using result_type = select_result<typename case_result_of<Cases>::type...>;

    template <class... A>
    explicit select_awaiter(A&... cases) noexcept : cases_(case_storage_of(cases...)) {}
    select_awaiter(select_awaiter&& other) noexcept : cases_(other.cases_) {
        if (other.armed_) std::terminate();  // never moved once awaited
    }
    select_awaiter& operator=(select_awaiter&&) = delete;
    ~select_awaiter() {
        // Destroyed while parked (the coroutine is destroyed at shutdown):
        // unlink every waiter now, while op_ still exists; the cases are
        // destroyed after us.
        if (armed_)
            for (std::size_t i = 0; i < N; ++i) disarm(i);
    }

    /// The fast path, before anything is prepared for suspending: a select
    /// whose case completes here (the common case of a busy server) costs
    /// no more than the channel operations it tries.
    bool await_ready() {
        choose_case_order(order_, Biased);  // kept for the locked pass
        if (!complete_one_at_a_time(*this, order_, fired_)) return false;
        if (!should_yield()) return true;
        yield_instead_ = true;  // completed, but the budget is spent: await_suspend re-queues
        return false;
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        if (yield_instead_) {
            yield_instead_ = false;
            current_executor().post_yield(h);
            return true;
        }
        goroutine_ = goroutine_of(h);
        if (select_start<N>(*this, order_, defaults != 0, op_, h, fired_, armed_)) return true;
        return yield_if_budget_spent(h);  // true: re-queued, stay suspended
    }
    result_type await_resume() {
        note_.unpark();
        if (armed_) {
            armed_ = false;
            fired_ = select_finish(*this, op_);
        }
        if constexpr (defaults != 0)
            if (fired_ == default_fired) return result_with(std::integral_constant<std::size_t, default_index()>{});
        return dispatch(std::size_t(fired_), [&](auto i) { return result_with(i); });
    }

    // The table interface of select_start/select_finish.
    std::size_t size() const noexcept { return N; }
    void note_parked() noexcept { note_.park(goroutine_, select_kind, nullptr, N); }
    spin_mutex* mutex(std::size_t i) noexcept {
        return on_case(i, static_cast<spin_mutex*>(nullptr), [](auto& c, int) { return c.case_mutex(); });
    }
    bool try_locked(std::size_t i) noexcept {
        return on_case(i, false, [](auto& c, int) { return c.case_try_locked(); });
    }
    void arm_locked(std::size_t i, blocked_op& op) noexcept {
        on_case(i, [&](auto& c, int index) { c.case_arm_locked(op, index); });
    }
    ring_result try_fast(std::size_t i) noexcept {
        return on_case(i, ring_result::refused, [](auto& c, int) { return case_fast(c); });
    }
    bool gate_locked(std::size_t i) noexcept {
        return on_case(i, false, [](auto& c, int) { return case_gate(c); });
    }
    void settle_locked(std::size_t i) noexcept {
        on_case(i, [](auto& c, int) { case_settle(c); });
    }
    void disarm(std::size_t i) noexcept {
        on_case(i, [](auto& c, int) { c.case_disarm(); });
    }
    void woken(std::size_t i) noexcept {
        on_case(i, [](auto& c, int) { c.case_woken(); });
    }

private:
    static constexpr std::size_t default_index() noexcept {
        constexpr bool is_default[] = {is_default_case<Cases>...};
        std::size_t i = 0;
        while (i < N && !is_default[i]) ++i;
        return i;
    }

    /// f(case i, i) for a channel (or timer) case; `otherwise` for the
    /// default case, which has none of the case interface.
    template <class R, class F>
    R on_case(std::size_t i, R otherwise, F&& f) {
        if constexpr (uniform) {
            return f(*cases_[i], int(i));
        } else {
            return dispatch(i, [&](auto c) -> R {
                if constexpr (is_default_case<std::tuple_element_t<c, std::tuple<Cases...>>>) return otherwise;
                else return f(case_at<c>(), int(c));
            });
        }
    }
    template <class F>
    void on_case(std::size_t i, F&& f) {
        on_case(i, 0, [&](auto& c, int index) {
            f(c, index);
            return 0;
        });
    }

    /// Calls f(integral_constant<I>) for the runtime index i (< N).
    template <std::size_t I = 0, class F>
    static decltype(auto) dispatch(std::size_t i, F&& f) {
        if constexpr (I + 1 == N) {
            return f(std::integral_constant<std::size_t, I>{});
        } else {
            if (i == I) return f(std::integral_constant<std::size_t, I>{});
            return dispatch<I + 1>(i, std::forward<F>(f));
        }
    }

    template <std::size_t I>
    result_type result_with(std::integral_constant<std::size_t, I>) {
        using C = std::tuple_element_t<I, std::tuple<Cases...>>;
        if constexpr (is_default_case<C>) return result_type(std::in_place_index<I>);
        else return result_type(std::in_place_index<I>, case_at<I>().case_result());
    }

    // Cases all of one type (receives from several channels of one T, the
    // usual shape) are kept in an array, so that case i is an index, not a
    // chain of branches on i that a random visiting order mispredicts.
    using first_case = std::tuple_element_t<0, std::tuple<Cases...>>;
    static constexpr bool uniform = defaults == 0 && (std::is_same_v<first_case, Cases> && ...);
    using case_storage = std::conditional_t<uniform, std::array<first_case*, N>, std::tuple<case_ref<Cases>...>>;
    template <class... A>
    static case_storage case_storage_of(A&... cases) noexcept {
        if constexpr (uniform) return case_storage{&cases...};
        else return case_storage(cases...);
    }
    template <std::size_t I>
    auto& case_at() noexcept {
        if constexpr (uniform) return *cases_[I];
        else return std::get<I>(cases_);
    }

    blocked_op op_;
    // The cases themselves are the caller's temporaries (see select()).
    case_storage cases_;
    int fired_ = -1;
    bool armed_ = false;
    bool yield_instead_ = false;
    std::array<std::conditional_t<(N <= 256), std::uint8_t, std::uint32_t>, N> order_;  // set by await_ready
    goroutine_node* goroutine_ = nullptr;  // the goroutine awaiting this select, for note_parked()
    wait_note note_;
};

/// select over a runtime-sized list of cases of one type (Go's reflect.Select).
template <bool Biased, select_case C>
class dynamic_select_awaiter {
public:
    using result_type = dynamic_select_result<typename C::case_result_type>;

    dynamic_select_awaiter(std::span<C> cases, bool has_default) noexcept : cases_(cases), has_default_(has_default) {}
    dynamic_select_awaiter(dynamic_select_awaiter&& other) noexcept
        : cases_(other.cases_), has_default_(other.has_default_) {
        if (other.armed_) std::terminate();
    }
    ~dynamic_select_awaiter() {
        if (armed_)  // destroyed while parked: the cases outlive us, so unlink them now
            for (std::size_t i = 0; i < size(); ++i) disarm(i);
    }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        goroutine_ = goroutine_of(h);
        small_buffer<std::uint32_t, 16> order(size());
        choose_case_order(order, Biased);
        if (complete_one_at_a_time(*this, order, fired_) ||
            !select_start<16>(*this, order, has_default_, op_, h, fired_, armed_))
            return yield_if_budget_spent(h);  // true: re-queued, stay suspended
        return true;
    }
    result_type await_resume() {
        note_.unpark();
        if (armed_) {
            armed_ = false;
            fired_ = select_finish(*this, op_);
        }
        if (fired_ == default_fired) return result_type(cases_.size(), std::nullopt);
        return result_type(std::size_t(fired_), cases_[std::size_t(fired_)].case_result());
    }

    std::size_t size() const noexcept { return cases_.size(); }
    void note_parked() noexcept { note_.park(goroutine_, select_kind, nullptr, cases_.size()); }
    spin_mutex* mutex(std::size_t i) noexcept { return cases_[i].case_mutex(); }
    bool try_locked(std::size_t i) noexcept { return cases_[i].case_try_locked(); }
    void arm_locked(std::size_t i, blocked_op& op) noexcept { cases_[i].case_arm_locked(op, int(i)); }
    ring_result try_fast(std::size_t i) noexcept { return case_fast(cases_[i]); }
    bool gate_locked(std::size_t i) noexcept { return case_gate(cases_[i]); }
    void settle_locked(std::size_t i) noexcept { case_settle(cases_[i]); }
    void disarm(std::size_t i) noexcept { cases_[i].case_disarm(); }
    void woken(std::size_t i) noexcept { cases_[i].case_woken(); }

private:
    blocked_op op_;
    std::span<C> cases_;
    bool has_default_;
    int fired_ = -1;
    bool armed_ = false;
    goroutine_node* goroutine_ = nullptr;  // the goroutine awaiting this select, for note_parked()
    wait_note note_;
};

}  // namespace detail

/// Waits until one of the cases can complete, completes exactly that one
/// and says which. Among several ready cases one is chosen uniformly at
/// random; with a default_case, never waits. See the top of this file.
template <class... Cases>
auto select(Cases&&... cases) {
    return detail::select_awaiter<false, std::remove_cvref_t<Cases>...>(cases...);
}

/// Like select, but among ready cases the first in argument order wins.
template <class... Cases>
auto select_biased(Cases&&... cases) {
    return detail::select_awaiter<true, std::remove_cvref_t<Cases>...>(cases...);
}

/// select over a runtime-sized list of cases (e.g. one ch.recv() per
/// channel of a fan-in). The result's index() is the position in the list.
/// An empty list without default blocks forever. The cases are used up: build
/// a fresh list for each select.
namespace detail {
/// A contiguous list of cases of one type: a std::vector, std::array or
/// std::span of ch.recv() or ch.send(v) awaiters.
template <class R>
concept case_list = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                    select_case<std::ranges::range_value_t<R>>;

template <bool Biased, class R>
auto select_over(R& cases, bool has_default) {
    using C = std::ranges::range_value_t<R>;
    return dynamic_select_awaiter<Biased, C>(std::span<C>(std::ranges::data(cases), std::ranges::size(cases)),
                                             has_default);
}
}  // namespace detail

template <class R>
    requires detail::case_list<std::remove_cvref_t<R>>
auto select(R&& cases) {
    return detail::select_over<false>(cases, false);
}
template <class R>
    requires detail::case_list<std::remove_cvref_t<R>>
auto select(R&& cases, default_case_t) {
    return detail::select_over<false>(cases, true);
}
template <class R>
    requires detail::case_list<std::remove_cvref_t<R>>
auto select_biased(R&& cases) {
    return detail::select_over<true>(cases, false);
}
template <class R>
    requires detail::case_list<std::remove_cvref_t<R>>
auto select_biased(R&& cases, default_case_t) {
    return detail::select_over<true>(cases, true);
}

}  // namespace csp
