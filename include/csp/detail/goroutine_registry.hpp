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
//
// Every registry is on one process-wide list (registry_list below) for as
// long as it exists, so that csp::dump() can show the goroutines of every
// executor: pools, run_loops, the loops of sync_wait. Lock order: the list's
// lock, then a registry's lock; nothing takes them the other way round.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "goroutine_format.hpp"
#include "goroutine_wait.hpp"
#include "origin_table.hpp"
#include "source_location.hpp"
#include "spin_mutex.hpp"

namespace csp::detail {

/// Intrusive link that each goroutine frame carries in its promise, with
/// what a deadlock report or a goroutine dump says about the goroutine.
///
/// Every goroutine carries one, parked or not, so its layout is kept tight
/// (SPEC §9, W6: a parked goroutine costs at most 256 bytes): 64 bytes.
struct goroutine_node {
    // The registry's list links, guarded by the registry's lock.
    goroutine_node* prev = nullptr;
    goroutine_node* next = nullptr;
    /// The goroutine's id (unique in the process, increasing per starting
    /// thread: Go's goroutine ids, see goroutine_ids) in the high 48 bits,
    /// and where it was started (the csp::go / csp::spawn call site, as an
    /// index into detail/origin_table.hpp) in the low 16: one word instead
    /// of two. The id is set by the registry, the origin by detach_into.
    std::uint64_t id_and_origin = 0;

    std::uint64_t id() const noexcept { return id_and_origin >> 16; }
    const csp::source_location& origin() const noexcept {
        return origin_table::at(origin_table::index(id_and_origin & 0xffff));
    }
    void set_id(std::uint64_t id) noexcept { id_and_origin = id << 16 | (id_and_origin & 0xffff); }
    void set_origin(origin_table::index i) noexcept { id_and_origin = (id_and_origin & ~std::uint64_t(0xffff)) | i; }
    /// What it is blocked on, if anything. Written by the goroutine itself,
    /// read by dumps from any thread (see goroutine_wait.hpp).
    [[no_unique_address]] goroutine_wait wait;
    /// Where the goroutine's root frame starts, as an offset back from this
    /// node (which lives inside it): 4 bytes in the wait record's tail
    /// padding instead of an 8-byte handle. Set by set_frame().
    std::int32_t frame_offset = 0;

