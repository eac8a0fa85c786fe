// csp/task.hpp - csp::task<T>, a lazy coroutine that yields a T.
//
// A task does nothing until it is awaited. `co_await t` starts it by
// symmetric transfer (the awaiter's await_suspend returns the task's handle,
// so the compiler jumps to it instead of calling it) and, when the task ends,
// its final awaiter transfers back to the awaiting coroutine the same way.
// Chains of nested co_awaits therefore never grow the stack in optimised
// builds. The task's value or exception is handed to the awaiter.
//
// Symmetric transfer only bounds the stack if the compiler turns it into a
// tail call. Clang always does; GCC does from -O2 up, but not at -O0/-O1 nor
// under its sanitizers. There a loop of `co_await some_task()` whose tasks
// finish without suspending would nest one call per iteration and overflow.
// So in those builds (CSP_DETAIL_TAIL_CALLS == 0) the awaiter resumes the task
// with a plain call and a flag tells which side finished first: a task that
// completes synchronously returns straight into the awaiter, which then does
// not suspend at all. Loops then run in constant stack; only the nesting depth
// of co_await chains costs stack, which is what such builds can afford.
// Define CSP_DETAIL_TAIL_CALLS yourself to override the detection (GCC -O1
// cannot be detected: it needs CSP_DETAIL_TAIL_CALLS=0).
#pragma once

#ifndef CSP_DETAIL_TAIL_CALLS
#if defined(__clang__)
#define CSP_DETAIL_TAIL_CALLS 1
#elif defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
#define CSP_DETAIL_TAIL_CALLS 0
#else
#define CSP_DETAIL_TAIL_CALLS 1
#endif
#endif

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include "detail/budget.hpp"
#include "detail/source_location.hpp"
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "detail/frame_allocator.hpp"
#include "detail/goroutine_registry.hpp"

namespace csp {

template <class T = void>
class task;

namespace detail {

class task_promise_base {
public:
    // Frames come from a per-thread cache (detail/frame_allocator.hpp).
    // Forced inline, so that each coroutine's frame size is a constant in
    // them and its size class folds away. g++ 12 had stopped inlining the
    // delete into the coroutines' destroy paths (a call that computed the
    // class at run time on every goroutine's exit): forcing it took W8 `fib`
    // from 967 to 938 instructions a call (callgrind, one worker), 29 fewer
    // per goroutine, as in W5.
    [[gnu::always_inline]] static void* operator new(std::size_t n) { return allocate_frame(n); }
    [[gnu::always_inline]] static void operator delete(void* p, std::size_t n) noexcept { deallocate_frame(p, n); }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
            task_promise_base& p = self.promise();
            if (p.is_root()) {
                // The root of a goroutine: nobody awaits it (an escaping
                // exception was reported already). Free the frame (allowed
                // here: the coroutine is suspended), which leaves the registry.
                self.destroy();
                note_goroutine_ended();
                return std::noop_coroutine();
            }
#if !CSP_DETAIL_TAIL_CALLS
            // The awaiter is still inside its await_suspend (we completed
            // synchronously): it will continue by itself when we return.
            if (!p.awaiter_suspended_.exchange(true, std::memory_order_acq_rel)) return std::noop_coroutine();
#endif
            // Transfer back to whoever awaited us. A task that was never
            // awaited has nothing to go back to.
            if (!p.link_) return std::noop_coroutine();
            return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(p.link_));
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }

    /// A root reports an escaping exception to its registry at once (nobody
    /// awaits it); any other task keeps it for its awaiter.
    void unhandled_exception() noexcept {
        if (is_root()) registry()->report(std::current_exception());
        else child_.error = std::current_exception();
    }

    void set_continuation(std::coroutine_handle<> c) noexcept { link_ = reinterpret_cast<std::uintptr_t>(c.address()); }

    /// Makes this task the root of a goroutine (see csp::spawn): it joins
    /// `registry`, frees its own frame when it ends and reports an escaping
    /// exception to the registry. One frame per goroutine, no wrapper.
    /// `origin` is interned (detail/origin_table.hpp).
    /// `node` is the slot the registry gave for it (claim_node).
    void detach_into(goroutine_registry& registry, std::coroutine_handle<> self, goroutine_node& node,
                     origin_table::index origin) noexcept {
        child_.~child_state();  // not started yet: nothing to keep
        link_ = reinterpret_cast<std::uintptr_t>(&registry) | root_tag;
        node_ = &node;
        registry.add(node, self, origin);
    }

    /// The goroutine this task runs in (set on the root by detach_into and
    /// handed down to each awaited task), or null outside goroutines.
    goroutine_node* goroutine() noexcept { return is_root() ? node_ : child_.goroutine; }
    void set_goroutine(goroutine_node* g) noexcept { child_.goroutine = g; }  // awaited tasks are never roots

