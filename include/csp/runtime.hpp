// csp/runtime.hpp - csp::run: the `main` of a csp program.
//
//   int main() { return csp::run([]() -> csp::task<int> { ...; co_return 0; }); }
//
// run() starts a work_stealing_pool (one worker per hardware thread unless
// told otherwise), runs the task on it as the main goroutine, and returns its
// value or rethrows its exception. Like Go's main it does not wait for other
// goroutines (use a wait_group): when the main task returns, the pool stops
// and the goroutines still alive are destroyed, not resumed.
//
// Exceptions escaping other goroutines are never lost: the first one stops
// the runtime at once (as a panic ends a Go program) and run() rethrows it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "detail/goroutine_registry.hpp"
#include "go.hpp"
#include "task.hpp"
#include "work_stealing_pool.hpp"

namespace csp {

struct run_options {
    /// Worker threads; 0 means one per hardware thread.
    std::size_t threads = 0;
    /// Throw csp::deadlock_error when every goroutine is blocked and
    /// nothing outside can wake one (see work_stealing_pool::deadlock_detection).
    /// Turn it off if plain threads feed the runtime's channels with
    /// try_send/close/wait_group::done rather than through sync_wait.
    bool detect_deadlocks = true;
};

/// Thrown by csp::run when all goroutines are asleep, like Go's
/// "fatal error: all goroutines are asleep - deadlock!". The message lists
/// each goroutine, where it was started and what it is blocked on.
class deadlock_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

/// Where the main goroutine leaves its outcome, and how run() waits for it.
template <class T>
struct main_outcome {
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    std::exception_ptr error;
    std::string deadlock;  // the detector's report, if it fired
    std::optional<std::conditional_t<std::is_void_v<T>, char, T>> value;

    void finish() {
        std::lock_guard lock(mu);
        finished = true;
        cv.notify_all();
    }
    void wait() {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return finished; });
    }
};

template <class T>
task<> run_main(task<T> main, main_outcome<T>& out) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(main);
            out.value.emplace('\0');
        } else {
            out.value.emplace(co_await std::move(main));
        }
    } catch (...) {
        out.error = std::current_exception();
    }
    out.finish();
}

}  // namespace detail

/// Runs `main` on a fresh runtime and returns its value (or rethrows).
template <class T>
T run(run_options options, task<T> main, source_location origin = source_location::current()) {
    detail::main_outcome<T> out;
    std::exception_ptr goroutine_error;
    {
        work_stealing_pool::deadlock_detection detection;
        if (options.detect_deadlocks)
            detection.report = [&out](std::string report) {
                {
                    std::lock_guard lock(out.mu);
                    out.deadlock = std::move(report);
                }
                out.finish();
            };
        work_stealing_pool pool(options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency()),
                                std::move(detection));
        pool.goroutines().on_first_error([&out] { out.finish(); });
        pool.goroutines().set_kind(std::string("work_stealing_pool of csp::run at ") + origin.file_name() + ':' + std::to_string(origin.line()));
        spawn(pool, detail::run_main(std::move(main), out), origin);
        out.wait();
        pool.stop();
        pool.join();  // a goroutine still running may throw until here
        goroutine_error = pool.goroutines().take_error();
    }  // destroys the goroutines left behind
    if (goroutine_error) std::rethrow_exception(goroutine_error);
    if (!out.deadlock.empty())
        throw deadlock_error("csp: all goroutines are asleep - deadlock!\n" + out.deadlock);
    if (out.error) std::rethrow_exception(out.error);
    if constexpr (!std::is_void_v<T>) return std::move(*out.value);
}

template <class T>
T run(task<T> main, source_location origin = source_location::current()) {
    return run(run_options{}, std::move(main), origin);
}

/// Runs `f()`, which returns a csp::task, as the main goroutine. The
/// callable is kept alive for the whole run, so capturing lambdas are safe.
template <class F>
    requires std::invocable<F&> && detail::is_task<std::invoke_result_t<F&>>::value
auto run(run_options options, F&& f, source_location origin = source_location::current()) {
    return run(options, std::invoke(f), origin);
}

template <class F>
    requires std::invocable<F&> && detail::is_task<std::invoke_result_t<F&>>::value
auto run(F&& f, source_location origin = source_location::current()) {
    return run(run_options{}, std::invoke(f), origin);
}

}  // namespace csp
