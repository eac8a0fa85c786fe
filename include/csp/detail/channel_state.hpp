// csp/detail/channel_state.hpp - the shared state behind a csp::channel<T>.
//
// The algorithm is Go's (runtime/chan.go): one lock guards the wait queues
// and the closed flag, and blocked senders and receivers are served in
// order. What Go does not have is the lock-free path of a buffered channel:
// its values live in a channel_ring (channel_ring.hpp) that sends and
// receives use without the lock while nobody is parked on the channel. The
// ring's gates keep the two paths apart:
//
//   G1. The tail gate is raised while the channel is closed or any waiter is
//       queued; the head gate while a sender waiter is queued. So a
//       lock-free send never slips past a parked receiver or sender, and a
//       lock-free receive never frees a slot that a parked sender is owed:
//       both go to the locked path, which hands over in Go's order.
//   G2. An operation parks only after raising its gates and retrying under
//       the lock: a receiver raises the tail gate (no lock-free send can
//       follow), a sender both (nor can a lock-free receive). The retry is
//       privileged, so its "empty" or "full" is final until the lock is
//       released, and the waiter is queued before that.
// Gates are only changed with the lock held, and sync_gates_locked() brings
// them back in line with G1 after the queues change.
//
// Invariants, true whenever `mu` is not held:
//   I1. The buffer holds at most `capacity` values.
//   I2. If recvq holds an unclaimed waiter, the buffer is empty: a sender
//       always hands its value straight to a waiting receiver first (and by
//       G1/G2 no lock-free send can fill the buffer behind its back).
//   I3. If sendq holds an unclaimed waiter, the buffer is full (for an
//       unbuffered channel, "full" is trivially true).
//   I4. Once closed, sendq and recvq hold no unclaimed waiters: close claims
//       them all, and no operation parks on a closed channel.
//   I5. Apart from one select that waits to send and to receive on the same
//       channel, I2 and I3 mean unclaimed waiters sit in at most one queue.
// Claimed or stale waiters (a select that fired on another channel) may
// linger until someone pops them or their owner unlinks them; claim_front
// skips them. They only keep a gate raised longer than needed, which sends
// lock-free operations to the locked path; the next sync lowers it.
//
// Every function named *_locked expects `mu` to be held by the caller. They
// are the building blocks that channel<T>'s awaiters and csp::select share.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <utility>

#include "frame_allocator.hpp"
#include "channel_ring.hpp"
#include "spin_mutex.hpp"
#include "waiter.hpp"

namespace csp {

/// Result of a non-blocking channel operation.
enum class chan_status : unsigned char {
    ok,           ///< the value was sent / received
    would_block,  ///< the operation would have to wait (or the channel is nil)
    closed,       ///< the channel is closed (and, for a receive, drained)
};

namespace detail {

/// The part of a channel's state that does not depend on T: what select
/// needs to lock several channels of different types in a global order and
/// to gate their lock-free paths.
struct channel_base {
    spin_mutex mu;
    /// How many channel<T> handles share this state (an intrusive count, so
    /// a handle is one pointer, not a shared_ptr's two: every goroutine
    /// frame that holds a channel is 8 bytes smaller). It sits in what would
    /// be padding after `mu`.
    std::atomic<std::uint32_t> handles{1};
    /// Set once, under the lock. Atomic (and accessed relaxed, a plain load
    /// or store) only so that counterpart_may_wait can peek at it.
    std::atomic<bool> closed{false};
    wait_queue sendq;
    wait_queue recvq;
    channel_ring ring;  // a buffered channel's values; no ring if unbuffered

    bool is_closed_locked() const noexcept { return closed.load(std::memory_order_relaxed); }

    /// Without the lock, for an unbuffered channel: false if, at some recent
    /// moment, the channel was open and no counterpart of a send (for_send)
    /// or receive was queued, so that the operation would have had to wait.
    /// A select's first, one-lock-at-a-time pass skips such a case instead
    /// of locking it to find out (select.hpp); a case found not ready there
    /// proves nothing either way, so a stale answer costs nothing but the
    /// skipped attempt, and the locked pass decides. (A buffered channel's
    /// readiness also depends on its ring, which its lock-free path reads.)
    bool counterpart_may_wait(bool for_send) const noexcept {
        return closed.load(std::memory_order_relaxed) || (for_send ? recvq : sendq).may_hold_waiters();
    }

