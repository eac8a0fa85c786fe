// csp/go.hpp - goroutines: csp::go, csp::spawn and csp::yield.
//
// A goroutine is a detached task: `spawn` takes over the task's frame (no
// wrapper, one allocation), registers it with the executor's goroutine
// registry and posts it. The frame frees itself when the task ends; the
// executor destroys it if it never ends (see detail/goroutine_registry.hpp).
// An exception that escapes the task goes to the registry, never lost.
#pragma once

#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "detail/goroutine_registry.hpp"
#include "executor.hpp"
#include "task.hpp"

namespace csp {

namespace detail {

// Parameters are taken by value, so the callable and its arguments live in
// this frame for as long as the goroutine runs. (This is the one case where a
// goroutine costs two frames: the callable's captures must live somewhere.)
template <class F, class... Args>
task<> invoke_detached(F f, Args... args) {
    co_await std::invoke(std::move(f), std::move(args)...);
}

template <class T>
void start(executor_ref ex, task<T> t) {
    auto h = t.release();
    if (!h) throw std::logic_error("csp::spawn: empty (moved-from) task");
    h.promise().detach_into(ex.goroutines(), h);
    ex.post(h);
}

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

}  // namespace detail

/// Starts `t` as a goroutine on `ex`.
template <class T>
void spawn(executor_ref ex, task<T> t) {
    if (!ex) throw std::logic_error("csp::spawn: null executor");
    detail::start(ex, std::move(t));
}

/// Starts `f(args...)` (which must return a csp::task) as a goroutine on
/// `ex`. The callable and the arguments are moved into the goroutine, so a
/// capturing lambda is safe here, unlike `spawn(ex, lambda())`.
template <class F, class... Args>
    requires(!detail::is_task<std::remove_cvref_t<F>>::value) &&
            std::invocable<std::decay_t<F>, std::decay_t<Args>...> &&
            detail::is_task<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>::value
void spawn(executor_ref ex, F&& f, Args&&... args) {
    if (!ex) throw std::logic_error("csp::spawn: null executor");
    detail::start(ex, detail::invoke_detached(std::decay_t<F>(std::forward<F>(f)),
                                              std::decay_t<Args>(std::forward<Args>(args))...));
}

/// Starts a goroutine on the executor running the caller. Throws
/// std::logic_error on a thread that runs no executor.
template <class T>
void go(task<T> t) {
    spawn(detail::require_current_executor("csp::go()"), std::move(t));
}

template <class F, class... Args>
    requires(!detail::is_task<std::remove_cvref_t<F>>::value)
void go(F&& f, Args&&... args) {
    spawn(detail::require_current_executor("csp::go()"), std::forward<F>(f), std::forward<Args>(args)...);
}

/// `co_await csp::yield()` lets the other coroutines queued on the current
/// executor run before the caller continues.
inline auto yield() noexcept {
    struct awaiter {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) const {
            detail::require_current_executor("csp::yield()").post_yield(h);
        }
        void await_resume() const noexcept {}
    };
    return awaiter{};
}

}  // namespace csp
