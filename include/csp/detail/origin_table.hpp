// csp/detail/origin_table.hpp - goroutine start locations, interned.
//
// Every goroutine remembers where it was started, for dumps and deadlock
// reports. A csp::source_location is three words; a goroutine node keeps
// a 16-bit index of an interned copy instead, packed with its id in one word
// (SPEC §9, W6: a parked goroutine costs at most 256 bytes). The set of
// start locations is the set of csp::go / csp::spawn call sites, small and
// fixed by the program, so the copies live for the whole process and are
// never freed. Index 0 is the unknown location; a program with more than
// 65,535 call sites gets index 0 for the extra ones (their dumps say no
// location, nothing else changes).
//
// Copies live in chunks of 256 that never move; a chunk is published with a
// release store of its pointer, and at() reads it with acquire, so any
// thread holding an index reads a complete copy.
//
// Interning costs a spawn one hash and one comparison in a per-thread,
// direct-mapped cache whose entries hold their key; only a thread's first
// spawn from a call site (or a collision) takes the process-wide lock.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "source_location.hpp"

namespace csp::detail {

class origin_table {
public:
    using index = std::uint16_t;

    /// The index of a copy of `where` that lives as long as the process.
    static index intern(const csp::source_location& where) {
        cache_entry& e = thread_cache()[slot_of(where)];
        if (e.i && e.line == where.line() && e.file == where.file_name() && e.function == where.function_name())
            return e.i;
        index i = instance().find_or_add(where);
        e = cache_entry{where.file_name(), where.function_name(), where.line(), i};
        return i;
    }

    /// The location interned as `i` (index 0: the unknown location).
    static const csp::source_location& at(index i) noexcept {
        static constexpr csp::source_location unknown{};
        if (i == 0) return unknown;
        // acquire: pairs with the release that published the chunk.
        const chunk* c = instance().chunks_[i / chunk_size].load(std::memory_order_acquire);
        return (*c)[i % chunk_size];
    }

private:
    static constexpr std::size_t cache_slots = 64;
    static constexpr std::size_t chunk_size = 256;
    static constexpr std::size_t max_chunks = 65536 / chunk_size;
    using chunk = std::array<csp::source_location, chunk_size>;

    // The builtins hand out addresses of string literals, so a call site's
    // file and function pointers are fixed: hash and compare them, not the
    // text. (Equal text at different addresses only costs a second copy.)
    static bool same(const csp::source_location& a, const csp::source_location& b) noexcept {
        return a.line() == b.line() && a.file_name() == b.file_name() && a.function_name() == b.function_name();
    }
    static std::size_t slot_of(const csp::source_location& where) noexcept {
        std::size_t h = slot_of_full(where);
        return (h ^ (h >> 7)) % cache_slots;
    }

    // Never destroyed: goroutines may be started during static destruction.
    static origin_table& instance() {
        static origin_table* table = new origin_table;
        return *table;
    }
    // A cache entry holds its key, so that a hit compares three words and
    // reads nothing shared (an entry holding only the index made every hit
    // look the copy up in the table: 37 instructions a spawn, now 31).
    struct cache_entry {
        const char* file;
        const char* function;
        unsigned line;
        index i;  // 0: empty slot
    };
    [[gnu::noinline]] static std::array<cache_entry, cache_slots>& thread_cache() noexcept {
        thread_local std::array<cache_entry, cache_slots> cache{};
        return cache;
    }

    struct key_hash {
        std::size_t operator()(const csp::source_location& l) const noexcept { return slot_of_full(l); }
    };
    struct key_equal {
        bool operator()(const csp::source_location& a, const csp::source_location& b) const noexcept {
            return same(a, b);
        }
    };
    static std::size_t slot_of_full(const csp::source_location& where) noexcept {
        auto h = reinterpret_cast<std::uintptr_t>(where.file_name()) * 31 + where.line();
        return h ^ (reinterpret_cast<std::uintptr_t>(where.function_name()) >> 4);
    }

    index find_or_add(const csp::source_location& where) {
        std::lock_guard lock(mu_);
        if (auto it = known_.find(where); it != known_.end()) return it->second;
        if (next_ == 65536) return 0;  // full: the unknown location
        index i = index(next_);
        chunk* c = chunks_[i / chunk_size].load(std::memory_order_relaxed);  // we are the only writer
        if (!c) {
            c = new chunk{};
            chunks_[i / chunk_size].store(c, std::memory_order_release);
        }
        (*c)[i % chunk_size] = where;  // before anyone can learn i (it leaves under this lock)
        known_.emplace(where, i);
        ++next_;
        return i;
    }

    std::mutex mu_;
    std::unordered_map<csp::source_location, index, key_hash, key_equal> known_;
    std::size_t next_ = 1;  // 0 is the unknown location
    std::array<std::atomic<chunk*>, max_chunks> chunks_{};
};

}  // namespace csp::detail