    /// Raises the gates an operation must hold before it parks (G2): the
    /// tail gate, and for a sender the head gate too. False for an
    /// unbuffered channel, which has no lock-free path to shut.
    bool raise_gates_locked(bool for_send) noexcept {
        if (!ring.enabled()) return false;
        set_gates_locked(true, head_gated_ || for_send);
        return true;
    }
    /// Sets the gates to what the queues and the closed flag call for (G1).
    void sync_gates_locked() noexcept {
        if (ring.enabled()) set_gates_locked(is_closed_locked() || !recvq.empty() || !sendq.empty(), !sendq.empty());
    }

private:
    void set_gates_locked(bool tail, bool head) noexcept {
        if (tail != tail_gated_) ring.set_tail_gate(tail_gated_ = tail);
        if (head != head_gated_) ring.set_head_gate(head_gated_ = head);
    }
    // The gates' state, so that syncing costs no atomic when nothing changes.
    bool tail_gated_ = false;
    bool head_gated_ = false;
};

// Where a waiter queued on a channel of T gives or takes its value: the
// send_awaiter<T> or recv_awaiter<T> that it is the base of (channel.hpp
// defines both; every waiter in a channel's queues belongs to one).
template <class T>
T& send_source(waiter& w) noexcept;

/// Where a receive puts its value: a value_slot and its flag. It offers the
/// one member of std::optional<T> that the channel code uses, emplace.
template <class T>
struct receive_into {
    value_slot<T>* slot;
    bool* has_value;
    template <class... A>
    void emplace(A&&... args) {
        ::new (static_cast<void*>(slot->bytes)) T(std::forward<A>(args)...);
        *has_value = true;
    }
};

template <class T>
receive_into<T> receive_target(waiter& w) noexcept;

template <class T>
class channel_state : public channel_base {
public:
    /// `inline_ring`: where a small ring goes (see make), or null.
    channel_state(std::size_t capacity, void* inline_ring) {
        if (capacity) ring.allocate<T>(capacity, inline_ring);
    }
    ~channel_state() { ring.release<T>(); }

    /// A new channel state from the per-thread caches, like frames, with a
    /// handle count of 1. A small buffer shares the state's block: a program
    /// that makes a channel per call (W8) pays for one allocation, not two.
    static channel_state* make(std::size_t capacity) {
        static_assert(sizeof(channel_state) <= state_bytes, "the ring would overlap the state");
        const std::size_t bytes = block_bytes(capacity);
        void* p = allocate_frame(bytes);
        void* ring_memory = bytes > state_bytes ? static_cast<unsigned char*>(p) + state_bytes : nullptr;
        try {
            return ::new (p) channel_state(capacity, ring_memory);
        } catch (...) {
            deallocate_frame(p, bytes);
            throw;
        }
    }
    /// Destroys a state made by make().
    static void destroy(channel_state* s) noexcept {
        const std::size_t bytes = block_bytes(s->capacity());
        s->~channel_state();
        deallocate_frame(s, bytes);
    }

    std::size_t capacity() const noexcept { return ring.capacity(); }
    /// Values in the buffer (a snapshot; no lock needed).
    std::size_t size() const noexcept { return ring.size(); }

    // ---- the lock-free path (buffered channels, while no one is parked) ----

    /// Sends *src into the buffer without the lock; moves from it only when
    /// done. Otherwise the caller takes the lock and uses try_send_locked
    /// (a select's first pass may skip a not_ready case instead).
    [[gnu::always_inline]] ring_result try_send_fast(T& src) noexcept {
        if (!ring.enabled()) return ring_result::refused;
        return ring.push<T>(src, false);
    }
    /// Receives into `out` without the lock, like try_send_fast.
    template <class Out>
    [[gnu::always_inline]] ring_result try_recv_fast(Out&& out) noexcept {
        if (!ring.enabled()) return ring_result::refused;
        return ring.pop<T>(std::forward<Out>(out), false);
    }

