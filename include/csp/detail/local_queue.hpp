// csp/detail/local_queue.hpp - a worker's bounded run queue: one owner, many thieves.
//
// The owner pushes at the tail and pops at the head (FIFO, so goroutines on
// one worker run in the order they became ready); thieves take a batch of
// half the queue from the head. This is the design of Go's per-P runq
// (runtime/proc.go: runqput, runqget, runqgrab).
//
// Indices are free-running 32-bit counters; a slot is index % capacity.
//   - `tail_` is written only by the owner (release), read by thieves (acquire).
//   - `head_` is advanced by the owner and by thieves with compare-and-swap.
// A pusher may only write slot tail%N when tail - head < N, so a slot being
// read by a thief (somewhere in [head, tail)) is never overwritten until the
// head has moved past it, and a thief whose copy raced with that finds its
// CAS on `head_` failing and throws the copy away. Slots are atomics (relaxed)
// so such a stale read is not a data race in the C++ model.
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
    bool push(std::coroutine_handle<> h) noexcept {
        std::uint32_t t = tail_.load(std::memory_order_relaxed);       // only we write it
        std::uint32_t hd = head_.load(std::memory_order_acquire);      // thieves' progress
        if (t - hd >= capacity) return false;
        slots_[t % capacity].store(h.address(), std::memory_order_relaxed);
        tail_.store(t + 1, std::memory_order_release);  // publishes the slot to thieves
        return true;
    }

    /// Owner only.
    std::coroutine_handle<> pop() noexcept {
        std::uint32_t hd = head_.load(std::memory_order_acquire);
        for (;;) {
            std::uint32_t t = tail_.load(std::memory_order_relaxed);
            if (hd == t) return {};
            void* p = slots_[hd % capacity].load(std::memory_order_relaxed);
            // acq_rel: the CAS claims the slot against thieves. On failure
            // `hd` is reloaded and we retry.
            if (head_.compare_exchange_weak(hd, hd + 1, std::memory_order_acq_rel, std::memory_order_acquire))
                return std::coroutine_handle<>::from_address(p);
        }
    }

    /// Owner only: moves up to half of the queue into `out` (for overflow to
    /// the global queue). Returns how many were moved.
    template <class Out>
    std::uint32_t pop_half(Out&& out) noexcept {
        std::uint32_t n = 0;
        std::uint32_t half = size() / 2;
        while (n < half) {
            auto h = pop();
            if (!h) break;
            out(h);
            ++n;
        }
        return n;
    }

    /// Any thread: steals about half of this queue into `into` (which must
    /// be the caller's own queue, and empty, so the batch always fits). Returns one stolen handle to run
    /// now, or null; the rest are pushed into `into`.
    std::coroutine_handle<> steal_into(local_queue& into) noexcept {
        std::array<void*, capacity / 2> batch;
        std::uint32_t n;
        for (;;) {
            std::uint32_t hd = head_.load(std::memory_order_acquire);
            std::uint32_t t = tail_.load(std::memory_order_acquire);  // pairs with push's release
            n = t - hd;
            n -= n / 2;
            if (n == 0) return {};
            if (n > capacity / 2) continue;  // read an inconsistent head/tail pair; retry
            for (std::uint32_t i = 0; i < n; ++i)
                batch[i] = slots_[(hd + i) % capacity].load(std::memory_order_relaxed);
            // acq_rel: commit the batch; fails if the owner or another thief
            // moved the head meanwhile, in which case the copy is stale.
            if (head_.compare_exchange_strong(hd, hd + n, std::memory_order_acq_rel, std::memory_order_acquire))
                break;
        }
        for (std::uint32_t i = 1; i < n; ++i) into.push(std::coroutine_handle<>::from_address(batch[i]));
        return std::coroutine_handle<>::from_address(batch[0]);
    }

    /// A snapshot; exact only when called by the owner with no thief active.
    /// The head is read first: it never passes the tail, so the difference
    /// cannot underflow.
    std::uint32_t size() const noexcept {
        std::uint32_t hd = head_.load(std::memory_order_acquire);
        return tail_.load(std::memory_order_acquire) - hd;
    }
    bool empty() const noexcept { return size() == 0; }

private:
    alignas(64) std::atomic<std::uint32_t> head_{0};
    alignas(64) std::atomic<std::uint32_t> tail_{0};
    alignas(64) std::array<std::atomic<void*>, capacity> slots_{};
};

}  // namespace csp::detail
