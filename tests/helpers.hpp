// Shared test helpers.
#pragma once

#include <atomic>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include <csp/csp.hpp>

namespace csp_test {

/// A payload that counts its constructions and destructions, so that a test
/// can prove every value was destroyed exactly once (nothing leaked, nothing
/// duplicated). Move-only and without a default constructor on purpose.
struct counted {
    static inline std::atomic<long> live{0};
    static inline std::atomic<long> constructed{0};

    long value;
    bool moved_from = false;

    explicit counted(long v) : value(v) { ++live, ++constructed; }
    counted(counted&& o) noexcept : value(o.value) {
        o.moved_from = true;
        ++live, ++constructed;
    }
    counted(const counted&) = delete;
    counted& operator=(const counted&) = delete;
    counted& operator=(counted&&) = delete;
    ~counted() { --live; }
};

/// A run_loop driven by its own thread until destroyed.
class loop_thread {
public:
    loop_thread() : thread_([this] { loop_.run(); }) {}
    ~loop_thread() {
        loop_.stop();
        thread_.join();
    }
    csp::run_loop& loop() noexcept { return loop_; }

private:
    csp::run_loop loop_;
    std::thread thread_;
};

}  // namespace csp_test