    /// The root frame, which the registry destroys at shutdown.
    std::coroutine_handle<> frame() const noexcept {
        return std::coroutine_handle<>::from_address(
            const_cast<char*>(reinterpret_cast<const char*>(this) - frame_offset));
    }
    /// Records `root`, the frame this node is part of.
    void set_frame(std::coroutine_handle<> root) noexcept {
        frame_offset = static_cast<std::int32_t>(reinterpret_cast<const char*>(this) -
                                                 static_cast<const char*>(root.address()));
    }
};

static_assert(sizeof(goroutine_node) == 56, "goroutine_node: the frame offset must share the wait record's tail padding");

/// Marks a goroutine as parked on something, for the duration of a wait.
/// Awaiters call park() from await_suspend (before the wait can complete)
/// and unpark() from await_resume. Goroutine-less coroutines (sync_wait) have
/// no node and are not tracked. `kind` must be static (see wait_kind).
class wait_note {
public:
    void park(goroutine_node* g, const wait_kind& kind, const void* object, std::size_t count = 0) noexcept {
        g_ = g;
        if (g) g->wait.set(kind, object, count);
    }
    void unpark() noexcept {
        if (g_) g_->wait.clear();
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

class goroutine_registry;

/// The registries alive in the process, in creation order.
class registry_list {
public:
    /// Never destroyed: registries in static and thread_local storage may
    /// unregister during exit, after any static list would be gone.
    static registry_list& instance() {
        static registry_list* list = new registry_list;
        return *list;
    }

    void add(goroutine_registry* r) {
        std::lock_guard lock(mu_);
        registries_.push_back(r);
    }
    void remove(goroutine_registry* r) noexcept {
        std::lock_guard lock(mu_);
        registries_.erase(std::find(registries_.begin(), registries_.end(), r));
    }
    /// Calls f(registry&) for each registry, holding the list lock, so none
    /// of them is destroyed meanwhile.
    template <class F>
    void for_each(F f) const {
        std::lock_guard lock(mu_);
        for (goroutine_registry* r : registries_) f(*r);
    }

private:
    mutable std::mutex mu_;
    std::vector<goroutine_registry*> registries_;
};

/// Goroutine ids, unique in the process, roughly in start order. Like Go
/// (goidcache), each thread takes ids from the shared counter in blocks, so
/// that spawning on several workers does not bounce one cache line between
/// them for every goroutine; ids from two threads interleave by block.
class goroutine_ids {
public:
    static constexpr std::uint64_t block = 64;

    [[gnu::noinline]] static std::uint64_t next() noexcept {
        thread_local std::uint64_t next_id = 0, end = 0;  // trivially destructible: usable at thread exit
        if (next_id == end) {
            // relaxed: only uniqueness matters.
            next_id = shared().fetch_add(block, std::memory_order_relaxed) + 1;
            end = next_id + block;
        }
        return next_id++;
    }

private:
    static std::atomic<std::uint64_t>& shared() noexcept {
        static std::atomic<std::uint64_t> last{0};
        return last;
    }
};

class goroutine_registry {
public:
    enum class on_error { keep_first, terminate };

    /// `kind` names the executor in dumps ("run_loop", "csp::run").
    explicit goroutine_registry(on_error policy = on_error::keep_first, std::string kind = "executor")
        : kind_(std::move(kind)), policy_(policy) {
        registry_list::instance().add(this);
    }
    explicit goroutine_registry(std::string kind) : goroutine_registry(on_error::keep_first, std::move(kind)) {}
    goroutine_registry(const goroutine_registry&) = delete;
    goroutine_registry& operator=(const goroutine_registry&) = delete;
    ~goroutine_registry() {
        destroy_all();
        registry_list::instance().remove(this);
    }

    void add(goroutine_node& n) noexcept {
        n.set_id(goroutine_ids::next());
        shard_of(n).add(n);
    }

    void remove(goroutine_node& n) noexcept { shard_of(n).remove(n); }

    /// Destroys every goroutine still alive. The caller guarantees that none
    /// of them is running or will be resumed (the executor has stopped).
    void destroy_all() noexcept {
        for (shard& s : shards_)
            while (std::coroutine_handle<> frame = s.unlink_any()) frame.destroy();  // its remove() is a no-op now
    }

    std::size_t size() const noexcept {
        std::size_t n = 0;
        for (const shard& s : shards_) n += s.size();
        return n;
    }

    /// Renames the executor in dumps (csp::run names its pool after its call).
    void set_kind(std::string kind) {
        std::lock_guard lock(mu_);
        kind_ = std::move(kind);
    }
    std::string kind() const {
        std::lock_guard lock(mu_);
        return kind_;
    }

    /// The live goroutines, oldest first, as they are at this moment. Safe
    /// while they run on other threads.
    std::vector<goroutine_snapshot> snapshot() const {
        std::vector<goroutine_snapshot> out;
        for (const shard& s : shards_) s.append_snapshots(out);
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        return out;
    }

    /// Two lines per live goroutine, oldest first: its id, what it is
    /// blocked on and since when, and where it was started (the format of
    /// detail/goroutine_format.hpp). The deadlock error and csp::dump() use it.
    std::string describe() const {
        std::string out;
        std::int64_t now = coarse_now_ns();
        for (const goroutine_snapshot& g : snapshot()) format_goroutine(out, g, now);
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
        static goroutine_registry r(on_error::terminate, "executors without a goroutine registry");
        return r;
    }

private:
    /// One lock and list per shard; a goroutine lives in the shard its id
    /// picks, so spawning and finishing goroutines on several workers rarely
    /// take the same lock, and never one shared by all of them. The shard
    /// goes by id *block*: a thread takes ids 64 at a time (goroutine_ids),
    /// so its next 64 goroutines all register in one shard, whose cache line
    /// stays on its core (by id alone, consecutive spawns cycled through all
    /// 16 shards, and two spawning workers pulled every shard's line back
    /// and forth: half of csp::go's time in W8 was that lock's miss).
    struct alignas(64) shard {
        mutable tiny_spin_lock mu;  // held for a few instructions; never across a call that blocks
        goroutine_node* head = nullptr;
        std::size_t count = 0;

        void add(goroutine_node& n) noexcept {
            std::lock_guard lock(mu);
            n.prev = nullptr;
            n.next = head;
            if (head) head->prev = &n;
            head = &n;
            ++count;
        }
        void remove(goroutine_node& n) noexcept {
            std::lock_guard lock(mu);
            unlink_locked(n);
        }
        /// Unlinks some live goroutine and returns its frame, or null.
        std::coroutine_handle<> unlink_any() noexcept {
            std::lock_guard lock(mu);
            if (!head) return {};
            std::coroutine_handle<> frame = head->frame();
            unlink_locked(*head);
            return frame;
        }
        std::size_t size() const noexcept {
            std::lock_guard lock(mu);
            return count;
        }
        void append_snapshots(std::vector<goroutine_snapshot>& out) const {
            std::lock_guard lock(mu);  // keeps every listed node alive while we read it
            for (goroutine_node* n = head; n; n = n->next) out.push_back({n->id(), n->origin(), n->wait.read()});
        }
        // A node is linked iff it has a predecessor or is the head.
        void unlink_locked(goroutine_node& n) noexcept {
            if (!n.prev && head != &n) return;
            if (n.prev) n.prev->next = n.next; else head = n.next;
            if (n.next) n.next->prev = n.prev;
            n.prev = n.next = nullptr;
            --count;
        }
    };
    static constexpr std::size_t shard_count = 16;

    shard& shard_of(const goroutine_node& n) noexcept {
        return shards_[(n.id() - 1) / goroutine_ids::block % shard_count];
    }

    std::array<shard, shard_count> shards_;
    mutable std::mutex mu_;  // guards kind_, the error state and the hook
    std::string kind_;
    std::exception_ptr first_error_;
    std::atomic<bool> has_error_{false};
    std::function<void()> on_first_error_;
    on_error policy_;
};

}  // namespace csp::detail
