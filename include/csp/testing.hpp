// csp/testing.hpp - a deterministic executor with virtual time, for tests.
//
//   TEST_CASE("a timeout fires when nothing is sent") {
//       csp::testing::for_each_seed(1000, [](std::uint64_t seed) {
//           auto r = csp::testing::run(seed, []() -> csp::task<std::size_t> {
//               auto ch = csp::make_channel<int>();
//               auto s = co_await csp::select(ch.recv(), csp::after(30s));  // takes no real time
//               co_return s.index();
//           });
//           if (r != 1) throw std::runtime_error("expected the timeout");
//       });
//   }
//
// The executor runs every goroutine on the calling thread. Whenever a
// goroutine suspends, it picks the next one to resume pseudo-randomly from
// its seed (and reseeds select's generator from it too), so different seeds
// explore different interleavings and one seed replays exactly. Its clock is
// virtual: when no goroutine can run, time jumps to the earliest pending
// timer, so a 30-second timeout takes microseconds. When no goroutine can run
// and no timer is pending, the program is deadlocked: run() throws
// csp::deadlock_error instead of hanging.
//
// Determinism holds for programs that only use csp inside the executor:
// a plain thread that posts to it (through a channel), or a timer made
// outside it, brings its own timing back in.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "detail/budget.hpp"
#include "detail/goroutine_registry.hpp"
#include "detail/random.hpp"
#include "detail/timer_queue.hpp"
#include "executor.hpp"
#include "go.hpp"
#include "runtime.hpp"
#include "task.hpp"
#include "timer.hpp"

namespace csp::testing {

class deterministic_executor {
public:
    explicit deterministic_executor(std::uint64_t seed) noexcept
        : seed_(seed), rng_{seed}, timers_(detail::timer_queue::clock_kind::virtual_time) {}
    deterministic_executor(const deterministic_executor&) = delete;
    deterministic_executor& operator=(const deterministic_executor&) = delete;
    ~deterministic_executor() { clear(); }

    // ---- the executor interface ----
    void post(std::coroutine_handle<> h) {
        std::lock_guard lock(mu_);
        runnable_.push_back(h);
    }
    /// csp::yield and a spent budget: the goroutine runs again only after
    /// every goroutine runnable now has had its turn.
    void post_yield(std::coroutine_handle<> h) {
        std::lock_guard lock(mu_);
        yielded_.push_back(h);
    }
    detail::goroutine_registry& goroutines() noexcept { return goroutines_; }
    detail::timer_queue& timers() noexcept { return timers_; }

    /// Runs `main` as the main goroutine until it returns, and returns its
    /// value. Like csp::run: rethrows the first exception that escaped any
    /// goroutine, throws csp::deadlock_error when every goroutine is blocked
    /// and no timer is pending, and destroys the goroutines still alive at
    /// the end (they are never resumed). The executor can run again after.
    template <class T>
    T run(task<T> main, source_location origin = source_location::current()) {
        detail::main_outcome<T> out;
        struct cleanup {
            deterministic_executor& ex;
            ~cleanup() { ex.clear(); }
        } guard{*this};
        spawn(*this, detail::run_main(std::move(main), out), origin);
        std::uint64_t idle_jumps = 0;  // time jumps in a row that woke no goroutine
        while (!out.finished) {
            if (run_one()) {
                idle_jumps = 0;
                continue;
            }
            if (!advance_time()) throw_deadlock("");
            // Only tickers nobody receives from are left: they would keep
            // virtual time running forever. Go would hang; a test should not.
            if (++idle_jumps > max_idle_jumps)
                throw_deadlock("  (only timers that wake no goroutine are left: " + std::to_string(max_idle_jumps) +
                               " time jumps woke nothing)\n");
        }
        if (out.error) std::rethrow_exception(out.error);
        if constexpr (!std::is_void_v<T>) return std::move(*out.value);
    }

    /// Runs `f()`, which returns a csp::task, as the main goroutine; the
    /// callable lives until the run ends.
    template <class F>
        requires std::invocable<F&> && detail::is_task<std::invoke_result_t<F&>>::value
    auto run(F&& f, source_location origin = source_location::current()) {
        return run(std::invoke(f), origin);
    }

    /// Resumes one runnable goroutine, chosen by the seed. False if none is
    /// runnable (virtual time does not move). Rethrows a goroutine's exception.
    bool run_one() {
        std::coroutine_handle<> h = pick();
        if (!h) return false;
        {
            detail::current_executor_scope scope(*this);
            detail::refill_budget();
            detail::reseed_random(rng_.next());  // select's choices follow the seed
            h.resume();
        }
        goroutines_.rethrow_if_failed();
        return true;
    }

    /// Jumps virtual time to the earliest pending timer and fires the timers
    /// due then. False if no timer is pending.
    bool advance_time() {
        auto next = timers_.next_deadline();
        if (next == detail::timer_clock::time_point::max()) return false;
        timers_.advance_to(next);
        timers_.fire_due(timers_.now());
        return true;
    }

