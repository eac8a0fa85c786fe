// csp/channel.hpp - csp::channel<T>: Go's typed channels.
//
//   auto ch = csp::make_channel<int>(16);    // buffered; 0 (default) = unbuffered
//   co_await ch.send(42);                     // waits for room / a receiver
//   std::optional<int> v = co_await ch.recv(); // nullopt once closed and drained
//   ch.close();
//
// A channel is a cheap, copyable handle with shared ownership, like Go's
// `chan T`; a default-constructed one is nil. The semantics are Go's exactly;
// docs/channels.md states them and detail/channel_state.hpp holds the
// invariants that implement them.
//
// The awaiters returned by send() and recv() hold pointers to the channel and
// to the value being sent: await them in the same full expression
// (`co_await ch.send(v)`), as with any co_await.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>

#include "detail/budget.hpp"
#include "detail/channel_state.hpp"
#include "executor.hpp"
#include "task.hpp"

namespace csp {

/// Thrown by a send on a closed channel, a close of a closed channel and a
/// close of a nil channel: the misuses for which Go panics.
class channel_closed : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// What try_recv() reports: the status and, when it is ok, the value.
template <class T>
struct try_recv_result {
    chan_status status;
    std::optional<T> value;

    explicit operator bool() const noexcept { return status == chan_status::ok; }
};

template <class T>
class channel;

namespace detail {

/// True when an operation that completed at once should still yield: the
/// thread's cooperative budget is spent and there is an executor to re-queue
/// on. Shared by channel operations and select.
inline bool should_yield() noexcept { return !consume_budget() && current_executor(); }

/// What the send and receive awaiters share: one waiter for one queue of one
/// channel, and the blocked_op a plain `co_await` parks with. csp::select
/// uses the same waiter with the select's own blocked_op instead (the "case
/// interface" below), so a channel operation is the same object whether it
/// is awaited alone or as a case of a select.
///
/// The waiter is a base, not a member, so that a counterpart holding the
/// waiter can reach the awaiter's value (send_source / receive_target) and
/// the awaiter's flags can sit in the waiter's tail padding: every parked
/// goroutine carries one of these (SPEC §9, W6), so they are kept tight.
///
/// `armed_` is only touched by the owning coroutine. If the coroutine is
/// destroyed while armed (runtime shutdown), the destructor unlinks the
/// waiter under the channel lock, which also waits out a wake-up that a
/// counterpart may be delivering at that moment.
class channel_op_base : private waiter {
public:
    channel_op_base(channel_op_base&& other) noexcept
        : waiter(filled_when_armed_t{}), is_send_(other.is_send_), ch_(other.ch_) {
        // Awaiters may be moved (into a select, or by a compiler that copies
        // co_await operands) until they are awaited; never once armed.
        if (other.armed_) std::terminate();
    }
    channel_op_base& operator=(channel_op_base&&) = delete;

    // ---- case interface, used by csp::select ----

    /// The lock that guards this case's channel; null for a nil channel.
    spin_mutex* case_mutex() const noexcept { return ch_ ? &ch_->mu : nullptr; }

    /// Without the lock: false if this case recently could not have
    /// completed at once, so that a select's one-at-a-time pass need not
    /// lock the channel to try it (see channel_base::counterpart_may_wait).
    /// Always true for a buffered channel, whose lock-free path answers.
    bool case_may_be_ready() const noexcept {
        return !ch_ || ch_->ring.enabled() || ch_->counterpart_may_wait(is_send_);
    }

    /// Queues this case's waiter for `op` as case `index`. Requires the lock.
    void case_arm_locked(blocked_op& op, int index) noexcept {
        waiter::op = &op;
        case_index = index;
        status = wait_status::pending;
        armed_ = true;
        queue().push_back(*this);
        ch_->raise_gates_locked(is_send_);  // G1 (already up if G2 was followed; never lowers)
    }

