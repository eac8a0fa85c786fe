// csp/detail/activity.hpp - sources of wake-ups that no goroutine accounts for.
//
// The deadlock detector of csp::run declares a deadlock only when no thread
// outside the runtime could still wake a goroutine. It cannot know about
// every plain thread, but it knows about these: threads blocked in
// sync_wait or driving a run_loop (each may send to a channel the
// runtime's goroutines wait on) and live tickers.
#pragma once

#include <atomic>

namespace csp::detail {

inline std::atomic<long> external_drivers{0};

/// Counts the enclosing scope as an external driver.
class external_driver_scope {
public:
    external_driver_scope() noexcept { external_drivers.fetch_add(1, std::memory_order_seq_cst); }
    ~external_driver_scope() { external_drivers.fetch_sub(1, std::memory_order_seq_cst); }
    external_driver_scope(const external_driver_scope&) = delete;
    external_driver_scope& operator=(const external_driver_scope&) = delete;
};

}  // namespace csp::detail
