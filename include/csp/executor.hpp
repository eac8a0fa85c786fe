// csp/executor.hpp - the executor concept and its type-erased handle.
//
// An executor is anything that can be handed a suspended coroutine to resume
// later: `e.post(std::coroutine_handle<>)`. That one operation is all that
// channels, select and tasks need, so they are not templated on the executor.
// `executor_ref` erases the executor's type behind a pointer and a function
// pointer: copying it is free and posting through it costs one indirect call.
#pragma once

#include <atomic>
#include <concepts>
#include <coroutine>
#include <stdexcept>
#include <string>

#include "detail/goroutine_registry.hpp"

namespace csp {

class poller;

/// Anything that accepts a coroutine handle to resume later on its own
/// thread(s). `post` must be safe to call from any thread.
template <class E>
concept executor = requires(E& e, std::coroutine_handle<> h) {
    { e.post(h) } -> std::same_as<void>;
};

namespace detail {
class timer_queue;  // detail/timer_queue.hpp (which needs this header)

/// An executor may own a registry of the goroutines spawned on it, so that
/// it can destroy the ones still blocked when it shuts down (see
/// goroutine_registry.hpp). Executors that do not are given a process-wide one.
template <class E>
concept executor_with_registry = executor<E> && requires(E& e) {
    { e.goroutines() } -> std::same_as<goroutine_registry&>;
};
}  // namespace detail

/// A non-owning, type-erased reference to an executor: two pointers, the
/// executor and a static table of what csp needs from its type. The executor
/// must outlive every coroutine that was posted to it or will resume on it.
class executor_ref {
public:
    executor_ref() = default;

    template <executor E>
        requires(!std::same_as<E, executor_ref>)
    executor_ref(E& e) noexcept  // NOLINT: implicit by design, like std::function
        : object_(&e), ops_(&ops_for<E>) {}

    void post(std::coroutine_handle<> h) const { ops_->post(object_, h); }

    /// Queues `h` behind the work already queued (csp::yield). Executors
    /// without a separate notion of "behind" just post.
    void post_yield(std::coroutine_handle<> h) const { ops_->post_yield(object_, h); }

    explicit operator bool() const noexcept { return object_ != nullptr; }
    friend bool operator==(const executor_ref& a, const executor_ref& b) noexcept {
        return a.object_ == b.object_;
    }

    /// A counter of pending wake-ups from outside the executor (timers), for
    /// executors that detect deadlocks; null for the others.
    std::atomic<long>* pending_wakeups() const noexcept { return ops_->pending_wakeups(object_); }

    /// The poller that watches file descriptors for this executor's
    /// goroutines (an `io_poller()` member returning `poller&` or
    /// `poller*`), or null if it has none.
    poller* io() const noexcept { return ops_->io(object_); }

    /// The registry that goroutines spawned on this executor join.
    detail::goroutine_registry& goroutines() const noexcept {
        detail::goroutine_registry* r = ops_->goroutines(object_);
        return r ? *r : detail::goroutine_registry::process_wide();
    }

    /// The timer queue that sleeps and timeouts on this executor use: the
    /// executor's own, from a `timers()` member returning
    /// detail::timer_queue&, or the process-wide one. (A template only so
    /// that the process-wide queue is looked up where timer_queue is
    /// complete: detail/timer_queue.hpp includes this header.)
    template <class Queue = detail::timer_queue>
    Queue& timers() const noexcept {
        Queue* q = ops_->timers(object_);
        return q ? *q : Queue::instance();
    }

private:
    struct operations {
        void (*post)(void*, std::coroutine_handle<>);
        void (*post_yield)(void*, std::coroutine_handle<>);
        detail::goroutine_registry* (*goroutines)(void*) noexcept;
        std::atomic<long>* (*pending_wakeups)(void*) noexcept;
        poller* (*io)(void*) noexcept;
        detail::timer_queue* (*timers)(void*) noexcept;
    };

    template <class E>
    static constexpr operations ops_for{
        [](void* o, std::coroutine_handle<> h) { static_cast<E*>(o)->post(h); },
        [](void* o, std::coroutine_handle<> h) {
            if constexpr (requires { static_cast<E*>(o)->post_yield(h); }) static_cast<E*>(o)->post_yield(h);
            else static_cast<E*>(o)->post(h);
        },
        [](void* o) noexcept -> detail::goroutine_registry* {
            if constexpr (detail::executor_with_registry<E>) return &static_cast<E*>(o)->goroutines();
            else return nullptr;
        },
        [](void* o) noexcept -> std::atomic<long>* {
            if constexpr (requires { { static_cast<E*>(o)->pending_wakeups() } -> std::same_as<std::atomic<long>&>; })
                return &static_cast<E*>(o)->pending_wakeups();
            else return nullptr;
        },
        [](void* o) noexcept -> poller* {
            if constexpr (requires { { static_cast<E*>(o)->io_poller() } -> std::same_as<poller&>; })
                return &static_cast<E*>(o)->io_poller();
            else if constexpr (requires { { static_cast<E*>(o)->io_poller() } -> std::same_as<poller*>; })
                return static_cast<E*>(o)->io_poller();
            else return nullptr;
        },
        [](void* o) noexcept -> detail::timer_queue* {
            if constexpr (requires { { static_cast<E*>(o)->timers() } -> std::same_as<detail::timer_queue&>; })
                return &static_cast<E*>(o)->timers();
            else return nullptr;
        },
    };

    void* object_ = nullptr;
    const operations* ops_ = nullptr;
};

namespace detail {
// The executor that is running code on this thread right now. Executors set
// it around every resumption. It is read through a non-inlined function so
// that no compiler can cache the thread-local's address across a co_await (a
// coroutine may resume on another thread, and some compilers do cache it).
inline thread_local executor_ref current_executor_slot;

[[gnu::noinline]] inline executor_ref current_executor() noexcept { return current_executor_slot; }

/// Sets the current executor for a scope and restores the previous one.
class current_executor_scope {
public:
    explicit current_executor_scope(executor_ref e) noexcept : saved_(current_executor()) { set(e); }
    ~current_executor_scope() { set(saved_); }
    current_executor_scope(const current_executor_scope&) = delete;
    current_executor_scope& operator=(const current_executor_scope&) = delete;

private:
    [[gnu::noinline]] static void set(executor_ref e) noexcept { current_executor_slot = e; }
    executor_ref saved_;
};

/// The current executor, or a clear error for code running outside any.
inline executor_ref require_current_executor(const char* what) {
    executor_ref e = current_executor();
    if (!e) {
        throw std::logic_error(std::string("csp: ") + what +
                               " needs a current executor, but this thread is not running one "
                               "(use csp::spawn(executor, ...) or csp::sync_wait)");
    }
    return e;
}
}  // namespace detail

/// Custom executors wrap every resumption in this scope, so that code in the
/// resumed coroutine (go, this_executor, blocking channel operations) knows
/// which executor it runs on:
///
///     void my_loop::run_one(std::coroutine_handle<> h) {
///         csp::executor_scope scope(*this);
///         h.resume();
///     }
using executor_scope = detail::current_executor_scope;

/// An executor may own one, returned by a `goroutines()` member, to destroy
/// the goroutines spawned on it that are still blocked when it shuts down,
/// and to receive the exceptions that escape them (see run_loop).
using goroutine_registry = detail::goroutine_registry;

/// The executor running the calling goroutine. Throws std::logic_error on a
/// thread that is not running an executor.
inline executor_ref this_executor() { return detail::require_current_executor("csp::this_executor()"); }

}  // namespace csp