    /// Unlinks the waiter if a counterpart did not already. Takes the lock.
    void case_disarm() noexcept {
        if (!armed_) return;
        std::lock_guard lock(ch_->mu);
        queue().remove(*this);
        ch_->sync_gates_locked();
        armed_ = false;
    }

    /// Before a select parks: raises the gates of a buffered channel (G2 in
    /// channel_state.hpp) so that a retry of case_try_locked is final. False
    /// if there is nothing to gate (unbuffered). Requires the lock.
    bool case_gate_locked() noexcept { return ch_->raise_gates_locked(is_send_); }
    /// Lowers gates that case_gate_locked raised, if the select did not
    /// park after all. Requires the lock.
    void case_settle_locked() noexcept { ch_->sync_gates_locked(); }

protected:
    channel_op_base(channel_base* ch, bool is_send) noexcept
        : waiter(filled_when_armed_t{}), is_send_(is_send), ch_(ch) {}

    /// The operation that queued `w` (every waiter in a channel's queues is
    /// the base of a send_awaiter or recv_awaiter of that channel's T).
    static channel_op_base& owner_of(waiter& w) noexcept { return static_cast<channel_op_base&>(w); }
    ~channel_op_base() { case_disarm(); }

    /// True while parked on the channel (a plain co_await or a select arm),
    /// until the verdict is taken.
    bool armed() const noexcept { return armed_; }

    /// The slow half of await_ready, after the lock-free path (if any)
    /// failed: `try_locked` is the case's case_try_locked. True if the
    /// operation completed; false with the lock still held and the gates
    /// raised (G2) when it must park.
    /// `fast` is what the lock-free path said. If it found the operation
    /// not ready a moment ago, a locked try before raising the gates would
    /// almost surely fail too, so only the one after them is made (it alone
    /// decides anyway: it sees everything the first would have).
    template <class Try>
    bool complete_or_prepare_to_park(detail::ring_result fast, Try try_locked) {
        ch_->mu.lock();
        bool skip_first = fast == detail::ring_result::not_ready;
        if ((!skip_first && try_locked()) || (ch_->raise_gates_locked(is_send_) && try_locked())) {
            ch_->mu.unlock();
            return true;
        }
        return false;  // still locked: await_suspend parks
    }

    /// Called by await_ready after the operation completed at once: true to
    /// continue without suspending, false to suspend just to yield, because
    /// the thread's cooperative budget is spent (detail/budget.hpp). Out of
    /// line, with the budget's counter inlined into it: await_ready's fast
    /// path ends in a jump here, and keeps no register across a call.
    [[gnu::noinline]] bool continue_or_yield() noexcept {
        if (spend_budget_unit() || !current_executor()) return true;
        yield_instead_ = true;
        return false;
    }

    /// In await_suspend: if the operation is already done and only yields.
    bool yielded(std::coroutine_handle<> h) {
        if (!yield_instead_) return false;
        yield_instead_ = false;
        current_executor().post_yield(h);
        return true;
    }

    /// Parks a plain co_await. Called from await_suspend with ch_->mu held
    /// (or with ch_ null for a nil channel, which parks forever, unqueued).
    /// `kind` and `capacity` are for goroutine dumps.
    void park(std::coroutine_handle<> h, goroutine_node* g, const wait_kind& kind, std::size_t capacity) {
        note_.park(g, kind, ch_, capacity);
        if (!ch_) return;
        executor_ref ex = current_executor();
        if (!ex) {
            ch_->sync_gates_locked();  // raised for a wait that will not happen
            ch_->mu.unlock();
            require_current_executor("a blocking channel operation");
        }
        own_op_.fired.store(blocked_op::not_fired, std::memory_order_relaxed);  // the awaiter may be reused
        own_op_.handle = h;
        own_op_.executor = ex;
        case_arm_locked(own_op_, blocked_op::sole_case);  // claimed without a CAS (wait_queue::sole_waiter)
        ch_->mu.unlock();  // from here on this frame may be resumed on another thread
    }

public:
    /// The verdict of the counterpart that completed this armed case (ok, or
    /// closed). Forgets the waiter, which the counterpart already unlinked.
    wait_status take_outcome() noexcept {
        armed_ = false;
        note_.unpark();
        return status;
    }

private:
    wait_queue& queue() noexcept { return is_send_ ? ch_->sendq : ch_->recvq; }

