// Replaces the global operator new/delete with versions that count
// allocations, so that a test can prove an operation allocates nothing.
// Include it from exactly one source file of a test program.
//
// Under AddressSanitizer the replacement is left out: ASan interposes its own
// operator new for allocations made inside the C++ runtime, and mixing the
// two trips its allocation/deallocation matching. The allocation checks run
// in the plain g++ and clang++ builds; under ASan `counting_allocations` is
// false and they only report that they were skipped.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define CSP_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CSP_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef CSP_TEST_COUNTS_ALLOCATIONS
#define CSP_TEST_COUNTS_ALLOCATIONS 1
#endif

inline std::atomic<long> g_allocations{0};
/// The size asked for by the latest allocation (a test reads it right after
/// an operation that allocates exactly once, e.g. a coroutine frame).
inline std::atomic<std::size_t> g_last_allocation_size{0};
inline constexpr bool counting_allocations = CSP_TEST_COUNTS_ALLOCATIONS;

#if CSP_TEST_COUNTS_ALLOCATIONS
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // malloc/free behind new/delete is the point
#endif
void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    g_last_allocation_size.store(n, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif
