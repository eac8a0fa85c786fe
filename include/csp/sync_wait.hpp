// csp/sync_wait.hpp - block a plain thread until an awaitable completes.
//
// sync_wait runs a run_loop on the calling thread (one per thread and nesting
// depth, reset after each call) and drives a small coroutine that awaits the
// argument. Whatever the awaitable suspends on
// (a channel, a wait_group, a select) wakes it by posting to that loop, so
// the thread sleeps on a condition variable in between: no spinning.
//
// Goroutines started with csp::go() from inside the awaited task run on that
// loop too; like goroutines left behind by Go's main, the ones still
// alive when the awaited operation completes are destroyed, not resumed.
// Do not call sync_wait from inside a goroutine: it would block its executor.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/awaitable_traits.hpp"
#include "detail/frame_allocator.hpp"
#include "run_loop.hpp"

namespace csp {

namespace detail {

/// Holds what the awaited expression produced: a value, a reference, or
/// nothing, or the exception it threw.
template <class R>
class sync_wait_result {
public:
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_reference_v<R>, std::add_pointer_t<R>, R>> value;

    R take() {
        if (error) std::rethrow_exception(error);
        if constexpr (std::is_reference_v<R>) return static_cast<R>(**value);
        else return std::move(*value);
    }
};

template <>
class sync_wait_result<void> {
public:
    std::exception_ptr error;
    void take() {
        if (error) std::rethrow_exception(error);
    }
};

struct sync_wait_driver {
    struct promise_type {
        static void* operator new(std::size_t n) { return allocate_frame(n); }
        static void operator delete(void* p, std::size_t n) noexcept { deallocate_frame(p, n); }
        sync_wait_driver get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }  // the body catches everything
    };
    std::coroutine_handle<promise_type> handle;
};

// An awaitable with operator co_await (a task) is awaited as an rvalue so
// that its rvalue overload is used; a plain awaiter is awaited in place, as
// an lvalue, so that it is never copied or moved (GCC 12 copies co_await
// operands that are function results, hence the two spelled-out forms).
template <class A>
inline constexpr bool is_plain_awaiter = std::is_same_v<std::remove_cvref_t<awaiter_t<A>>, std::remove_cvref_t<A>>;

template <class A, class R>
sync_wait_driver drive(A& awaitable, sync_wait_result<R>& out, run_loop& loop) {
    try {
        if constexpr (is_plain_awaiter<A>) {
            if constexpr (std::is_void_v<R>) co_await awaitable;
            else if constexpr (std::is_reference_v<R>) out.value.emplace(std::addressof(co_await awaitable));
            else out.value.emplace(co_await awaitable);
        } else {
            using V = std::remove_reference_t<A>;
            if constexpr (std::is_void_v<R>) co_await static_cast<V&&>(awaitable);
            else if constexpr (std::is_reference_v<R>) out.value.emplace(std::addressof(co_await static_cast<V&&>(awaitable)));
            else out.value.emplace(co_await static_cast<V&&>(awaitable));
        }
    } catch (...) {
        out.error = std::current_exception();
    }
    loop.stop();
}

/// The run_loop of one sync_wait call. Loops are kept per thread, one per
/// nesting depth, and reset after each call, so that a sync_wait in steady
/// state allocates nothing (no new loop, no new queue storage).
class sync_wait_loop_lease {
public:
    sync_wait_loop_lease() : loops_(this_thread_loops()) {
        if (loops_.depth == loops_.loops.size()) {
            loops_.loops.push_back(std::make_unique<run_loop>());
            loops_.loops.back()->goroutines().set_kind("sync_wait");
        }
        loop_ = loops_.loops[loops_.depth++].get();
    }
    ~sync_wait_loop_lease() {
        loop_->reset();  // destroys the goroutines started inside the call
        --loops_.depth;
    }
    sync_wait_loop_lease(const sync_wait_loop_lease&) = delete;
    sync_wait_loop_lease& operator=(const sync_wait_loop_lease&) = delete;

    run_loop& loop() noexcept { return *loop_; }

private:
    struct thread_loops {
        std::vector<std::unique_ptr<run_loop>> loops;
        std::size_t depth = 0;
    };
    [[gnu::noinline]] static thread_loops& this_thread_loops() {
        thread_local thread_loops loops;
        return loops;
    }

    thread_loops& loops_;
    run_loop* loop_;
};

}  // namespace detail

/// Blocks the calling thread until `awaitable` completes and returns what
/// `co_await awaitable` would, or rethrows its exception.
template <class A>
detail::await_result_t<A> sync_wait(A&& awaitable) {
    using R = detail::await_result_t<A>;
    detail::sync_wait_result<R> out;
    detail::sync_wait_loop_lease lease;
    run_loop& loop = lease.loop();
    // A movable rvalue awaitable (a task, a channel operation, a select) is
    // moved here, after the loop, so that it is destroyed before the loop.
    // If the loop stops early (a goroutine started inside threw), the
    // abandoned operation then unlinks itself while the loop that it could
    // be woken on still exists.
    using stored = std::conditional_t<!std::is_lvalue_reference_v<A> && std::is_move_constructible_v<std::remove_cvref_t<A>>,
                                      std::remove_cvref_t<A>, A&>;
    stored local(std::forward<std::conditional_t<std::is_reference_v<stored>, std::remove_reference_t<A>&, A>>(awaitable));
    using operand = std::conditional_t<std::is_reference_v<stored>, A, stored>;
    auto driver = detail::drive<operand, R>(local, out, loop);
    struct destroy_on_exit {
        std::coroutine_handle<> h;
        ~destroy_on_exit() { h.destroy(); }
    } guard{driver.handle};
    loop.post(driver.handle);
    loop.run();
    // Goroutines spawned onto `loop` may still be alive here; the lease
    // (after this return value is built) destroys them.
    return out.take();
}

}  // namespace csp
