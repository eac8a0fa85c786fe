// csp/detail/local_queue.hpp - a worker's bounded run queue: one owner, many thieves.
//
// The owner pushes at the tail and normally pops there too (newest first),
// and now and then pops the oldest entry at the head (or, for a yield, pushes
// a new oldest one there); thieves take a batch of
// half the queue from the head (oldest first). This is the work-first order
// of Cilk and oneTBB: a goroutine that spawns children and then waits for
// them has its children run depth-first on its own worker, so a fork/join
// tree keeps O(depth) frames alive instead of a whole level of the tree, and
// the frames it touches are still in cache. Thieves take the oldest work,
// the roots of the biggest subtrees. Fairness (nothing waits forever behind
// newer work) is the scheduler's job: it takes the oldest entry when the
// queue has not been empty for a while (see work_stealing_pool.hpp).
//
// Synchronisation. The tail is a word of its own that only the owner writes;
// the head and a version number share a second word, which every change of
// the head (a steal, the owner's pops and its push at the oldest end) and
// every pop of the newest entry changes by compare-and-swap, bumping the
// version. A push is a plain store of the slot and a release store of the
// tail: no locked instruction, so a goroutine that spawns in a loop does not
// wait at each spawn for its earlier stores (the new frame's, which usually
// miss) to drain, as a compare-and-swap makes it (W5, docs/performance.md).
//   * A thief reads the head word, then the tail, copies the slots of
//     [head, head + n) (n: half of what it saw, rounded up), and commits with
//     a CAS on the head word. If the CAS succeeds, the head word did not
//     change since the read: no pop, no other steal came in between. Pushes
//     may have; they only add entries beyond the tail the thief read.
//   * The owner pops the newest entry by lowering the tail first and then
//     bumping the version by CAS. A thief that reads the head word after
//     that CAS sees the lowered tail (the CAS releases the store), so its
//     batch ends below the popped entry; a thief that read the word before
//     it fails its own CAS. If a thief's CAS came first, the owner sees the
//     new head: if the batch took the popped entry too (which happens only
//     when it was the one entry: a batch is half of what the thief saw,
//     rounded up), the queue is empty and the owner puts the tail back up
//     to the head; otherwise it tries again. Meanwhile a reader may see the tail
//     one below the head: sizes are read as signed differences, and a
//     negative one counts as empty.
//   * The owner writes a slot only at or beyond the tail (or, for
//     push_oldest, at head - 1, under a CAS), outside [head, tail), and only
//     when there is room, so no batch that can still commit covers a slot
//     being written. Slots are relaxed atomics so that a thief's read of a
//     slot that is being rewritten (its CAS will then fail) is not a data
//     race in the C++ model.
//   * A thief's two reads are not one snapshot: by the time it reads the
//     tail, other thieves may have moved the head on and the owner pushed
//     into the room they made, so tail - head can exceed the capacity. Such
//     a head is stale and its CAS would fail; the thief looks again before
//     copying anything.
//   * A push's release store orders nothing after it: the pool's wake-up
//     protocol, which needs a StoreLoad barrier between a push and the
//     poster's look at the idle workers, gets it from an asymmetric fence
//     (detail/asymmetric_fence.hpp, work_stealing_pool.hpp).
// The version wraps after 2^32 changes; a thief would have to stall between
// its read and its CAS for that many pops and steals to be fooled.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <coroutine>
#include <cstdint>

namespace csp::detail {

class local_queue {
public:
    static constexpr std::uint32_t capacity = 256;

    /// Owner only. False if full (the caller moves work to the global queue).
    /// The one-handle case of push_batch, kept apart because it is every
    /// csp::go's path.
    bool push(std::coroutine_handle<> h) noexcept {
        const std::uint16_t t = tail_.load(std::memory_order_relaxed);  // ours
        if (!has_room(t, 1)) return false;
        slots_[t % capacity].store(h.address(), std::memory_order_relaxed);
        // release: a thief that reads this tail (acquire) sees the slot.
        tail_.store(std::uint16_t(t + 1), std::memory_order_release);
        return true;
    }

    /// Owner only: pushes `n` handles, `first[0]` oldest, with one store of
    /// the tail (a thief refilling its own queue with a stolen batch, a
    /// share of the global queue). Returns how many fit; those are the first
    /// ones.
    std::uint32_t push_batch(const std::coroutine_handle<>* first, std::uint32_t n) noexcept {
        const std::uint16_t t = tail_.load(std::memory_order_relaxed);
        std::uint32_t k = n;
        if (!has_room(t, k)) k = std::min(k, room(t));
        for (std::uint32_t i = 0; i < k; ++i)
            slots_[std::uint16_t(t + i) % capacity].store(first[i].address(), std::memory_order_relaxed);
        // release: publishes the slots, as push.
        if (k != 0) tail_.store(std::uint16_t(t + k), std::memory_order_release);
        return k;
    }