    /// The same in two halves, for a channel await_ready (see
    /// channel_ring::push_once): one try, inlined, and the rest, needed only
    /// if the first answered lost or busy. The ring must be enabled.
    [[gnu::always_inline]] ring_result try_send_once(T& src) noexcept { return ring.push_once(src); }
    ring_result try_send_again(T& src, ring_result first) noexcept { return ring.push_again(src, first); }
    [[gnu::always_inline]] ring_result try_recv_once(receive_into<T> out) noexcept { return ring.pop_once<T>(out); }
    ring_result try_recv_again(receive_into<T> out, ring_result first) noexcept {
        return ring.pop_again<T, receive_into<T>>(out, first);
    }

    // ---- the locked path ----
    // A try that completes (ok or closed) also syncs the gates (the queues
    // may have changed); one that would block leaves them as they are, so
    // that a caller between raise_gates_locked and parking keeps them up.

    /// Sends *src if that can be done without waiting. Moves from *src only
    /// when the result is ok.
    chan_status try_send_locked(T& src) noexcept {
        if (is_closed_locked()) return chan_status::closed;
        if (waiter* r = recvq.claim_front()) {
            // I2: the buffer is empty, so handing over directly keeps FIFO.
            receive_target<T>(*r).emplace(std::move(src));
            complete(*r, wait_status::ok);
            sync_gates_locked();
            return chan_status::ok;
        }
        if (ring.enabled() && ring.push<T>(src, true) == ring_result::done) {
            sync_gates_locked();
            return chan_status::ok;
        }
        return chan_status::would_block;
    }

    /// Receives into `out` (which must be empty) if that can be done without
    /// waiting. On closed, `out` stays empty.
    /// `out` is a std::optional<T> or a receive_into<T>.
    template <class Out>
    chan_status try_recv_locked(Out&& out) noexcept {
        if (waiter* s = sendq.claim_front()) {
            T& sent = send_source<T>(*s);
            // I3: the buffer is full (and both gates are up, so only we
            // touch it). Take its oldest value and let the sender's value
            // into the freed slot, so order is kept. Unbuffered: take the
            // sender's value itself.
            if (ring.enabled() && ring.pop<T>(out, true) == ring_result::done) ring.push<T>(sent, true);
            else out.emplace(std::move(sent));
            complete(*s, wait_status::ok);
            sync_gates_locked();
            return chan_status::ok;
        }
        if (ring.enabled() && ring.pop<T>(out, true) == ring_result::done) {
            sync_gates_locked();
            return chan_status::ok;
        }
        if (!is_closed_locked()) return chan_status::would_block;
        sync_gates_locked();
        return chan_status::closed;
    }

    /// Closes the channel and completes every waiter: receivers get
    /// `closed` (nullopt), senders get `closed` (they throw). Returns false
    /// if it was already closed.
    bool close_locked() {
        if (is_closed_locked()) return false;
        closed.store(true, std::memory_order_relaxed);  // the lock orders it
        while (waiter* r = recvq.claim_front()) complete(*r, wait_status::closed);
        while (waiter* s = sendq.claim_front()) complete(*s, wait_status::closed);
        sync_gates_locked();  // the tail gate stays up: a send after close must throw
        return true;
    }

private:
    // The state rounded up to the frame allocator's alignment, then the ring.
    static constexpr std::size_t state_bytes =
        (sizeof(channel_base) + __STDCPP_DEFAULT_NEW_ALIGNMENT__ - 1) / __STDCPP_DEFAULT_NEW_ALIGNMENT__ *
        __STDCPP_DEFAULT_NEW_ALIGNMENT__;
    static std::size_t block_bytes(std::size_t capacity) noexcept {
        return channel_ring::fits_inline<T>(capacity) ? state_bytes + channel_ring::bytes_for<T>(capacity)
                                                        : sizeof(channel_state);
    }
};

}  // namespace detail
}  // namespace csp
