// csp/detail/channel_ring.hpp - the lock-free buffer of a buffered channel.
//
// A bounded FIFO of T that senders and receivers use without the channel's
// lock (D. Vyukov's bounded MPMC queue, the design of crossbeam-channel's
// array flavor):
//
//   * `head` and `tail` are positions: a lap number and an index. Each slot
//     has a stamp saying which position it is ready for: `pos` means "empty,
//     waiting for the value of position pos", `pos + 1` means "holds the
//     value of position pos". A sender claims position `tail` with a CAS,
//     writes the value and stamps `pos + 1`; a receiver claims `head`,
//     moves the value out and stamps `pos + one_lap`, freeing the slot for
//     the next lap. Laps make stamps unique, so a stale position can never
//     be mistaken for a current one (no ABA in 2^64 operations).
//
//   * Each position word has a *gate* bit. A lock-free (non-privileged)
//     operation refuses to run while its word's gate is raised; it then
//     returns false and the caller takes the channel's lock instead. The
//     channel raises the gates, under its lock, while anyone is parked on it
//     (channel_state.hpp says exactly when), so that parked goroutines are
//     always served by the locked path, in Go's order. Because the gate sits
//     in the word that operations CAS, raising it (an atomic RMW on that
//     word) and every claim are totally ordered: after the raise returns, no
//     lock-free claim on that word can succeed, and every earlier claim is
//     visible in the value the raise read.
//
//   * A privileged operation (the caller holds the channel's lock) ignores
//     the gate and gives a final answer: if a position was claimed but its
//     value is not yet written (or not yet moved out), it waits for that one
//     store instead of reporting empty (full). Such a wait is short: the
//     claimer is between two plain instructions of a non-blocking operation.
//     A lock-free operation gives up after a few rounds instead, and the
//     caller falls back to the locked path.
//
// Memory orders. Position CASes, gate RMWs and the loads of the opposite
// position are seq_cst: the full/empty verdicts compare a stamp with the
// other side's position, and the gate argument above needs one order over
// every RMW of a word (any RMW gives that; seq_cst also orders the load of
// the other word after our own claim attempt). Stamps are release (store)
// and acquire (load): the value written into a slot happens-before the
// receiver that sees the "full" stamp reads it, and the move out of a slot
// happens-before the next lap's sender that sees the "empty" stamp writes it.
// Two changes of a word need no RMW, because while its gate is up only the
// holder of the channel's lock changes it (set_gate below): lowering the
// gate, and a privileged claim on a gated word; they are release stores.
// A verdict that reads such a word sees the gate (before or after the
// store) and answers refused, which sends it to the lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

#include "affinity.hpp"
#include "frame_allocator.hpp"
#include "spin_mutex.hpp"

namespace csp::detail {

/// Room for a T whose "has a value" flag is kept elsewhere (a ring slot's
/// stamp, a receive awaiter's padding).
template <class T>
struct value_slot {
    alignas(T) unsigned char bytes[sizeof(T)];
    T& get() noexcept { return *std::launder(reinterpret_cast<T*>(bytes)); }
};

template <class T>
struct ring_slot {
    std::atomic<std::uint64_t> stamp;
    value_slot<T> value;
};

/// Where the two position words sit in a ring's block, before the slots.
/// In a big ring, a producer writes `tail` and a consumer writes `head` on
/// every operation while streaming through the slots, so each gets 128
/// bytes of its own: x86 cores fetch cache lines in aligned pairs (the
/// adjacent-line prefetcher), so words 64 bytes apart can still falsely
/// share (crossbeam's CachePadded is 128 bytes for the same reason). A
/// small ring (a channel per call, a one-slot hand-off) is not a stream:
/// there the padding would only make every channel 240 bytes bigger, so
/// its words sit side by side.
///
/// A padded ring also keeps its channel's home worker (detail/affinity.hpp)
/// in the second line of the head's pair: a word written once and then only
/// read, and only after a lost race.
struct ring_layout {
    static constexpr std::size_t padded_from = 16;  // capacity
    static constexpr std::size_t home_offset = 64;  // padded rings only
    static std::size_t tail_offset(std::size_t capacity) noexcept { return capacity >= padded_from ? 128 : 8; }
    static std::size_t header_bytes(std::size_t capacity) noexcept { return 2 * tail_offset(capacity); }
};

/// What a ring operation did.
enum class ring_result : unsigned char {
    done,       ///< pushed or popped
    not_ready,  ///< full (empty), and no gate was up: at that moment the send
                ///< (receive) could not complete, nobody was parked on that
                ///< side and the channel was not closed
    refused,    ///< a gate was up, or the slot stayed busy: ask the locked path
    // Only from push_once and pop_once (and the steps they make): no verdict yet.
    lost,  ///< lost the race to claim the position
    busy,  ///< the slot is in another operation's hands
};

/// The ring of a buffered channel: untyped, so that channel_base (which
/// select handles without knowing T) can raise and lower its gates; the
/// operations that touch values are templates on T, and the channel always
/// calls them with its own T. Default-constructed: no ring (capacity 0).
class channel_ring {
public:
    channel_ring() = default;
    channel_ring(const channel_ring&) = delete;
    channel_ring& operator=(const channel_ring&) = delete;