    /// Owner only: queues `h` behind every entry, as the new oldest one (a
    /// yield: it runs after all the work queued now, and it is the first
    /// entry a thief takes). False if full. The slot written, at head - 1,
    /// is outside [head, tail), and there is room, so it is not the tail's
    /// slot either; a thief whose snapshot is older than this CAS fails its
    /// own CAS.
    bool push_oldest(std::coroutine_handle<> h) noexcept {
        const std::uint16_t t = tail_.load(std::memory_order_relaxed);
        std::uint64_t w = head_word_.load(std::memory_order_acquire);
        for (;;) {
            const head_state s = unpack(w);
            if (distance(s.head, t) >= std::int32_t(capacity)) return false;
            const std::uint16_t head = std::uint16_t(s.head - 1);
            // The head can move (thieves), so the slot is chosen anew on
            // every attempt; a slot written by a failed attempt lies outside
            // [head, tail) and is never read.
            slots_[head % capacity].store(h.address(), std::memory_order_relaxed);
            // seq_cst (at least release: publishes the slot to thieves).
            if (head_word_.compare_exchange_weak(w, pack(s.version + 1, head), std::memory_order_seq_cst,
                                                 std::memory_order_acquire)) {
                known_head_ = head;
                return true;
            }
        }
    }

    /// Owner only: the newest entry (the one pushed last), or null.
    std::coroutine_handle<> pop_newest() noexcept {
        const std::uint16_t t = tail_.load(std::memory_order_relaxed);
        std::uint64_t w = head_word_.load(std::memory_order_acquire);
        if (distance(unpack(w).head, t) <= 0) return {};
        const std::uint16_t newest = std::uint16_t(t - 1);
        // Lower the tail before the CAS below, which releases this store:
        // a thief that reads the head word after the CAS sees the tail
        // below `newest`, so its batch stops short of it (file comment).
        tail_.store(newest, std::memory_order_relaxed);
        for (;;) {
            const head_state s = unpack(w);
            if (distance(s.head, newest) < 0) {
                // A thief's batch took it (it was the one entry): empty.
                // Put the tail back up to the head.
                tail_.store(s.head, std::memory_order_relaxed);
                known_head_ = s.head;
                return {};
            }
            // seq_cst: the version bump that makes every older snapshot of a
            // thief fail; a failure means a thief committed: look again.
            if (head_word_.compare_exchange_weak(w, pack(s.version + 1, s.head), std::memory_order_seq_cst,
                                                 std::memory_order_acquire)) {
                known_head_ = s.head;
                void* p = slots_[newest % capacity].load(std::memory_order_relaxed);  // we wrote it
                if (distance(s.head, newest) > 0)
                    prefetch_frame(slots_[std::uint16_t(newest - 1) % capacity].load(std::memory_order_relaxed));
                return std::coroutine_handle<>::from_address(p);
            }
        }
    }

    /// Owner only: the oldest entry, or null.
    std::coroutine_handle<> pop_oldest() noexcept {
        std::coroutine_handle<> h;
        grab_oldest(1, [&](void* p) { h = std::coroutine_handle<>::from_address(p); });
        return h;
    }

    /// Owner only: moves up to half of the queue, oldest first, into `out`
    /// (for overflow to the global queue). Returns how many were moved.
    template <class Out>
    std::uint32_t pop_half(Out&& out) noexcept {
        return grab_oldest(size() / 2, [&](void* p) { out(std::coroutine_handle<>::from_address(p)); });
    }

    /// Any thread: steals about half of this queue, oldest first, into
    /// `into` (which must be the caller's own queue, and empty, so the batch
    /// always fits). Returns one stolen handle to run now, or null; the rest
    /// are pushed into `into`.
    std::coroutine_handle<> steal_into(local_queue& into) noexcept {
        std::array<std::coroutine_handle<>, capacity / 2> batch;
        std::uint32_t n = grab_oldest(capacity, [&, i = 0u](void* p) mutable {
            batch[i++] = std::coroutine_handle<>::from_address(p);
        });
        if (n == 0) return {};
        into.push_batch(batch.data() + 1, n - 1);  // fits: `into` is empty and n <= capacity / 2
        return batch[0];
    }