    // Every parked goroutine carries one of these (SPEC §9, W6), so the
    // flags fill padding: the first two the waiter base's tail, the third
    // own_op_'s (tests/test_parked_memory.cpp checks the size).
    bool is_send_;
    bool armed_ = false;
    [[no_unique_address]] blocked_op own_op_;
    bool yield_instead_ = false;

protected:
    bool has_result_ = false;  // recv_awaiter's: whether its value slot holds a value

private:
    wait_note note_;

protected:
    channel_base* ch_;
};

/// What a dump says of a goroutine blocked on a channel of T: one static
/// descriptor per operation, element type and nil-ness (see wait_kind).
template <class T, bool Send, bool Nil>
inline constexpr wait_kind channel_wait_kind{Send ? (Nil ? "send on nil channel" : "send on channel")
                                                  : (Nil ? "receive from nil channel" : "receive from channel"),
                                             &typeid(T)};

template <class T, bool Send>
const wait_kind& channel_wait_kind_of(const channel_base* ch) noexcept {
    return ch ? channel_wait_kind<T, Send, false> : channel_wait_kind<T, Send, true>;
}

[[noreturn]] inline void throw_send_on_closed() { throw channel_closed("csp: send on closed channel"); }

}  // namespace detail

/// `co_await ch.send(v)`; throws channel_closed if the channel is or gets
/// closed. The value is moved from (or, for an lvalue argument, copied) only
/// when the send happens. Also usable as a case of csp::select.
template <class T>
class send_awaiter : public detail::channel_op_base {
public:
    send_awaiter(detail::channel_state<T>* ch, T& src) noexcept : channel_op_base(ch, true), src_(&src) {}
    send_awaiter(detail::channel_state<T>* ch, const T& src)
        : channel_op_base(ch, true), copy_(std::in_place, src), src_(&*copy_) {}
    send_awaiter(send_awaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
        : channel_op_base(std::move(other)),
          copy_(std::move(other.copy_)),
          src_(copy_ ? &*copy_ : other.src_),
          status_(other.status_) {}

    /// A buffered channel's lock-free try, then a jump to the budget check
    /// or to the slow half. Never inlined into the awaiting coroutine: its
    /// resume function would save more registers around every await.
    [[gnu::noinline]] bool await_ready() {
        if (ch_ && state()->ring.enabled()) [[likely]] {
            detail::ring_result fast = state()->try_send_once(*src_);
            if (fast == detail::ring_result::done) [[likely]] {
                status_ = chan_status::ok;
                return continue_or_yield();
            }
            return finish_or_prepare_to_park(fast);
        }
        return finish_or_prepare_to_park(detail::ring_result::refused);
    }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        if (yielded(h)) return;
        park(h, detail::goroutine_of(h), detail::channel_wait_kind_of<T, true>(ch_), ch_ ? state()->capacity() : 0);
    }
    [[gnu::always_inline]] void await_resume() {
        if (armed()) case_woken();  // parked: the counterpart decided
        case_result();
    }

