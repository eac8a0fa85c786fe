// csp/detail/random.hpp - a fast per-thread pseudo-random generator for select.
//
// select needs a uniformly random order of its cases on every call, so the
// generator must be cheap: wyrand (one multiply-xor per draw) with a seed
// per thread. The state is thread-local but only ever touched inside these
// non-inlined functions, never cached across a co_await. A deterministic
// executor (csp::testing) reseeds it before every resumption, so that
// select's choices replay exactly with the executor's seed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <thread>
#include <utility>

namespace csp::detail {

/// wyrand: a 64-bit state advanced by a constant, mixed by one 128-bit multiply.
struct wyrand {
    std::uint64_t state;

    std::uint64_t next() noexcept {
        state += 0xa0761d6478bd642fULL;
        __uint128_t m = __uint128_t(state) * (state ^ 0xe7037ed1a0b428dbULL);
        return std::uint64_t(m >> 64) ^ std::uint64_t(m);
    }
    /// Uniform in [0, n), by Lemire's multiply-shift (bias below 2^-32 for
    /// the small n used here).
    std::uint32_t below(std::uint32_t n) noexcept {
        return std::uint32_t((std::uint64_t(std::uint32_t(next())) * n) >> 32);
    }
};

inline std::uint64_t seed_for_this_thread() noexcept {
    thread_local char marker;
    return std::uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           (std::uint64_t(std::hash<std::thread::id>()(std::this_thread::get_id())) << 17) ^
           reinterpret_cast<std::uintptr_t>(&marker);
}

inline thread_local wyrand thread_random{seed_for_this_thread()};

[[gnu::noinline]] inline std::uint64_t random_u64() noexcept { return thread_random.next(); }

/// Replaces this thread's generator state (deterministic replay).
[[gnu::noinline]] inline void reseed_random(std::uint64_t seed) noexcept { thread_random.state = seed; }

/// Uniform in [0, n) from this thread's generator.
inline std::uint32_t random_below(std::uint32_t n) noexcept {
    return std::uint32_t((std::uint64_t(std::uint32_t(random_u64())) * n) >> 32);
}

/// Shuffles [first, first + n) uniformly (Fisher-Yates) with few draws from
/// this thread's generator: each step takes its index from the high half of
/// a 64x64-bit product and keeps the low half as the randomness left for the
/// next step (Lemire's multiply-shift, reused), and draws afresh once the
/// ranges taken from one draw multiply past 2^32. So each step's bias stays
/// below 2^-32, far under anything a test of select's fairness can see, and
/// a select over up to 12 cases (12! < 2^32) costs a single draw.
template <class It>
void shuffle_with_few_draws(It first, std::size_t n) noexcept {
    std::uint64_t bits = random_u64();
    std::uint64_t used = 1;  // product of the ranges taken from `bits`
    for (std::size_t i = n; i > 1; --i) {
        if (used > (std::uint64_t(1) << 32) / i) {
            bits = random_u64();
            used = 1;
        }
        used *= i;
        __uint128_t m = __uint128_t(bits) * i;
        std::size_t j = std::size_t(m >> 64);
        bits = std::uint64_t(m);
        std::swap(first[i - 1], first[j]);
    }
}

}  // namespace csp::detail
