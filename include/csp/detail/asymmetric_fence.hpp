// csp/detail/asymmetric_fence.hpp - a StoreLoad barrier paid for by the rare side.
//
// Dekker's pattern: one side stores A then loads B, the other stores B then
// loads A, and at least one of them must see the other's store. Both loads
// need a StoreLoad barrier before them (on x86, a locked instruction or
// mfence: the store buffer drains first). When one side runs millions of
// times a second (a worker queueing a goroutine, then looking for idle
// workers) and the other rarely (a worker about to sleep, looking at the
// queues once more), Linux's membarrier(2) lets the rare side pay for both:
// MEMBARRIER_CMD_PRIVATE_EXPEDITED returns only after every other running
// thread of the process has executed a full memory barrier, and a thread
// that is not running has passed one in its context switch. So the frequent
// side needs only to keep the compiler from moving its load above its store
// (light()), and the rare side calls heavy() between its store and its load:
//   * if the frequent side's store was executed before the barrier reached
//     its thread, the barrier drained it: the rare side's load, after
//     heavy() returns, sees it;
//   * otherwise its load, which comes after the store in program order,
//     comes after the barrier too, and sees the rare side's store, which
//     was visible before heavy() began (the rare side's store is a locked
//     read-modify-write in every use here).
// Without membarrier (kernels before 4.14, seccomp filters, valgrind) both
// sides do a read-modify-write of one shared atomic, and enable() says so:
// whichever side's comes second reads the other's (acquire from its
// release), so the store the other side made before it is visible to the
// load this side makes after it. (Not std::atomic_thread_fence, which
// ThreadSanitizer does not model and g++ rejects under -fsanitize=thread.)
//
// The C++ memory model has no word for membarrier; this is the technique of
// liburcu and of folly's asymmetric barriers, and it relies on Linux's
// guarantee. ThreadSanitizer does not model either barrier; every access
// these fences order is an atomic, so it has no race to report either way.
#pragma once

#include <atomic>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace csp::detail {

class asymmetric_fence {
public:
    /// Registers the process for expedited membarriers (idempotent: the
    /// first call does the work) and returns whether light() can be a
    /// compiler barrier. Call it before any thread that calls light() or
    /// heavy() exists (a pool's constructor, before it starts its workers).
    static bool enable() noexcept {
        static const bool ok = register_expedited();
        expedited_.store(ok, std::memory_order_relaxed);
        return ok;
    }

    /// The frequent side: between its store and its load.
    static void light() noexcept {
        if (expedited_.load(std::memory_order_relaxed)) std::atomic_signal_fence(std::memory_order_seq_cst);
        else meet();
    }

    /// The rare side: between its store and its load. Costs a system call
    /// and an interrupt of each other CPU running a thread of the process
    /// (under a microsecond on the development machine with no other thread
    /// running). Once registered, the call cannot fail (membarrier(2)); the
    /// read-modify-write after a failure is there for form's sake.
    static void heavy() noexcept {
#if defined(__linux__) && defined(SYS_membarrier)
        if (expedited_.load(std::memory_order_relaxed) &&
            syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
            return;
#endif
        meet();
    }

private:
    /// The fallback barrier: see the file comment.
    static void meet() noexcept { meeting_point_.fetch_add(1, std::memory_order_acq_rel); }

    static bool register_expedited() noexcept {
#if defined(__linux__) && defined(SYS_membarrier)
        const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
        return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
        return false;
#endif
    }

    // Set by enable() before the threads that read it exist; only ever
    // set to the same value again afterwards, so relaxed loads see it.
    static inline std::atomic<bool> expedited_{false};
    static inline std::atomic<unsigned> meeting_point_{0};
};

}  // namespace csp::detail