    // ---- case interface, used by csp::select ----
    using case_result_type = std::monostate;
    /// Tries the lock-free path of a buffered channel (see
    /// detail::ring_result); refused for an unbuffered one.
    [[gnu::always_inline]] detail::ring_result case_try_fast() noexcept {
        if (!ch_) return detail::ring_result::not_ready;  // nil: never ready
        detail::ring_result r = state()->try_send_fast(*src_);
        if (r == detail::ring_result::done) status_ = chan_status::ok;
        return r;
    }
    /// Tries to send now; true if the case completed (sent, or found the
    /// channel closed). Requires the lock.
    bool case_try_locked() noexcept {
        status_ = state()->try_send_locked(*src_);
        return status_ != chan_status::would_block;
    }
    void case_arm_locked(detail::blocked_op& op, int index) noexcept { channel_op_base::case_arm_locked(op, index); }
    /// Records the verdict of the counterpart that completed this armed case.
    void case_woken() noexcept {
        status_ = take_outcome() == detail::wait_status::ok ? chan_status::ok : chan_status::closed;
    }
    /// The outcome of a completed case: throws channel_closed if it was closed.
    std::monostate case_result() {
        if (status_ == chan_status::closed) detail::throw_send_on_closed();
        return {};
    }

private:
    /// await_ready's slow half (and an unbuffered or nil channel's whole
    /// await_ready): out of line, so that a lock-free send that completes
    /// needs none of the registers this one saves.
    [[gnu::noinline]] bool finish_or_prepare_to_park(detail::ring_result fast) {
        if (!ch_) return false;  // nil: blocks forever
        if (detail::channel_ring::needs_again(fast)) {
            fast = state()->try_send_again(*src_, fast);
            if (fast == detail::ring_result::done) status_ = chan_status::ok;
        }
        if (fast != detail::ring_result::done &&
            !complete_or_prepare_to_park(fast, [this] { return case_try_locked(); }))
            return false;  // still locked: await_suspend parks
        return continue_or_yield();
    }

    friend T& detail::send_source<T>(detail::waiter&) noexcept;
    /// The value that the send queued as `w` offers.
    static T& source_of(detail::waiter& w) noexcept { return *static_cast<send_awaiter&>(owner_of(w)).src_; }

    detail::channel_state<T>* state() const noexcept { return static_cast<detail::channel_state<T>*>(ch_); }

    std::optional<T> copy_;  // the copy of an lvalue argument, made before the send
    T* src_;
    chan_status status_ = chan_status::would_block;
};

/// `co_await ch.recv()` yields std::optional<T>: the value, or nullopt once
/// the channel is closed and drained. Also usable as a case of csp::select.
template <class T>
class recv_awaiter : public detail::channel_op_base {
public:
    explicit recv_awaiter(detail::channel_state<T>* ch) noexcept : channel_op_base(ch, false) {}
    recv_awaiter(recv_awaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
        : channel_op_base(std::move(other)) {
        if (other.has_result_) into().emplace(std::move(other.result_.get()));
    }
    ~recv_awaiter() { drop_result(); }

    /// Like send's: the lock-free try, then a jump.
    [[gnu::noinline]] bool await_ready() {
        if (ch_ && state()->ring.enabled()) [[likely]] {
            detail::ring_result fast = state()->try_recv_once(into());
            if (fast == detail::ring_result::done) [[likely]]
                return continue_or_yield();
            return finish_or_prepare_to_park(fast);
        }
        return finish_or_prepare_to_park(detail::ring_result::refused);
    }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        if (yielded(h)) return;
        park(h, detail::goroutine_of(h), detail::channel_wait_kind_of<T, false>(ch_), ch_ ? state()->capacity() : 0);
    }
    // Inlined into the awaiting coroutine, so the optional is built in its
    // frame: returned from a call, g++ 12 passes it through the stack in a
    // way that stalls on store forwarding (see case_result).
    [[gnu::always_inline]] std::optional<T> await_resume() {
        if (armed()) case_woken();  // parked: the counterpart filled the result or closed
        return case_result();
    }