    /// The seed this executor schedules with.
    std::uint64_t seed() const noexcept { return seed_; }
    /// The virtual clock (csp::now() inside the executor).
    clock::time_point now() const noexcept { return timers_.now(); }
    /// Resumptions so far, and a hash of every scheduling choice made: two
    /// runs of one program with one seed have the same of both.
    std::uint64_t steps() const noexcept { return steps_; }
    std::uint64_t schedule_hash() const noexcept { return schedule_hash_; }

private:
    std::coroutine_handle<> pick() {
        std::lock_guard lock(mu_);
        if (runnable_.empty()) runnable_.swap(yielded_);  // yielders run after everyone else
        if (runnable_.empty()) return {};
        std::uint32_t n = std::uint32_t(runnable_.size());
        std::uint32_t i = rng_.below(n);
        std::coroutine_handle<> h = runnable_[i];
        runnable_[i] = runnable_.back();
        runnable_.pop_back();
        ++steps_;
        schedule_hash_ = (schedule_hash_ ^ (std::uint64_t(n) << 32 | i)) * 0x100000001b3ULL;  // FNV-style
        return h;
    }

    static constexpr std::uint64_t max_idle_jumps = 100000;

    [[noreturn]] void throw_deadlock(const std::string& note) {
        throw deadlock_error("csp: all goroutines are asleep - deadlock!\n" + goroutines_.describe() + note +
                             "  (csp::testing seed " + std::to_string(seed_) + ")");
    }

    /// Destroys the goroutines left (which unlinks their timers) and drops
    /// what is queued.
    void clear() noexcept {
        goroutines_.destroy_all();
        std::lock_guard lock(mu_);
        runnable_.clear();
        yielded_.clear();
    }

    std::uint64_t seed_;
    detail::wyrand rng_;
    std::uint64_t steps_ = 0;
    std::uint64_t schedule_hash_ = 0xcbf29ce484222325ULL;
    std::mutex mu_;  // post() may come from another thread; nothing else does
    std::vector<std::coroutine_handle<>> runnable_;
    std::vector<std::coroutine_handle<>> yielded_;
    detail::timer_queue timers_;            // outlives the goroutines, whose timers it holds
    detail::goroutine_registry goroutines_{"deterministic_executor"};
};

/// Runs `f()` (returning a csp::task) on a fresh deterministic executor
/// with `seed` and returns its value.
template <class F>
auto run(std::uint64_t seed, F&& f, source_location origin = source_location::current()) {
    deterministic_executor ex(seed);
    return ex.run(std::forward<F>(f), origin);
}

/// Thrown by for_each_seed when a seed fails; the original exception is
/// nested (std::rethrow_if_nested) and what() names the seed to replay.
class seed_failure : public std::runtime_error {
public:
    seed_failure(std::uint64_t seed, const std::string& what)
        : std::runtime_error("csp::testing: seed " + std::to_string(seed) + " failed: " + what +
                             " (replay it with CSP_TEST_SEED=" + std::to_string(seed) + ")"),
          seed_(seed) {}
    std::uint64_t seed() const noexcept { return seed_; }

private:
    std::uint64_t seed_;
};

namespace detail {
inline bool env_number(const char* name, std::uint64_t& out) {
    const char* v = std::getenv(name);
    if (!v || !*v) return false;
    char* end = nullptr;
    out = std::strtoull(v, &end, 10);
    if (*end) throw std::invalid_argument(std::string("csp::testing: ") + name + " is not a number: " + v);
    return true;
}
}  // namespace detail

/// How many seeds a scenario runs: `count`, or the CSP_TEST_SEEDS
/// environment variable if set (a longer exploration, e.g. a CTest label).
inline std::uint64_t seed_count(std::uint64_t count) {
    std::uint64_t n;
    return detail::env_number("CSP_TEST_SEEDS", n) ? n : count;
}

/// Calls `scenario(seed)` for seeds 1..seed_count(count), or only for
/// CSP_TEST_SEED if that is set (to replay a failure). The first exception
/// is rethrown as seed_failure naming the seed. Returns the seeds run.
template <class F>
std::uint64_t for_each_seed(std::uint64_t count, F&& scenario) {
    std::uint64_t first = 1, n = seed_count(count), only;
    if (detail::env_number("CSP_TEST_SEED", only)) first = only, n = 1;
    for (std::uint64_t seed = first; seed < first + n; ++seed) {
        try {
            scenario(seed);
        } catch (const std::exception& e) {
            std::throw_with_nested(seed_failure(seed, e.what()));
        } catch (...) {
            std::throw_with_nested(seed_failure(seed, "an exception not derived from std::exception"));
        }
    }
    return n;
}

}  // namespace csp::testing