    bool enabled() const noexcept { return head_ != nullptr; }
    std::size_t capacity() const noexcept { return capacity_; }

    /// True if a ring of `capacity` T may live in memory that its owner
    /// provides right after itself (see channel_state::make): a small one,
    /// whose slots need no more than the frame allocator's alignment. A big
    /// one gets a block of its own, so that nothing the owner keeps shares
    /// the padded lines of its positions.
    template <class T>
    static bool fits_inline(std::size_t capacity) noexcept {
        return capacity > 0 && capacity < ring_layout::padded_from && cached<T>;
    }
    /// Bytes (and, at most, alignment of the frame allocator) that a ring of
    /// `capacity` T needs.
    template <class T>
    static std::size_t bytes_for(std::size_t capacity) noexcept {
        return slots_offset<T>(capacity) + capacity * sizeof(ring_slot<T>);
    }

    /// Allocates room for `capacity` (> 0) values of T; or, given `inline_block`
    /// (bytes_for<T>(capacity) bytes, when fits_inline), uses that.
    template <class T>
    void allocate(std::size_t capacity, void* inline_block = nullptr) {
        if (capacity > (std::size_t(1) << 40) || capacity > (std::size_t(-1) - 256) / sizeof(ring_slot<T>))
            throw std::bad_array_new_length();
        owns_block_ = inline_block == nullptr;
        auto* block = static_cast<unsigned char*>(owns_block_ ? allocate_block<T>(bytes_for<T>(capacity)) : inline_block);
        head_ = ::new (static_cast<void*>(block)) std::atomic<std::uint64_t>(0);
        tail_ = ::new (static_cast<void*>(block + ring_layout::tail_offset(capacity))) std::atomic<std::uint64_t>(0);
        if (capacity >= ring_layout::padded_from)
            ::new (static_cast<void*>(block + ring_layout::home_offset)) std::atomic<void*>(nullptr);
        slots_ = block + slots_offset<T>(capacity);
        capacity_ = capacity;
        gate_ = 1;
        while (gate_ <= capacity) gate_ <<= 1;  // the index bits lie below the gate bit
        auto* raw = reinterpret_cast<ring_slot<T>*>(slots_);
        for (std::size_t i = 0; i < capacity; ++i) {
            auto* slot = ::new (static_cast<void*>(raw + i)) ring_slot<T>;
            slot->stamp.store(i, std::memory_order_relaxed);  // lap 0: empty, waiting for position i
        }
    }

    /// Destroys the values still buffered and frees the ring. No operation
    /// may be running (the channel's last handle is gone).
    template <class T>
    void release() noexcept {
        if (!head_) return;
        std::uint64_t head = head_->load(std::memory_order_relaxed) & ~gate_;
        const std::uint64_t tail = tail_->load(std::memory_order_relaxed) & ~gate_;
        for (; head != tail; head = next(head)) slots<T>()[index_of(head)].value.get().~T();
        if (owns_block_) deallocate_block<T>(head_, bytes_for<T>(capacity_));
        head_ = tail_ = nullptr;
    }

    /// Appends a value moved from `src`; moves from it only when done.
    /// Lock-free (privileged false): not_ready if the ring is full, refused
    /// if the tail gate is up or the tail stays busy. Privileged (the
    /// channel's lock held): done unless the ring is full.
    template <class T>
    [[gnu::always_inline]] ring_result push(T& src, bool privileged) noexcept {
        if (privileged) return push_loop(src, true);
        ring_result r = push_once(src);
        return needs_again(r) ? push_again(src, r) : r;
    }

