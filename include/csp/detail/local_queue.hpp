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
// Synchronisation: head, tail and a version number share one 64-bit atomic
// word, and every change to the queue's extent (push, pop at either end,
// steal) is a compare-and-swap on that word that also bumps the version.
//   * A thief reads the word, copies the slots of [head, head + n), and
//     commits with a CAS. If the CAS succeeds, the word did not change since
//     the read, so no push, pop or other steal happened in between, and the
//     copied slots are the live entries. The version rules out ABA: without
//     it, an owner popping the newest entry and pushing another would restore
//     the same head and tail with a different handle in the slot.
//   * The owner writes a slot only at index `tail`, outside [head, tail)
//     (there is room: tail - head < capacity), so no snapshot that can still
//     commit covers a slot being written. Slots are relaxed atomics so that
//     a thief's read of a slot that is being rewritten (its CAS will then
//     fail) is not a data race in the C++ model.
// The version wraps after 2^32 changes; a thief would have to stall between
// its read and its CAS for that many queue operations to be fooled.
#pragma once

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
    /// csp::go's path: written through push_batch's loop, W8 fib ran 7-13
    /// more instructions a call (callgrind).
    bool push(std::coroutine_handle<> h) noexcept {
        // acquire: see the thieves' progress (how much room there is).
        std::uint64_t w = word_.load(std::memory_order_acquire);
        extent e = unpack(w);
        if (e.size() >= capacity) return false;
        // Only the owner moves the tail, so the slot is the same on every
        // retry below; it lies outside [head, tail), which nobody reads.
        slots_[e.tail % capacity].store(h.address(), std::memory_order_relaxed);
        // seq_cst (it includes release: a thief that reads the new word with
        // acquire sees the slot): the pool's wake-up protocol orders this
        // push before its seq_cst load of the idle count (see
        // work_stealing_pool.hpp). On x86 every CAS is the same instruction.
        // On failure (a thief moved the head) retry with the new word.
        while (!word_.compare_exchange_weak(w, pack(e.version + 1, e.head, std::uint16_t(e.tail + 1)),
                                            std::memory_order_seq_cst, std::memory_order_acquire)) {
            e = unpack(w);
            if (e.size() >= capacity) return false;
        }
        return true;
    }

    /// Owner only: pushes `n` handles, `first[0]` oldest, with one CAS
    /// instead of one per handle (a thief refilling its own queue with a
    /// stolen batch, a share of the global queue). Returns how many fit;
    /// those are the first ones. The slots written lie at and beyond the
    /// tail, outside [head, tail), as for push; and since only the owner
    /// moves the tail, a retry after a thief moved the head writes the same
    /// slots again.
    std::uint32_t push_batch(const std::coroutine_handle<>* first, std::uint32_t n) noexcept {
        // acquire: see the thieves' progress (how much room there is).
        std::uint64_t w = word_.load(std::memory_order_acquire);
        for (;;) {
            extent e = unpack(w);
            const std::uint32_t room = capacity - e.size();
            const std::uint32_t k = n < room ? n : room;
            if (k == 0) return 0;
            for (std::uint32_t i = 0; i < k; ++i)
                slots_[std::uint16_t(e.tail + i) % capacity].store(first[i].address(), std::memory_order_relaxed);
            // seq_cst, like push: it publishes the slots (release) and takes
            // part in the pool's wake-up protocol. A failure means a thief
            // moved the head: there is more room now, so recompute.
            if (word_.compare_exchange_weak(w, pack(e.version + 1, e.head, std::uint16_t(e.tail + k)),
                                            std::memory_order_seq_cst, std::memory_order_acquire))
                return k;
        }
    }

    /// Owner only: queues `h` behind every entry, as the new oldest one (a
    /// yield: it runs after all the work queued now, and it is the first
    /// entry a thief takes). False if full. The slot written, at head - 1,
    /// is outside [head, tail) like push's, and there is room, so it is not
    /// the tail's slot either; a thief whose snapshot is older than this
    /// CAS fails its own CAS, as against push.
    bool push_oldest(std::coroutine_handle<> h) noexcept {
        std::uint64_t w = word_.load(std::memory_order_acquire);
        for (;;) {
            extent e = unpack(w);
            if (e.size() >= capacity) return false;
            const std::uint16_t head = std::uint16_t(e.head - 1);
            // The head can move (thieves), so the slot is chosen anew on
            // every attempt; a slot written by a failed attempt lies outside
            // [head, tail) and is never read.
            slots_[head % capacity].store(h.address(), std::memory_order_relaxed);
            // seq_cst, like push (the wake-up protocol and the release that
            // publishes the slot to thieves).
            if (word_.compare_exchange_weak(w, pack(e.version + 1, head, e.tail), std::memory_order_seq_cst,
                                            std::memory_order_acquire))
                return true;
        }
    }

    /// Owner only: the newest entry (the one pushed last), or null.
    std::coroutine_handle<> pop_newest() noexcept {
        std::uint64_t w = word_.load(std::memory_order_acquire);
        for (;;) {
            extent e = unpack(w);
            if (e.size() == 0) return {};
            std::uint16_t t = std::uint16_t(e.tail - 1);
            void* p = slots_[t % capacity].load(std::memory_order_relaxed);  // we wrote it
            // seq_cst, like every change of the word, so that the word's
            // modifications all sit in the single total order the pool's
            // wake-up protocol reasons about; a failed CAS reloads the word
            // and retries.
            if (word_.compare_exchange_weak(w, pack(e.version + 1, e.head, t), std::memory_order_seq_cst,
                                            std::memory_order_acquire)) {
                if (e.size() > 1) prefetch_frame(slots_[std::uint16_t(t - 1) % capacity].load(std::memory_order_relaxed));
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

    /// A consistent snapshot of the number of entries. seq_cst: a parking
    /// worker's last look at the queues is part of the pool's wake-up
    /// protocol (a plain load on x86).
    std::uint32_t size() const noexcept { return unpack(word_.load(std::memory_order_seq_cst)).size(); }
    bool empty() const noexcept { return size() == 0; }

private:
    /// Starts fetching the frame of the entry that will run next. A stolen
    /// batch's frames were written by the worker that spawned them, so their
    /// lines sit in that core's cache; the transfer overlaps with the run of
    /// the current entry. A prefetch never faults, so an entry that a thief
    /// takes meanwhile (its frame may be gone) is harmless.
    static void prefetch_frame(void* frame) noexcept { __builtin_prefetch(frame, 1); }

    struct extent {
        std::uint32_t version;
        std::uint16_t head;
        std::uint16_t tail;
        std::uint32_t size() const noexcept { return std::uint16_t(tail - head); }
    };
    // head and tail are 16-bit counters: sizes must fit, and a slot index
    // (counter % capacity) must not jump when a counter wraps.
    static_assert(capacity < (1u << 15) && (1u << 16) % capacity == 0);

    static std::uint64_t pack(std::uint32_t version, std::uint16_t head, std::uint16_t tail) noexcept {
        return std::uint64_t(version) << 32 | std::uint64_t(head) << 16 | tail;
    }
    static extent unpack(std::uint64_t w) noexcept {
        return {std::uint32_t(w >> 32), std::uint16_t(w >> 16), std::uint16_t(w)};
    }

    /// Takes min(limit, half of the queue rounded up) entries from the head,
    /// handing each to `take` once the batch is committed. Any thread.
    template <class Take>
    std::uint32_t grab_oldest(std::uint32_t limit, Take&& take) noexcept {
        std::array<void*, capacity / 2> copy;
        // acquire: pairs with push's release, so the slots copied are the
        // ones the pushes published.
        std::uint64_t w = word_.load(std::memory_order_acquire);
        std::uint32_t n;
        for (;;) {
            extent e = unpack(w);
            n = e.size() - e.size() / 2;
            if (n > limit) n = limit;
            if (n == 0) return 0;
            for (std::uint32_t i = 0; i < n; ++i)
                copy[i] = slots_[std::uint16_t(e.head + i) % capacity].load(std::memory_order_relaxed);
            // seq_cst (at least acq_rel: commits the batch, see the file
            // comment); a failure means the copy may be stale: retry with
            // the word we read.
            if (word_.compare_exchange_weak(w, pack(e.version + 1, std::uint16_t(e.head + n), e.tail),
                                            std::memory_order_seq_cst, std::memory_order_acquire))
                break;
        }
        for (std::uint32_t i = 0; i < n; ++i) take(copy[i]);
        return n;
    }

    alignas(64) std::atomic<std::uint64_t> word_{0};
    alignas(64) std::array<std::atomic<void*>, capacity> slots_{};
};

}  // namespace csp::detail
