// csp/detail/origin_table.hpp - goroutine start locations, interned.
//
// Every goroutine remembers where it was started, for dumps and deadlock
// reports. A csp::source_location is three words; a goroutine node keeps
// one pointer to an interned copy instead (SPEC §9, W6: a parked goroutine
// costs at most 256 bytes). The set of start locations is the set of
// csp::go / csp::spawn call sites, small and fixed by the program, so the
// copies live for the whole process and are never freed.
//
// Interning costs a spawn one hash and one comparison in a per-thread,
// direct-mapped cache; only a thread's first spawn from a call site (or a
// collision) takes the process-wide lock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_set>

#include "source_location.hpp"

namespace csp::detail {

class origin_table {
public:
    /// A copy of `where` that lives as long as the process.
    static const csp::source_location* intern(const csp::source_location& where) {
        const csp::source_location*& cached = thread_cache()[slot_of(where)];
        if (cached && same(*cached, where)) return cached;
        cached = instance().find_or_add(where);
        return cached;
    }

private:
    static constexpr std::size_t cache_slots = 64;

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
    [[gnu::noinline]] static std::array<const csp::source_location*, cache_slots>& thread_cache() noexcept {
        thread_local std::array<const csp::source_location*, cache_slots> cache{};
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

    const csp::source_location* find_or_add(const csp::source_location& where) {
        std::lock_guard lock(mu_);
        return &*known_.insert(where).first;  // elements of an unordered_set never move
    }

    std::mutex mu_;
    std::unordered_set<csp::source_location, key_hash, key_equal> known_;
};

}  // namespace csp::detail