    // ---- case interface, used by csp::select ----
    using case_result_type = std::optional<T>;
    /// Tries the lock-free path of a buffered channel, like send's.
    [[gnu::always_inline]] detail::ring_result case_try_fast() noexcept {
        if (!ch_) return detail::ring_result::not_ready;  // nil: never ready
        return state()->try_recv_fast(into());
    }
    /// Tries to receive now; true if the case completed (a value, or closed
    /// and drained). Requires the lock.
    bool case_try_locked() noexcept { return state()->try_recv_locked(into()) != chan_status::would_block; }
    void case_arm_locked(detail::blocked_op& op, int index) noexcept { channel_op_base::case_arm_locked(op, index); }
    /// The counterpart filled the result (ok) or left it empty (closed).
    void case_woken() noexcept { take_outcome(); }
    [[gnu::always_inline]] std::optional<T> case_result() noexcept(std::is_nothrow_move_constructible_v<T>) {
        // Inlined, like await_resume: an optional<T> returned from a call is
        // put together from a flag byte and zeroed padding on the stack and
        // then loaded as whole registers, a store-forwarding stall that was
        // a third of a W2 message's time in perf (g++ 12).
        if (!has_result_) return std::nullopt;
        std::optional<T> r(std::in_place, std::move(result_.get()));
        drop_result();  // so that a case can be awaited again
        return r;
    }

private:
    /// await_ready's slow half, out of line like send's.
    [[gnu::noinline]] bool finish_or_prepare_to_park(detail::ring_result fast) {
        if (!ch_) return false;  // nil: blocks forever
        if (detail::channel_ring::needs_again(fast)) fast = state()->try_recv_again(into(), fast);
        if (fast != detail::ring_result::done &&
            !complete_or_prepare_to_park(fast, [this] { return case_try_locked(); }))
            return false;  // still locked: await_suspend parks
        return continue_or_yield();
    }

    friend detail::receive_into<T> detail::receive_target<T>(detail::waiter&) noexcept;
    /// Where the receive queued as `w` takes its value.
    static detail::receive_into<T> target_of(detail::waiter& w) noexcept {
        return static_cast<recv_awaiter&>(owner_of(w)).into();
    }

    detail::receive_into<T> into() noexcept { return {&result_, &has_result_}; }
    void drop_result() noexcept {
        if (!has_result_) return;
        result_.get().~T();
        has_result_ = false;
    }

    detail::channel_state<T>* state() const noexcept { return static_cast<detail::channel_state<T>*>(ch_); }

    // The received value; whether there is one is has_result_, a flag that
    // channel_op_base keeps in padding.
    detail::value_slot<T> result_;
};

namespace detail {
template <class T>
T& send_source(waiter& w) noexcept {
    return send_awaiter<T>::source_of(w);
}
template <class T>
receive_into<T> receive_target(waiter& w) noexcept {
    return recv_awaiter<T>::target_of(w);
}
}  // namespace detail

/// A channel handle. Copies share one channel; the operations are const
/// because they change the channel, not the handle (capture channels by
/// value in goroutines, as Go closures do).
template <class T>
class channel {
    static_assert(std::is_move_constructible_v<T>, "csp::channel<T> needs a move-constructible T");
    static_assert(!std::is_reference_v<T>, "csp::channel<T&> is not supported");

public:
    using value_type = T;

