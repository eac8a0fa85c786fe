// csp/detail/goroutine_wait.hpp - what a goroutine is blocked on, readable
// from any thread.
//
// A goroutine records its wait when it parks (a channel operation, a select,
// a sleep, a wait_group) and clears it when it resumes. A goroutine dump reads
// the record from another thread while the goroutine may be parking or
// resuming, so the record is a sequence lock over atomic fields:
//
//   * One writer at a time: only the goroutine itself writes, and it runs on
//     one thread at a time (its resumptions are ordered by the executor's
//     hand-off), so the writer needs no lock.
//   * Readers retry until they see the same even sequence number before and
//     after reading the fields, so a dump never pairs the operation of one
//     wait with the channel of another.
//
// Every field is an atomic, so concurrent reads are not data races (and
// ThreadSanitizer, which does not model fences, has nothing to report).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <thread>
#include <typeinfo>

namespace csp::detail {

/// Monotonic nanoseconds from the coarse clock: a few nanoseconds to read
/// (no syscall), a few milliseconds of resolution, which is plenty for "how
/// long has this goroutine been blocked".
inline std::int64_t coarse_now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// The optional part of a wait: for a channel operation the element type
/// and capacity; for a select the number of cases.
struct wait_detail {
    const std::type_info* element = nullptr;  ///< channel element type; null if not a channel operation
    std::size_t count = 0;                    ///< channel capacity, or the number of select cases
};

/// A consistent copy of a goroutine's wait record.
struct wait_snapshot {
    const char* what = nullptr;  ///< null: not blocked in csp
    const void* object = nullptr;
    wait_detail detail;
    std::int64_t since_ns = 0;  ///< coarse_now_ns() when it parked
    bool torn = false;          ///< the goroutine kept changing while we read it
};

class goroutine_wait {
public:
    /// Records a wait. Called by the goroutine itself.
    void set(const char* what, const void* object, wait_detail d) noexcept {
        write([&] {
            object_.store(object, std::memory_order_release);
            element_.store(d.element, std::memory_order_release);
            count_.store(d.count, std::memory_order_release);
            since_.store(coarse_now_ns(), std::memory_order_release);
            what_.store(what, std::memory_order_release);
        });
    }

    /// Clears the wait. Called by the goroutine itself.
    void clear() noexcept {
        write([&] { what_.store(nullptr, std::memory_order_release); });
    }

    /// Reads the record consistently; from any thread.
    wait_snapshot read() const noexcept {
        for (int attempt = 0; attempt < 1000; ++attempt) {
            // acquire: if the sequence is even and from the writer's last
            // store, the field stores before it are visible to the loads below.
            std::uint32_t before = seq_.load(std::memory_order_acquire);
            if (before & 1) {
                std::this_thread::yield();  // a write is in progress: a few stores, let it finish
                continue;
            }
            wait_snapshot s;
            // acquire on each field: a field value from a newer write makes
            // that write's odd sequence store visible, so the check below
            // fails; acquire also keeps the final sequence load after these.
            s.what = what_.load(std::memory_order_acquire);
            s.object = object_.load(std::memory_order_acquire);
            s.detail.element = element_.load(std::memory_order_acquire);
            s.detail.count = count_.load(std::memory_order_acquire);
            s.since_ns = since_.load(std::memory_order_acquire);
            if (seq_.load(std::memory_order_relaxed) == before) return s;
        }
        wait_snapshot s;
        s.torn = true;
        return s;
    }

private:
    template <class Fields>
    void write(Fields fields) noexcept {
        // relaxed load: only this goroutine writes seq_, and its previous
        // write happened-before this one (same goroutine, ordered resumptions).
        std::uint32_t s = seq_.load(std::memory_order_relaxed);
        // relaxed: the fields' release stores publish this odd value to any
        // reader that sees one of them (see read()).
        seq_.store(s + 1, std::memory_order_relaxed);
        fields();
        // release: a reader that sees the even value sees all the fields.
        seq_.store(s + 2, std::memory_order_release);
    }

    std::atomic<std::uint32_t> seq_{0};
    std::atomic<const char*> what_{nullptr};
    std::atomic<const void*> object_{nullptr};
    std::atomic<const std::type_info*> element_{nullptr};
    std::atomic<std::size_t> count_{0};
    std::atomic<std::int64_t> since_{0};
};

}  // namespace csp::detail
