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
#include "detail/source_location.hpp"
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
void start(executor_ref ex, task<T> t, const csp::source_location& origin) {
    if (!t.valid()) throw std::logic_error("csp::spawn: empty (moved-from) task");
    detail::origin_table::index where = detail::origin_table::intern(origin);  // may throw: before release
    detail::goroutine_registry& registry = ex.goroutines();
    detail::goroutine_node& node = registry.claim_node();  // may throw too
    auto h = t.release();
    h.promise().detach_into(registry, h, node, where);
    ex.post(h);
}

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

template <class F, class... Args>
concept task_factory = !is_task<std::remove_cvref_t<F>>::value && std::invocable<std::decay_t<F>, std::decay_t<Args>...> &&
                       is_task<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>::value;

template <class F, class... Args>
void spawn_callable(executor_ref ex, const csp::source_location& origin, F&& f, Args&&... args) {
    if (!ex) throw std::logic_error("csp::spawn: null executor");
    start(ex,
          invoke_detached(std::decay_t<F>(std::forward<F>(f)), std::decay_t<Args>(std::forward<Args>(args))...),
          origin);
}

}  // namespace detail

// Every form records where the goroutine was started (for deadlock reports
// and goroutine dumps), except the callable-with-arguments forms, where a
// defaulted csp::source_location cannot follow the argument pack.

/// Starts `t` as a goroutine on `ex`.
template <class T>
void spawn(executor_ref ex, task<T> t, csp::source_location origin = csp::source_location::current()) {
    if (!ex) throw std::logic_error("csp::spawn: null executor");
    detail::start(ex, std::move(t), origin);
}

/// Starts `f()` (which must return a csp::task) as a goroutine on `ex`.
/// The callable is moved into the goroutine, so a capturing lambda is safe
/// here, unlike `spawn(ex, lambda())`.
template <class F>
    requires detail::task_factory<F>
void spawn(executor_ref ex, F&& f, csp::source_location origin = csp::source_location::current()) {
    detail::spawn_callable(ex, origin, std::forward<F>(f));
}

/// Starts `f(args...)` as a goroutine on `ex`; the callable and the
/// arguments are moved into the goroutine (like std::thread).
template <class F, class A, class... Args>
    requires detail::task_factory<F, A, Args...> && (!std::is_same_v<std::remove_cvref_t<A>, csp::source_location>)
void spawn(executor_ref ex, F&& f, A&& a, Args&&... args) {
    detail::spawn_callable(ex, csp::source_location(), std::forward<F>(f), std::forward<A>(a),
                           std::forward<Args>(args)...);
}

/// Starts a goroutine on the executor running the caller. Throws
/// std::logic_error on a thread that runs no executor.
template <class T>
void go(task<T> t, csp::source_location origin = csp::source_location::current()) {
    detail::start(detail::require_current_executor("csp::go()"), std::move(t), origin);
}

template <class F>
    requires detail::task_factory<F>
void go(F&& f, csp::source_location origin = csp::source_location::current()) {
    detail::spawn_callable(detail::require_current_executor("csp::go()"), origin, std::forward<F>(f));
}

template <class F, class A, class... Args>
    requires detail::task_factory<F, A, Args...> && (!std::is_same_v<std::remove_cvref_t<A>, csp::source_location>)
void go(F&& f, A&& a, Args&&... args) {
    detail::spawn_callable(detail::require_current_executor("csp::go()"), csp::source_location(),
                           std::forward<F>(f), std::forward<A>(a), std::forward<Args>(args)...);
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
