// csp/detail/channel_state.hpp - the shared state behind a csp::channel<T>.
//
// One lock guards everything; the algorithm is Go's (runtime/chan.go).
//
// Invariants, true whenever `mu` is not held:
//   I1. buffer.size() <= capacity.
//   I2. If recvq holds an unclaimed waiter, the buffer is empty: a sender
//       always hands its value straight to a waiting receiver first.
//   I3. If sendq holds an unclaimed waiter, the buffer is full (for an
//       unbuffered channel, "full" is trivially true).
//   I4. Once closed, sendq and recvq hold no unclaimed waiters: close claims
//       them all, and no operation parks on a closed channel.
//   I5. Apart from one select that waits to send and to receive on the same
//       channel, I2 and I3 mean unclaimed waiters sit in at most one queue.
// Claimed or stale waiters (a select that fired on another channel) may
// linger until someone pops them or their owner unlinks them; claim_front
// skips them.
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
#include "ring_buffer.hpp"
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
/// needs to lock several channels of different types in a global order.
struct channel_base {
    spin_mutex mu;
    /// How many channel<T> handles share this state (an intrusive count, so
    /// a handle is one pointer, not a shared_ptr's two: every goroutine
    /// frame that holds a channel is 8 bytes smaller). It sits in what would
    /// be padding after `mu`.
    std::atomic<std::uint32_t> handles{1};
    bool closed = false;
    wait_queue sendq;
    wait_queue recvq;
};

// Where a waiter queued on a channel of T gives or takes its value: the
// send_awaiter<T> or recv_awaiter<T> that it is the base of (channel.hpp
// defines both; every waiter in a channel's queues belongs to one).
template <class T>
T& send_source(waiter& w) noexcept;

/// Room for a received T whose "has a value" flag is kept elsewhere (a
/// receive awaiter keeps it in padding: std::optional<T> would cost a word
/// more in every parked goroutine's frame, SPEC §9 W6).
template <class T>
struct value_slot {
    alignas(T) unsigned char bytes[sizeof(T)];
    T& get() noexcept { return *std::launder(reinterpret_cast<T*>(bytes)); }
};

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
    explicit channel_state(std::size_t capacity) : buffer_(capacity) {}

    /// A new channel state from the per-thread caches, like frames (see
    /// ring_buffer.hpp for why), with a handle count of 1.
    static channel_state* make(std::size_t capacity) {
        void* p = allocate_frame(sizeof(channel_state));
        try {
            return ::new (p) channel_state(capacity);
        } catch (...) {
            deallocate_frame(p, sizeof(channel_state));
            throw;
        }
    }
    /// Destroys a state made by make().
    static void destroy(channel_state* s) noexcept {
        s->~channel_state();
        deallocate_frame(s, sizeof(channel_state));
    }

    std::size_t capacity() const noexcept { return buffer_.capacity(); }
    std::size_t size_locked() const noexcept { return buffer_.size(); }

    /// Sends *src if that can be done without waiting. Moves from *src only
    /// when the result is ok.
    chan_status try_send_locked(T& src) noexcept {
        if (closed) return chan_status::closed;
        if (waiter* r = recvq.claim_front()) {
            // I2: the buffer is empty, so handing over directly keeps FIFO.
            receive_target<T>(*r).emplace(std::move(src));
            complete(*r, wait_status::ok);
            return chan_status::ok;
        }
        if (!buffer_.full()) {
            buffer_.emplace_back(std::move(src));
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
            if (buffer_.capacity() == 0) {
                out.emplace(std::move(sent));
            } else {
                // I3: the buffer is full. Take its oldest value and let the
                // sender's value into the freed slot, so order is kept.
                out.emplace(buffer_.pop_front());
                buffer_.emplace_back(std::move(sent));
            }
            complete(*s, wait_status::ok);
            return chan_status::ok;
        }
        if (!buffer_.empty()) {
            out.emplace(buffer_.pop_front());
            return chan_status::ok;
        }
        return closed ? chan_status::closed : chan_status::would_block;
    }

    /// Closes the channel and completes every waiter: receivers get
    /// `closed` (nullopt), senders get `closed` (they throw). Returns false
    /// if it was already closed.
    bool close_locked() {
        if (closed) return false;
        closed = true;
        while (waiter* r = recvq.claim_front()) complete(*r, wait_status::closed);
        while (waiter* s = sendq.claim_front()) complete(*s, wait_status::closed);
        return true;
    }

private:
    ring_buffer<T> buffer_;
};

}  // namespace detail
}  // namespace csp