    task_promise_base() noexcept : child_() {}
    task_promise_base(const task_promise_base&) = delete;
    task_promise_base& operator=(const task_promise_base&) = delete;
    ~task_promise_base() {
        if (is_root()) registry()->remove(*node_);  // finished, or destroyed at shutdown
        else child_.~child_state();
    }

#if !CSP_DETAIL_TAIL_CALLS
    /// Without tail calls: starts the task with a plain call and returns
    /// whether the awaiter must suspend (false if the task already finished).
    /// The exchange pairs with the one in final_awaiter: whichever side comes
    /// second continues the awaiter; acq_rel makes the task's result visible.
    bool start_and_check_suspend(std::coroutine_handle<> self) noexcept {
        self.resume();
        return !awaiter_suspended_.exchange(true, std::memory_order_acq_rel);
    }
#endif

protected:
    void rethrow_if_failed() const {
        if (!is_root() && child_.error) std::rethrow_exception(child_.error);
    }

private:
    // A task is either the root of a goroutine (detach_into) or a task that
    // is awaited, and needs different things in each role; every goroutine
    // frame carries a promise, so the two share storage (SPEC §9, W6):
    //   * a root: its registry (in link_, tagged) and its slot there;
    //     nobody awaits it, so no continuation and no stored exception;
    //   * an awaited task: its continuation (in link_), the exception for
    //     its awaiter and the goroutine of that awaiter (child_state).
    struct child_state {
        std::exception_ptr error;
        goroutine_node* goroutine = nullptr;
    };

    static constexpr std::uintptr_t root_tag = 1;  // registries are aligned: bit 0 is free
    bool is_root() const noexcept { return link_ & root_tag; }
    goroutine_registry* registry() const noexcept { return reinterpret_cast<goroutine_registry*>(link_ & ~root_tag); }

    std::uintptr_t link_ = 0;  // a root: its registry | root_tag; otherwise the continuation's address, or 0
    union {
        child_state child_;  // not a root
        goroutine_node* node_;  // a root: its slot in the registry
    };
#if !CSP_DETAIL_TAIL_CALLS
    std::atomic<bool> awaiter_suspended_{false};
#endif
};

/// The goroutine a coroutine runs in, if it is a csp::task of a goroutine.
template <class P>
goroutine_node* goroutine_of(std::coroutine_handle<P> h) noexcept {
    if constexpr (std::is_base_of_v<task_promise_base, P>) return h.promise().goroutine();
    else return nullptr;
}

template <class T>
class task_promise final : public task_promise_base {
public:
    task<T> get_return_object() noexcept;

    template <class U = T>
        requires std::is_constructible_v<T, U&&>
    void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        value_.emplace(std::forward<U>(v));
    }

    T take_result() {
        rethrow_if_failed();
        return std::move(*value_);
    }
    T& result_ref() {
        rethrow_if_failed();
        return *value_;
    }

private:
    std::optional<T> value_;
};

template <>
class task_promise<void> final : public task_promise_base {
public:
    task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take_result() { rethrow_if_failed(); }
    void result_ref() { rethrow_if_failed(); }
};

}  // namespace detail

/// A lazy coroutine producing a T (or nothing, for task<>). Move-only.
/// `co_await std::move(t)` (or `co_await make_task()`) runs it and yields its
/// value, rethrowing any exception it let escape.
template <class T>
class [[nodiscard]] task {
    static_assert(!std::is_reference_v<T>, "csp::task<T&> is not supported; return a pointer or std::reference_wrapper");

public:
    using promise_type = detail::task_promise<T>;
    using value_type = T;

    task() noexcept = default;
    explicit task(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    task& operator=(task other) noexcept {
        std::swap(handle_, other.handle_);
        return *this;
    }
    ~task() {
        if (handle_) handle_.destroy();
    }

    /// True if this task holds a coroutine (it was not moved from).
    bool valid() const noexcept { return static_cast<bool>(handle_); }

    auto operator co_await() && noexcept { return awaiter<false>{handle_}; }
    auto operator co_await() & noexcept { return awaiter<true>{handle_}; }

    /// Gives up ownership of the coroutine frame (used by csp::spawn).
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(handle_, {}); }

private:
    template <bool ByReference>
    struct awaiter {
        std::coroutine_handle<promise_type> handle;

        bool await_ready() const noexcept { return !handle || handle.done(); }
#if CSP_DETAIL_TAIL_CALLS
        template <class P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiting) noexcept {
            handle.promise().set_continuation(awaiting);
            handle.promise().set_goroutine(detail::goroutine_of(awaiting));
            return handle;
        }
#else
        template <class P>
        bool await_suspend(std::coroutine_handle<P> awaiting) noexcept {
            handle.promise().set_continuation(awaiting);
            handle.promise().set_goroutine(detail::goroutine_of(awaiting));
            return handle.promise().start_and_check_suspend(handle);
        }
#endif
        decltype(auto) await_resume() {
            if (!handle) throw std::logic_error("csp: co_await on an empty (moved-from) task");
            if constexpr (ByReference) return handle.promise().result_ref();
            else return handle.promise().take_result();
        }
    };

    std::coroutine_handle<promise_type> handle_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace csp