    /// Takes the oldest value into `out` (a std::optional<T> or a
    /// receive_into<T>). Lock-free: not_ready if the ring is empty and the
    /// tail gate down, refused if a gate is up or the head stays busy.
    /// Privileged: done unless the ring is empty.
    template <class T, class Out>
    [[gnu::always_inline]] ring_result pop(Out&& out, bool privileged) noexcept {
        if (privileged) return pop_loop<T>(out, true);
        ring_result r = pop_once<T>(out);
        return needs_again(r) ? pop_again<T, Out>(out, r) : r;
    }

    // A lock-free push (pop) in two halves, for a channel's await_ready,
    // which inlines the first and jumps to its own slow half for the rest.
    // The first is one step (push_step, below), the loop's first round: it
    // gives the operation's verdict when it can (gate up, a free slot claimed
    // at once, full), and otherwise says why it could not (`lost`, `busy`);
    // then the second runs the whole loop out of line (from the start: the
    // loop is right from any state). The loop's registers would make every
    // await save and restore more, and so would any call made from the first
    // half (W2 at capacity 1024: 198 to 147 instructions a message).

    /// One try of a lock-free push.
    template <class T>
    [[gnu::always_inline]] ring_result push_once(T& src) noexcept {
        std::uint64_t word = tail_->load(std::memory_order_relaxed);
        return push_step(src, word, false);
    }
    /// The rest of a lock-free push whose push_once answered lost or busy.
    template <class T>
    [[gnu::noinline]] ring_result push_again(T& src, ring_result first) noexcept {
        if (first == ring_result::lost) lost_race(0);
        return push_loop(src, false);
    }

    /// One try of a lock-free pop, like push_once.
    template <class T, class Out>
    [[gnu::always_inline]] ring_result pop_once(Out& out) noexcept {
        std::uint64_t word = head_->load(std::memory_order_relaxed);
        return pop_step<T>(out, word, false);
    }
    /// The rest of a lock-free pop whose pop_once answered lost or busy.
    /// (`out` is taken by value when it is a receive_into, two pointers
    /// passed in registers: by reference, they would have to be stored.)
    template <class T, class Out>
    [[gnu::noinline]] ring_result pop_again(Out out, ring_result first) noexcept {
        if (first == ring_result::lost) lost_race(0);
        return pop_loop<T>(out, false);
    }

    /// True if a push_once (pop_once) answer needs push_again (pop_again).
    static bool needs_again(ring_result r) noexcept { return r >= ring_result::lost; }

private:
    /// One attempt at the position in `word` (the tail as last read): done,
    /// not_ready (full) or refused, as push gives them, or `lost` (the claim
    /// lost a race; `word` now holds the current tail) or `busy` (the slot is
    /// in another operation's hands: wait and read the tail again).
    template <class T>
    [[gnu::always_inline]] ring_result push_step(T& src, std::uint64_t& word, bool privileged) noexcept {
        if (!privileged && (word & gate_)) return ring_result::refused;
        // A privileged claim keeps the gate as it is; a lock-free one found it down.
        const std::uint64_t gate_bit = privileged ? (word & gate_) : 0;
        const std::uint64_t pos = word ^ gate_bit;
        ring_slot<T>& slot = slots<T>()[index_of(pos)];
        const std::uint64_t stamp = slot.stamp.load(std::memory_order_acquire);
        if (stamp == pos) [[likely]] {  // the slot is free for this lap: claim the position
            if (!claim(*tail_, word, next(pos) | gate_bit, privileged)) [[unlikely]]
                return ring_result::lost;
            ::new (static_cast<void*>(slot.value.bytes)) T(std::move(src));
            slot.stamp.store(pos + 1, std::memory_order_release);
            return ring_result::done;
        }
        if (stamp + one_lap() == pos + 1) {  // the slot still holds the last lap's value
            const std::uint64_t head = head_->load(std::memory_order_seq_cst) & ~gate_;
            if (head + one_lap() == pos) return ring_result::not_ready;  // full
            // else a receiver has claimed that value and is moving it out
        }
        // else another sender claimed `pos` after we read the tail
        return ring_result::busy;
    }

