// csp/detail/goroutine_registry.hpp - the set of live goroutines of one executor.
//
// A detached goroutine owns its own frame and frees it when it finishes. One
// that never finishes (blocked forever on a channel when the program ends)
// would leak, so every goroutine joins the registry of the executor it was
// spawned on, and the executor destroys the ones still alive when it shuts
// down. Destroying a blocked goroutine runs its awaiters' destructors, which
// unlink them from the channels they wait on.
//
// The registry also carries the policy for exceptions that escape a detached
// goroutine: the first one is kept and rethrown by the executor's run
// functions (run_loop::run, csp::run). Registries that no run function drains
// (the process-wide one) terminate the program instead, naming the exception,
// as Go does with a panic in a goroutine. Either way the error is never lost.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include "source_location.hpp"
#include <string>
#include <atomic>
#include <typeinfo>
#include <utility>

namespace csp::detail {

/// Intrusive link that each goroutine frame carries in its promise, with
/// what a deadlock report or a goroutine dump says about the goroutine.
struct goroutine_node {
    goroutine_node* prev = nullptr;
    goroutine_node* next = nullptr;
    std::coroutine_handle<> frame;
    /// Where the goroutine was started (csp::go / csp::spawn call site).
    csp::source_location origin;
    /// While parked: what on (e.g. "receive from channel") and which object.
    /// Written by the goroutine itself; read by reports, hence atomics.
    std::atomic<const char*> waiting_on{nullptr};
    std::atomic<const void*> waiting_object{nullptr};
};

/// Marks a goroutine as parked on something, for the duration of a wait.
/// Awaiters call park() from await_suspend (before the wait can complete)
/// and unpark() from await_resume. Goroutine-less coroutines (sync_wait) have
/// no node and are not tracked.
class wait_note {
public:
    void park(goroutine_node* g, const char* what, const void* object) noexcept {
        g_ = g;
        if (!g) return;
        g->waiting_object.store(object, std::memory_order_relaxed);
        g->waiting_on.store(what, std::memory_order_relaxed);
    }
    void unpark() noexcept {
        if (g_) g_->waiting_on.store(nullptr, std::memory_order_relaxed);
        g_ = nullptr;
    }

private:
    goroutine_node* g_ = nullptr;
};

inline void terminate_with_escaped_exception(std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "csp: exception escaped a goroutine: %s: %s\n", typeid(ex).name(), ex.what());
    } catch (...) {
        std::fprintf(stderr, "csp: exception of unknown type escaped a goroutine\n");
    }
    std::terminate();
}

class goroutine_registry {
public:
    enum class on_error { keep_first, terminate };

    explicit goroutine_registry(on_error policy = on_error::keep_first) noexcept : policy_(policy) {}
    goroutine_registry(const goroutine_registry&) = delete;
    goroutine_registry& operator=(const goroutine_registry&) = delete;
    ~goroutine_registry() { destroy_all(); }

    void add(goroutine_node& n) noexcept {
        std::lock_guard lock(mu_);
        n.prev = nullptr;
        n.next = head_;
        if (head_) head_->prev = &n;
        head_ = &n;
        ++size_;
    }

    void remove(goroutine_node& n) noexcept {
        std::lock_guard lock(mu_);
        unlink_locked(n);
    }

    /// Destroys every goroutine still alive. The caller guarantees that none
    /// of them is running or will be resumed (the executor has stopped).
    void destroy_all() noexcept {
        for (;;) {
            std::coroutine_handle<> frame;
            {
                std::lock_guard lock(mu_);
                if (!head_) return;
                frame = head_->frame;
                unlink_locked(*head_);
            }
            frame.destroy();  // the promise's destructor calls remove(): a no-op now
        }
    }

    std::size_t size() const noexcept {
        std::lock_guard lock(mu_);
        return size_;
    }

    /// One line per live goroutine: where it was started and what it waits
    /// on. Meaningful when the goroutines are not running (a deadlock).
    std::string describe() const {
        std::string out;
        std::lock_guard lock(mu_);
        for (goroutine_node* n = head_; n; n = n->next) {
            char object[32] = "";
            if (const void* p = n->waiting_object.load(std::memory_order_relaxed))
                std::snprintf(object, sizeof object, " %p", p);
            const char* what = n->waiting_on.load(std::memory_order_relaxed);
            out += "  goroutine started at ";
            out += n->origin.line() ? std::string(n->origin.file_name()) + ':' + std::to_string(n->origin.line())
                                    : std::string("(unknown: started with arguments)");
            out += what ? std::string(": blocked on ") + what + object : std::string(": not blocked");
            out += '\n';
        }
        return out;
    }

    /// Records an exception that escaped a goroutine.
    void report(std::exception_ptr e) noexcept {
        if (policy_ == on_error::terminate) terminate_with_escaped_exception(e);
        std::function<void()> hook;
        {
            std::lock_guard lock(mu_);
            if (first_error_) return;
            first_error_ = e;
            has_error_.store(true, std::memory_order_release);
            hook = on_first_error_;
        }
        if (hook) hook();
    }

    /// Calls `hook` (from the failing goroutine's thread) when the first
    /// exception is reported. csp::run uses it to stop at once.
    void on_first_error(std::function<void()> hook) {
        std::lock_guard lock(mu_);
        on_first_error_ = std::move(hook);
    }

    /// Takes the first reported exception, if any, without rethrowing it.
    std::exception_ptr take_error() noexcept {
        std::lock_guard lock(mu_);
        has_error_.store(false, std::memory_order_relaxed);
        return std::exchange(first_error_, nullptr);
    }

    /// Rethrows (once) the first exception reported since the last call.
    void rethrow_if_failed() {
        if (!has_error_.load(std::memory_order_acquire)) return;  // the common case, without the lock
        std::exception_ptr e;
        {
            std::lock_guard lock(mu_);
            e = std::exchange(first_error_, nullptr);
            has_error_.store(false, std::memory_order_relaxed);
        }
        if (e) std::rethrow_exception(e);
    }

    /// For goroutines spawned on executors that have no registry of their
    /// own. Nothing drains it, so escaping exceptions terminate the program.
    static goroutine_registry& process_wide() noexcept {
        static goroutine_registry r(on_error::terminate);
        return r;
    }

private:
    // A node is linked iff it has a predecessor or is the head.
    void unlink_locked(goroutine_node& n) noexcept {
        if (!n.prev && head_ != &n) return;
        if (n.prev) n.prev->next = n.next; else head_ = n.next;
        if (n.next) n.next->prev = n.prev;
        n.prev = n.next = nullptr;
        --size_;
    }

    mutable std::mutex mu_;
    goroutine_node* head_ = nullptr;
    std::size_t size_ = 0;
    std::exception_ptr first_error_;
    std::atomic<bool> has_error_{false};
    std::function<void()> on_first_error_;
    on_error policy_;
};

}  // namespace csp::detail