    /// A nil channel: sends and receives block forever, close throws.
    channel() noexcept = default;
    channel(const channel& other) noexcept : state_(other.state_) {
        // relaxed: the copier already holds a handle, so the state cannot go
        // away meanwhile; nothing else is published by the count.
        if (state_) state_->handles.fetch_add(1, std::memory_order_relaxed);
    }
    channel(channel&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    channel& operator=(channel other) noexcept {
        std::swap(state_, other.state_);
        return *this;
    }
    ~channel() {
        if (state_ && release_handle()) detail::channel_state<T>::destroy(state_);
    }

    /// `co_await ch.send(std::move(v))`: moves from v only if the send happens.
    send_awaiter<T> send(T&& v) const noexcept { return send_awaiter<T>(get(), v); }
    /// `co_await ch.send(v)`: sends a copy of v, made before the send.
    send_awaiter<T> send(const T& v) const { return send_awaiter<T>(get(), v); }
    /// `co_await ch.recv()` -> std::optional<T>.
    recv_awaiter<T> recv() const noexcept { return recv_awaiter<T>(get()); }

    /// Sends without waiting. Moves from v only when it returns ok. Reports
    /// closed instead of throwing; reports would_block on a nil channel.
    chan_status try_send(T&& v) const noexcept {
        if (!state_) return chan_status::would_block;
        if (state_->try_send_fast(v) == detail::ring_result::done) return chan_status::ok;
        std::lock_guard lock(state_->mu);
        return state_->try_send_locked(v);
    }
    /// Sends a copy of v without waiting.
    chan_status try_send(const T& v) const {
        if (!state_) return chan_status::would_block;
        T copy(v);  // copied outside the lock, so a throwing copy changes nothing
        return try_send(std::move(copy));
    }

    /// Receives without waiting.
    try_recv_result<T> try_recv() const noexcept {
        try_recv_result<T> r{chan_status::would_block, std::nullopt};
        if (!state_) return r;
        if (state_->try_recv_fast(r.value) == detail::ring_result::done) {
            r.status = chan_status::ok;
            return r;
        }
        std::lock_guard lock(state_->mu);
        r.status = state_->try_recv_locked(r.value);
        return r;
    }

    /// Closes the channel: buffered values can still be received, then
    /// receivers get nullopt; blocked senders throw channel_closed. Throws
    /// channel_closed if the channel is nil or already closed.
    void close() const {
        if (!state_) throw channel_closed("csp: close of nil channel");
        bool first;
        {
            std::lock_guard lock(state_->mu);
            first = state_->close_locked();
        }
        if (!first) throw channel_closed("csp: close of closed channel");
    }

    /// Number of buffered values (a snapshot). 0 for a nil channel.
    std::size_t size() const noexcept { return state_ ? state_->size() : 0; }
    /// The buffer capacity; 0 for unbuffered and nil channels.
    std::size_t capacity() const noexcept { return state_ ? state_->capacity() : 0; }
    /// True once close() has been called. False for a nil channel.
    bool closed() const noexcept {
        if (!state_) return false;
        std::lock_guard lock(state_->mu);
        return state_->is_closed_locked();
    }
    /// True for a nil (default-constructed) channel.
    bool is_nil() const noexcept { return !state_; }

    friend bool operator==(const channel& a, const channel& b) noexcept { return a.state_ == b.state_; }

    /// The shared state; for csp::select. Null for a nil channel.
    detail::channel_state<T>* get() const noexcept { return state_; }

private:
    template <class U>
    friend channel<U> make_channel(std::size_t);
    explicit channel(detail::channel_state<T>* s) noexcept : state_(s) {}  // adopts the count of 1

    /// Gives up this handle's count; true if it was the last one.
    bool release_handle() noexcept {
        // The sole handle needs no read-modify-write: with a count of 1
        // nobody else holds a handle, so nobody can copy one meanwhile (a
        // copy needs a handle). A channel made for one exchange (a result
        // channel per call, W8) usually dies this way, after the handles
        // its goroutines held. acquire: the load reads the value of the
        // other owners' decrements, whose release parts then make their use
        // of the state happen-before its destruction.
        if (state_->handles.load(std::memory_order_acquire) == 1) return true;
        // acq_rel: the last handle's owner must see every other owner's use
        // of the state (their releases) before it destroys it.
        return state_->handles.fetch_sub(1, std::memory_order_acq_rel) == 1;
    }

    detail::channel_state<T>* state_ = nullptr;  // owns one count of state_->handles
};

/// Makes a channel with room for `capacity` values (0: unbuffered).
template <class T>
channel<T> make_channel(std::size_t capacity = 0) {
    return channel<T>(detail::channel_state<T>::make(capacity));
}

}  // namespace csp
