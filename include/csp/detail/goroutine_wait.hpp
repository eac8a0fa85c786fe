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

/// What kind of wait a goroutine is in: the text a dump shows and, for a
/// channel operation, the element type. One static instance per kind (and
/// element type), so that a wait record stores one pointer for both.
struct wait_kind {
    const char* what;
    const std::type_info* element = nullptr;  ///< channel element type; null if not a channel operation
};

/// The optional part of a wait, as a snapshot shows it: for a channel
/// operation the element type and capacity; for a select the number of cases.
struct wait_detail {
    const std::type_info* element = nullptr;  ///< channel element type; null if not a channel operation
    std::size_t count = 0;                    ///< channel capacity, or the number of select cases
};

/// A consistent copy of a goroutine's wait record.
struct wait_snapshot {
    const char* what = nullptr;  ///< null: not blocked in csp
    const void* object = nullptr;
    wait_detail detail;
    std::int64_t since_ns = 0;  ///< coarse_now_ns() when it parked (to the millisecond)
    bool torn = false;          ///< the goroutine kept changing while we read it
};

/// The record itself: three words, because every goroutine carries one
/// (SPEC §9, W6). The kind is one pointer to a static descriptor; the
/// object's address (48 bits: a user-space address on x86-64 and on aarch64
/// Linux) shares a word with the count's low 16 bits; the park time (32 bits
/// of milliseconds), the count's high 16 bits and a 16-bit sequence number
/// share the third. A change is a seqlock write: the sequence is made odd,
/// the fields are stored, then the third word is stored whole with the new
/// time, count and even sequence; a reader keeps what it read only if the
/// third word was the same, and even, before and after.
class goroutine_wait {
public:
    goroutine_wait() noexcept = default;

    /// Records a wait. Called by the goroutine itself. A count beyond 32
    /// bits (a channel capacity over 4 billion) is recorded as 2^32 - 1.
    void set(const wait_kind& kind, const void* object, std::size_t count) noexcept {
        const std::uint64_t count32 = count > UINT32_MAX ? UINT32_MAX : count;
        const std::uint64_t address = reinterpret_cast<std::uintptr_t>(object) & address_mask;
        write(std::uint64_t(coarse_now_ms32()) << 32 | (count32 >> 16) << 16, [&] {
            object_count_.store(address | (count32 & 0xffff) << 48, std::memory_order_release);
            kind_.store(&kind, std::memory_order_release);
        });
    }

    /// Clears the wait. Called by the goroutine itself.
    void clear() noexcept {
        write(0, [&] { kind_.store(nullptr, std::memory_order_release); });
    }

    /// Clears the wait if one is recorded (a goroutine destroyed while
    /// parked). Called by the goroutine's owner: nobody writes it meanwhile.
    void clear_if_set() noexcept {
        if (kind_.load(std::memory_order_relaxed)) clear();
    }

    /// Reads the record consistently; from any thread.
    wait_snapshot read() const noexcept {
        for (int attempt = 0; attempt < 1000; ++attempt) {
            // acquire: if the sequence is even and from the writer's last
            // store, the field stores before it are visible to the loads below.
            const std::uint64_t before = stamp_.load(std::memory_order_acquire);
            if (before & 1) {
                std::this_thread::yield();  // a write is in progress: a few stores, let it finish
                continue;
            }
            // acquire on each field: a field value from a newer write makes
            // that write's odd sequence store visible, so the check below
            // fails; acquire also keeps the final load after these.
            const wait_kind* kind = kind_.load(std::memory_order_acquire);
            const std::uint64_t object_count = object_count_.load(std::memory_order_acquire);
            if (stamp_.load(std::memory_order_relaxed) != before) continue;
            wait_snapshot s;
            if (!kind) return s;
            s.what = kind->what;
            s.object = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(object_count & address_mask));
            s.detail = {kind->element, std::size_t((before >> 16 & 0xffff) << 16 | object_count >> 48)};
            s.since_ns = since_ns_of(static_cast<std::uint32_t>(before >> 32));
            return s;
        }
        wait_snapshot s;
        s.torn = true;
        return s;
    }

private:
    static constexpr std::uint64_t address_mask = (std::uint64_t(1) << 48) - 1;

    /// The coarse clock in milliseconds, truncated to 32 bits: it wraps
    /// every 49.7 days, so durations are exact for waits shorter than that.
    static std::uint32_t coarse_now_ms32() noexcept {
        return static_cast<std::uint32_t>(coarse_now_ns() / 1'000'000);
    }
    /// The full coarse time of a 32-bit park time, taking it as the latest
    /// such time not after now (unsigned subtraction undoes the wrap).
    static std::int64_t since_ns_of(std::uint32_t since_ms) noexcept {
        std::int64_t now = coarse_now_ns();
        std::uint32_t elapsed_ms = static_cast<std::uint32_t>(now / 1'000'000) - since_ms;
        return now - std::int64_t(elapsed_ms) * 1'000'000;
    }

    /// `stamp` is the new time and count bits of the third word (its low 16
    /// bits zero); `fields` stores the other two words.
    template <class Fields>
    void write(std::uint64_t stamp, Fields fields) noexcept {
        // relaxed load: only this goroutine writes the word, and its previous
        // write happened-before this one (same goroutine, ordered resumptions).
        const std::uint64_t old = stamp_.load(std::memory_order_relaxed);
        const std::uint64_t seq = old & 0xffff;
        // relaxed: the fields' release stores publish this odd value to any
        // reader that sees one of them (see read()).
        stamp_.store((old & ~std::uint64_t(0xffff)) | ((seq + 1) & 0xffff), std::memory_order_relaxed);
        fields();
        // release: a reader that sees the even value sees all the fields.
        stamp_.store(stamp | ((seq + 2) & 0xffff), std::memory_order_release);
    }

    std::atomic<const wait_kind*> kind_{nullptr};  // null: not waiting
    std::atomic<std::uint64_t> object_count_{0};   // the object's address | the count's low 16 bits << 48
    std::atomic<std::uint64_t> stamp_{0};          // park time in ms << 32 | the count's high 16 bits << 16 | sequence
};

static_assert(sizeof(goroutine_wait) == 24, "goroutine_wait: three words");

}  // namespace csp::detail