    /// The number of entries (0 while a pop of the last one is under way).
    /// seq_cst loads: a parking worker's last look at the queues is part of
    /// the pool's wake-up protocol (plain loads on x86).
    std::uint32_t size() const noexcept {
        const std::uint16_t head = unpack(head_word_.load(std::memory_order_seq_cst)).head;
        const std::int32_t d = distance(head, tail_.load(std::memory_order_seq_cst));
        // (A reader other than the owner may pair a head with a later tail,
        // past room the thieves made since: at most capacity counts.)
        return d <= 0 ? 0 : d > std::int32_t(capacity) ? capacity : std::uint32_t(d);
    }
    bool empty() const noexcept { return size() == 0; }

private:
    /// Starts fetching the frame of the entry that will run next. A stolen
    /// batch's frames were written by the worker that spawned them, so their
    /// lines sit in that core's cache; the transfer overlaps with the run of
    /// the current entry. A prefetch never faults, so an entry that a thief
    /// takes meanwhile (its frame may be gone) is harmless.
    static void prefetch_frame(void* frame) noexcept { __builtin_prefetch(frame, 1); }

    struct head_state {
        std::uint32_t version;
        std::uint16_t head;
    };
    // head and tail are 16-bit counters: sizes must fit in a signed 16-bit
    // difference, and a slot index (counter % capacity) must not jump when a
    // counter wraps.
    static_assert(capacity < (1u << 14) && (1u << 16) % capacity == 0);

    static std::uint64_t pack(std::uint32_t version, std::uint16_t head) noexcept {
        return std::uint64_t(version) << 32 | head;
    }
    static head_state unpack(std::uint64_t w) noexcept { return {std::uint32_t(w >> 32), std::uint16_t(w)}; }
    /// tail - head as a signed number: -1 while a pop of the last entry is
    /// under way (see pop_newest), never below.
    static std::int32_t distance(std::uint16_t head, std::uint16_t tail) noexcept {
        return std::int16_t(std::uint16_t(tail - head));
    }

    /// Owner only: room for k more entries behind tail `t`? The head only
    /// moves forward under the thieves, so the owner's last look at it
    /// (`known_head_`) gives at most the room there is; the head word is
    /// read (a line the thieves write) only when that look says full.
    /// (Pushes keep tail - known_head_ within capacity, so the difference
    /// never wraps however far the thieves have moved the head since.)
    bool has_room(std::uint16_t t, std::uint32_t k) noexcept {
        return distance(known_head_, t) + std::int32_t(k) <= std::int32_t(capacity) || room(t) >= k;
    }
    /// Owner only: how many entries fit behind tail `t`, from a fresh look
    /// at the head.
    std::uint32_t room(std::uint16_t t) noexcept {
        // acquire: the thieves' progress; the slots they copied are theirs
        // before we write them again.
        known_head_ = unpack(head_word_.load(std::memory_order_acquire)).head;
        const std::int32_t d = distance(known_head_, t);
        return d < 0 ? capacity : capacity - std::uint32_t(d);
    }

    /// Takes min(limit, half of the queue rounded up) entries from the head,
    /// handing each to `take` once the batch is committed. Any thread.
    template <class Take>
    std::uint32_t grab_oldest(std::uint32_t limit, Take&& take) noexcept {
        std::array<void*, capacity / 2> copy;
        // acquire: after it, the tail read below is at least the one of
        // the last pop that bumped the version we read (see pop_newest).
        std::uint64_t w = head_word_.load(std::memory_order_acquire);
        std::uint32_t n;
        for (;;) {
            const head_state s = unpack(w);
            // acquire: pairs with the pushes' release, so the slots copied
            // are the ones they published.
            const std::int32_t size = distance(s.head, tail_.load(std::memory_order_acquire));
            if (size <= 0) return 0;
            if (size > std::int32_t(capacity)) {
                // The head we read is stale: thieves moved it on and the
                // owner pushed into the room they made. The CAS below could
                // not succeed; look again (and never copy more than fits).
                w = head_word_.load(std::memory_order_acquire);
                continue;
            }
            n = std::uint32_t(size - size / 2);
            if (n > limit) n = limit;
            if (n == 0) return 0;
            for (std::uint32_t i = 0; i < n; ++i)
                copy[i] = slots_[std::uint16_t(s.head + i) % capacity].load(std::memory_order_relaxed);
            // seq_cst (at least acq_rel: commits the batch, see the file
            // comment); a failure means the copy may be stale: retry with
            // the word we read.
            if (head_word_.compare_exchange_weak(w, pack(s.version + 1, std::uint16_t(s.head + n)),
                                                 std::memory_order_seq_cst, std::memory_order_acquire))
                break;
        }
        for (std::uint32_t i = 0; i < n; ++i) take(copy[i]);
        return n;
    }

    // Each on its own line: the thieves write the head word, the owner the
    // tail (and reads the head word only when the queue looks full).
    alignas(64) std::atomic<std::uint64_t> head_word_{0};
    alignas(64) std::atomic<std::uint16_t> tail_{0};
    std::uint16_t known_head_ = 0;  // owner only: see has_room
    alignas(64) std::array<std::atomic<void*>, capacity> slots_{};
};

}  // namespace csp::detail