    /// One attempt at the position in `word` (the head as last read), like
    /// push_step: done, not_ready (empty) or refused, or lost or busy.
    template <class T, class Out>
    [[gnu::always_inline]] ring_result pop_step(Out& out, std::uint64_t& word, bool privileged) noexcept {
        if (!privileged && (word & gate_)) return ring_result::refused;
        const std::uint64_t gate_bit = privileged ? (word & gate_) : 0;
        const std::uint64_t pos = word ^ gate_bit;
        ring_slot<T>& slot = slots<T>()[index_of(pos)];
        const std::uint64_t stamp = slot.stamp.load(std::memory_order_acquire);
        if (stamp == pos + 1) [[likely]] {  // the slot holds the value of `pos`: claim it
            if (!claim(*head_, word, next(pos) | gate_bit, privileged)) [[unlikely]]
                return ring_result::lost;
            take_value(slot, out, pos);
            return ring_result::done;
        }
        if (stamp == pos) {  // nothing written at `pos` yet
            const std::uint64_t tail = tail_->load(std::memory_order_seq_cst);
            // Empty. With the tail gate up, the channel is closed or
            // has waiters: only the locked path can tell what that means.
            if ((tail & ~gate_) == pos) return tail & gate_ ? ring_result::refused : ring_result::not_ready;
            // else a sender has claimed `pos` and is writing its value
        }
        // else another receiver claimed `pos` after we read the head
        return ring_result::busy;
    }

    /// push and pop in full: steps until a verdict, backing off after a lost
    /// race and waiting a little for a busy slot (a lock-free operation
    /// gives up after a few rounds: refused).
    template <class T>
    [[gnu::always_inline]] ring_result push_loop(T& src, bool privileged) noexcept {
        std::uint64_t word = tail_->load(std::memory_order_relaxed);
        for (int round = 0;; ++round) {
            const ring_result r = push_step(src, word, privileged);
            if (r == ring_result::lost) {
                lost_race(round);
                continue;  // `word` now holds the current tail
            }
            if (r != ring_result::busy) return r;
            if (!wait_a_little(round, privileged)) return ring_result::refused;
            word = tail_->load(std::memory_order_relaxed);
        }
    }

    template <class T, class Out>
    [[gnu::always_inline]] ring_result pop_loop(Out& out, bool privileged) noexcept {
        std::uint64_t word = head_->load(std::memory_order_relaxed);
        for (int round = 0;; ++round) {
            const ring_result r = pop_step<T>(out, word, privileged);
            if (r == ring_result::lost) {
                lost_race(round);
                continue;
            }
            if (r != ring_result::busy) return r;
            if (!wait_a_little(round, privileged)) return ring_result::refused;
            word = head_->load(std::memory_order_relaxed);
        }
    }

    /// Moves the value of claimed position `pos` out of `slot` into `out`
    /// and frees the slot for the next lap.
    template <class T, class Out>
    [[gnu::always_inline]] void take_value(ring_slot<T>& slot, Out& out, std::uint64_t pos) noexcept {
        T& value = slot.value.get();
        out.emplace(std::move(value));
        value.~T();
        slot.stamp.store(pos + one_lap(), std::memory_order_release);
    }

public:
    /// Raising a gate sends the lock-free operations on that end to the
    /// locked path. Called with the channel's lock held (see the top).
    void set_tail_gate(bool raised) noexcept { set_gate(*tail_, raised); }
    void set_head_gate(bool raised) noexcept { set_gate(*head_, raised); }

    /// Number of values buffered or being written (a snapshot).
    std::size_t size() const noexcept {
        if (!head_) return 0;
        for (;;) {
            const std::uint64_t tail = tail_->load(std::memory_order_seq_cst) & ~gate_;
            const std::uint64_t head = head_->load(std::memory_order_seq_cst) & ~gate_;
            if ((tail_->load(std::memory_order_seq_cst) & ~gate_) != tail) continue;
            const std::uint64_t h = index_of(head), t = index_of(tail);
            if (h < t) return std::size_t(t - h);
            if (h > t) return std::size_t(capacity_ - h + t);
            return tail == head ? 0 : capacity_;
        }
    }

private:
    std::uint64_t one_lap() const noexcept { return gate_ << 1; }
    std::uint64_t index_of(std::uint64_t pos) const noexcept { return pos & (gate_ - 1); }
    /// The position after `pos`: the next index, or index 0 of the next lap.
    std::uint64_t next(std::uint64_t pos) const noexcept {
        if (index_of(pos) + 1 < capacity_) [[likely]]
            return pos + 1;
        return (pos & ~(one_lap() - 1)) + one_lap();
    }

    // While a word's gate is up, only the holder of the channel's lock
    // changes that word: a lock-free claim that read the word before the
    // raise fails its CAS (the raise changed the word), and one that reads
    // it after sees the gate and refuses. So lowering the gate, and a
    // privileged claim on a gated word, need no read-modify-write: a plain
    // store (release: the next lock-free claim that reads the word builds on
    // what the lock holder did) cannot overwrite anyone's claim. Raising it
    // must be one, to fail the claims in flight (the comment at the top).
    // Lowering a gate that is already down must not store: lock-free claims
    // are changing the word then. (The load is reliable under the lock: a
    // raise happened before it, under the lock, or the gate is down.)
    void set_gate(std::atomic<std::uint64_t>& word, bool raised) noexcept {
        if (raised) {
            word.fetch_or(gate_, std::memory_order_seq_cst);
            return;
        }
        const std::uint64_t seen = word.load(std::memory_order_relaxed);
        if (seen & gate_) word.store(seen & ~gate_, std::memory_order_release);
    }

    /// Moves a position word from `seen` to `claimed`: a CAS, or, for a
    /// privileged operation that found the word's gate up, a store (see
    /// set_gate). False (with `seen` updated) if a CAS lost.
    bool claim(std::atomic<std::uint64_t>& word, std::uint64_t& seen, std::uint64_t claimed, bool privileged) noexcept {
        if (privileged && (seen & gate_)) {
            word.store(claimed, std::memory_order_release);
            return true;
        }
        return word.compare_exchange_weak(seen, claimed, std::memory_order_seq_cst, std::memory_order_relaxed);
    }

    /// Backs off while another thread finishes its claim. A lock-free
    /// operation gives up after a few rounds (the caller takes the lock);
    /// a privileged one waits, yielding the CPU if the claimer was preempted.
    /// After a lost CAS on a position word. The winner runs on another
    /// core and is usually in the middle of a run of operations on the same
    /// end; retrying at once pulls the word's line back to us between two of
    /// its operations, and on a two-core machine the two ends of a busy
    /// channel then cost a line transfer per message (W3: 90 ns a message at
    /// 4+4 goroutines, against 20 ns on one worker). Waiting 2^round pauses,
    /// doubling with each loss in a row, lets the winner finish its run with
    /// the line in its cache (crossbeam's Backoff does the same). The cap is
    /// 2^8 pauses (about 6 microseconds here): in W3, caps of 6, 8, 10 and
    /// 13 measured 60, 57, 55 and 56 ns a message (docs/performance.md).
    static void contention_backoff(int round) noexcept { backoff_pause(round, 8); }

    /// After a lost CAS: records it for contention affinity (a padded ring
    /// only: a small one is a hand-off, not a stream two workers share),
    /// then backs off. Out of line, so that this slow path does not crowd
    /// the operations' fast paths, which are inlined into every await.
    [[gnu::noinline]] void lost_race(int round) const noexcept {
        if (capacity_ >= ring_layout::padded_from) note_contention(home());
        contention_backoff(round);
    }
    std::atomic<void*>& home() const noexcept {
        return *std::launder(reinterpret_cast<std::atomic<void*>*>(reinterpret_cast<unsigned char*>(head_) +
                                                                  ring_layout::home_offset));
    }

    static bool wait_a_little(int round, bool privileged) noexcept {
        if (!privileged && round >= 4) return false;
        if (round < 64) cpu_relax();
        else std::this_thread::yield();
        return true;
    }

    template <class T>
    static std::size_t slots_offset(std::size_t capacity) noexcept {
        constexpr std::size_t a = alignof(ring_slot<T>);
        return (ring_layout::header_bytes(capacity) + a - 1) / a * a;
    }
    // Small rings come from the frame caches, like channel states (a program
    // that makes a channel per call reuses them without malloc's
    // cross-thread frees); over-aligned T goes to aligned operator new.
    template <class T>
    static constexpr bool cached = alignof(ring_slot<T>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
    template <class T>
    static void* allocate_block(std::size_t n) {
        if constexpr (cached<T>) return allocate_frame(n);
        else return ::operator new(n, std::align_val_t(alignof(ring_slot<T>)));
    }
    template <class T>
    static void deallocate_block(void* p, std::size_t n) noexcept {
        if constexpr (cached<T>) deallocate_frame(p, n);
        else ::operator delete(p, std::align_val_t(alignof(ring_slot<T>)));
    }
    template <class T>
    ring_slot<T>* slots() const noexcept {
        return std::launder(reinterpret_cast<ring_slot<T>*>(slots_));
    }

    std::atomic<std::uint64_t>* head_ = nullptr;  // both in the block allocated
    std::atomic<std::uint64_t>* tail_ = nullptr;  // with the slots (ring_layout)
    unsigned char* slots_ = nullptr;
    std::uint64_t gate_ = 0;  // a power of two above every index; one lap is twice it
    std::size_t capacity_ = 0;
    bool owns_block_ = false;
};

}  // namespace csp::detail
