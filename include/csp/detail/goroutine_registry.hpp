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
// lock, then a registry's locks; nothing takes them the other way round.
//
// Starting and ending a goroutine costs no lock and no atomic
// read-modify-write (an earlier design linked each goroutine into a
// spin-locked list: two locked instructions a goroutine, about 13% of W8's
// time on one worker). Each goroutine takes a *slot* (goroutine_node) from
// its registry; the slot holds the goroutine's id, origin, frame and wait
// record, and the frame holds a pointer to its slot.
//   * Slots live in slabs that the registry frees only when it is
//     destroyed, so a dump can read any slot while goroutines start and
//     end on other threads: it reads the id, the wait record, and the id
//     again, and keeps what it read if the id did not change (ids are never
//     reused). Shutdown and dumps walk the slabs.
//   * Free slots sit in per-thread caches (node_cache: one registry's slots
//     at a time, the one the thread last started goroutines on) and move
//     between threads in batches of 64 through the registry's depot, under
//     a mutex: a worker that runs what another starts sends the slots back
//     to it once a batch, as frames travel in frame_allocator.hpp.
//   * A cache may outlive its registry: it is tagged with the registry's
//     uid, never reused, and a thread that finds its cache's registry gone
//     (registry_list::give_back) just forgets the slots, which went with
//     the slabs.
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
#include <memory>
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
#include "thread_cache.hpp"

namespace csp::detail {

/// A goroutine's entry in the registry of its executor: a slot in one of the
/// registry's slabs, which outlive every goroutine (see goroutine_registry),
/// so that a dump may read any slot at any moment. The goroutine's root
/// frame points to its slot. What a deadlock report or a goroutine dump says
/// about the goroutine is here.
///
/// Every goroutine has one, parked or not, so it is kept tight (SPEC §9, W6:
/// a parked goroutine costs at most 256 bytes): 40 bytes.
struct goroutine_node {
    /// 0 while the slot is free. In use: the goroutine's id (unique in the
    /// process, increasing per starting thread: Go's goroutine ids, see
    /// goroutine_ids) in the high 48 bits, and where it was started (the
    /// csp::go / csp::spawn call site, an index into detail/origin_table.hpp)
    /// in the low 16. Ids are never reused, so a reader that finds the same
    /// word before and after reading the rest read one goroutine's entry.
    std::atomic<std::uint64_t> id_and_origin{0};
    /// In use: the goroutine's root frame, which the registry destroys at
    /// shutdown. Free: the next slot of the free list the slot is on.
    std::atomic<void*> link{nullptr};
    /// What it is blocked on, if anything. Written by the goroutine itself,
    /// read by dumps from any thread (see goroutine_wait.hpp).
    goroutine_wait wait;

    std::coroutine_handle<> frame() const noexcept {
        return std::coroutine_handle<>::from_address(link.load(std::memory_order_relaxed));
    }
};

static_assert(sizeof(goroutine_node) == 40, "goroutine_node: 40 bytes a goroutine (SPEC 9, W6)");

/// A list of free slots, linked through goroutine_node::link. Lists move
/// between threads only under a registry's depot lock.
struct node_list {
    goroutine_node* head = nullptr;
    std::size_t count = 0;

    void push(goroutine_node* n) noexcept {
        // relaxed: a free slot's link is read only by the list's holder
        // (and by dumps, which discard what they read from a free slot).
        n->link.store(head, std::memory_order_relaxed);
        head = n;
        ++count;
    }
    goroutine_node* pop() noexcept {
        goroutine_node* n = head;
        head = static_cast<goroutine_node*>(n->link.load(std::memory_order_relaxed));
        --count;
        return n;
    }
    /// pop(), and starts fetching the next slot's line for writing: a slot
    /// usually comes back from the worker that ran its last goroutine, so
    /// its line is in that worker's cache, and the next spawn would wait
    /// for it (W5: most of csp::go's time, before this prefetch).
    goroutine_node* pop_prefetching_next() noexcept {
        goroutine_node* n = pop();
        if (head) __builtin_prefetch(head, 1);
        return n;
    }
};

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
    /// Returns the free slots of a thread's cache to the registry numbered
    /// `uid`, if it still exists (else its slabs are gone, and the slots
    /// with them). Holding the list lock keeps it from being destroyed
    /// meanwhile. Defined below goroutine_registry.
    void give_back(std::uint64_t uid, node_list active, node_list spare) noexcept;

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

/// The free slots that a thread keeps for one registry: the one it last
/// started a goroutine on (a pool's worker: its pool's). Taking a slot there
/// and giving it back need no lock and no atomic read-modify-write; slots
/// move between threads in batches through the registry's depot, as frames
/// do through frame_allocator.hpp's (a goroutine often starts on one worker
/// and ends on another).
struct node_cache {
    static constexpr std::size_t batch = 64;
    std::uint64_t registry_uid = 0;  // whose slots these are (0: nobody's); uids are never reused
    node_list active;                // at most `batch` slots
    node_list spare;                 // empty, or exactly `batch`

    node_cache() = default;
    node_cache(const node_cache&) = delete;
    node_cache& operator=(const node_cache&) = delete;
    /// At thread exit: the slots go back to their registry, if it still
    /// exists (defined below goroutine_registry).
    ~node_cache();
};

// This thread's slots: see thread_cache.hpp (the frame allocator's caches
// are reached the same way).
using this_thread_nodes = thread_cache<node_cache>;

class goroutine_registry {
public:
    enum class on_error { keep_first, terminate };

    /// `kind` names the executor in dumps ("run_loop", "csp::run").
    explicit goroutine_registry(on_error policy = on_error::keep_first, std::string kind = "executor")
        : uid_(next_uid()), kind_(std::move(kind)), policy_(policy) {
        registry_list::instance().add(this);
    }
    explicit goroutine_registry(std::string kind) : goroutine_registry(on_error::keep_first, std::move(kind)) {}
    goroutine_registry(const goroutine_registry&) = delete;
    goroutine_registry& operator=(const goroutine_registry&) = delete;
    ~goroutine_registry() {
        // Off the list first: from then on no thread gives slots back to us
        // (registry_list::give_back), and no dump reads us.
        registry_list::instance().remove(this);
        destroy_all();
    }

    std::uint64_t uid() const noexcept { return uid_; }

    /// A free slot for a goroutine about to start on this registry's
    /// executor, to publish with add(). Throws std::bad_alloc if a new slab
    /// was needed and could not be had (nothing changed then).
    goroutine_node& claim_node() {
        node_cache* c = this_thread_nodes::slot();
        if (c && c->registry_uid == uid_ && c->active.count) [[likely]]
            return *c->active.pop_prefetching_next();
        return claim_node_slow();
    }

    /// Publishes `n` (from claim_node) as the entry of the goroutine whose
    /// root frame is `frame`, with a new id.
    void add(goroutine_node& n, std::coroutine_handle<> frame, origin_table::index origin) noexcept {
        // A goroutine destroyed while parked left its wait recorded. Cleared
        // here, not in remove(), because the slot's line is fetched here
        // anyway (see pop_prefetching_next), while remove() only stores.
        n.wait.clear_if_set();
        n.link.store(frame.address(), std::memory_order_relaxed);
        // release: a dump that reads the id (acquire) sees the link and the
        // cleared wait record.
        n.id_and_origin.store(goroutine_ids::next() << 16 | origin, std::memory_order_release);
    }

    /// The goroutine of `n` ended, or was destroyed: frees its slot.
    void remove(goroutine_node& n) noexcept {
        // relaxed: a dump checks the id again after reading the slot (see
        // snapshot), and what it reads of a later goroutine carries that
        // goroutine's newer id with it; the link it does not read.
        n.id_and_origin.store(0, std::memory_order_relaxed);
        node_cache* c = this_thread_nodes::slot();
        if (c && c->registry_uid == uid_ && c->active.count < node_cache::batch) [[likely]] {
            c->active.push(&n);
            return;
        }
        remove_slow(n);
    }

    /// Destroys every goroutine still alive. The caller guarantees that none
    /// of them is running or will be resumed (the executor has stopped).
    /// Destroying one frees its slot; a destructor that starts another
    /// goroutine gets it destroyed by a later pass.
    void destroy_all() noexcept {
        for (bool again = true; again;) {
            again = false;
            for_each_slot([&](goroutine_node& n) {
                if (n.id_and_origin.load(std::memory_order_acquire) == 0) return;
                again = true;
                n.frame().destroy();  // its promise's destructor calls remove(n)
            });
        }
    }

    /// How many slots the registry's slabs hold, free or not (for tests:
    /// slots go back to the threads that start goroutines, so a program
    /// that keeps few goroutines alive keeps few slabs).
    std::size_t slot_capacity() const {
        std::lock_guard lock(slabs_mu_);
        return slabs_.size() * slab_nodes;
    }

    /// Whether any goroutine is alive: the walk stops at the first one (the
    /// pool's deadlock check asks this whenever every worker goes idle).
    bool any_alive() const noexcept {
        return !for_each_slab([](const slab& s) {
            for (const goroutine_node& n : s.nodes)
                if (n.id_and_origin.load(std::memory_order_relaxed) != 0) return false;
            return true;
        });
    }

    /// The number of live goroutines, counted slot by slot.
    std::size_t size() const noexcept {
        std::size_t count = 0;
        for_each_slot([&](const goroutine_node& n) { count += n.id_and_origin.load(std::memory_order_relaxed) != 0; });
        return count;
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
        for_each_slot([&](const goroutine_node& n) {
            // A seqlock read, with the id as the sequence: acquire pairs
            // with add()'s release; if the id is the same after the wait
            // record was read, the record is this goroutine's: a later
            // goroutine in the slot has a new id, published (release)
            // before it wrote anything the record could show, and a record
            // value from it, read with acquire (goroutine_wait::read loads
            // the record's fields so), makes that id visible to the second
            // load, which those acquire loads also keep after them.
            const std::uint64_t before = n.id_and_origin.load(std::memory_order_acquire);
            if (before == 0) return;
            wait_snapshot wait = n.wait.read();
            if (n.id_and_origin.load(std::memory_order_relaxed) != before) return;  // it ended meanwhile
            out.push_back({before >> 16, origin_table::at(origin_table::index(before & 0xffff)), wait});
        });
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

    /// Called by registry_list::give_back, under the list's lock.
    void give_lists(node_list active, node_list spare) noexcept {
        std::lock_guard lock(depot_mu_);
        give_locked(active);
        give_locked(spare);
    }

private:
    // Slots live in slabs that the registry keeps until it is destroyed, so
    // reading any slot is safe at any moment (a dump reads them while
    // goroutines start and end). Free slots sit in threads' caches or in
    // the depot: batches of exactly node_cache::batch, and a loose list
    // of single slots (from threads that cache another registry's slots).
    // Lock order: slabs_mu_, then depot_mu_.
    static constexpr std::size_t slab_nodes = 256;
    static constexpr std::size_t batches_per_slab = slab_nodes / node_cache::batch;
    struct slab {
        std::array<goroutine_node, slab_nodes> nodes;
    };

    static std::uint64_t next_uid() noexcept {
        static std::atomic<std::uint64_t> last{0};
        return last.fetch_add(1, std::memory_order_relaxed) + 1;  // relaxed: only uniqueness matters
    }

    /// Calls f(slab) for every slab until f returns false (then returns
    /// false), without holding a lock while f runs (f may start a
    /// goroutine, which may add a slab; slabs are only appended).
    template <class F>
    bool for_each_slab(F f) const {
        for (std::size_t i = 0;; ++i) {
            slab* s;
            {
                std::lock_guard lock(slabs_mu_);
                if (i == slabs_.size()) return true;
                s = slabs_[i].get();
            }
            if (!f(*s)) return false;
        }
    }
    /// Calls f(node) for every slot of every slab.
    template <class F>
    void for_each_slot(F f) const {
        for_each_slab([&](slab& s) {
            for (goroutine_node& n : s.nodes) f(n);
            return true;
        });
    }

    [[gnu::noinline]] goroutine_node& claim_node_slow() {
        node_cache* c = this_thread_nodes::get();
        if (!c) {  // this thread is exiting: straight from the depot
            node_list l = take_batch();
            goroutine_node* n = l.pop();
            give_lists(l, {});
            return *n;
        }
        if (c->registry_uid != uid_) {  // this thread now starts goroutines here
            registry_list::instance().give_back(c->registry_uid, std::exchange(c->active, {}),
                                                std::exchange(c->spare, {}));
            c->registry_uid = uid_;
        }
        if (!c->active.count) c->active = c->spare.count ? std::exchange(c->spare, {}) : take_batch();
        return *c->active.pop_prefetching_next();
    }

    [[gnu::noinline]] void remove_slow(goroutine_node& n) noexcept {
        node_cache* c = this_thread_nodes::get();
        // A thread that only finishes goroutines (a worker running what
        // another one spawns) keeps their slots too, once its cache holds
        // nothing of another registry's; the depot then sees it once a batch.
        if (c && c->registry_uid != uid_ && !c->active.count && !c->spare.count) c->registry_uid = uid_;
        if (c && c->registry_uid == uid_) {  // the active list is full, or was empty and unbound
            if (c->spare.count) {
                std::lock_guard lock(depot_mu_);
                give_locked(std::exchange(c->spare, {}));
            }
            c->spare = std::exchange(c->active, {});
            c->active.push(&n);
            return;
        }
        std::lock_guard lock(depot_mu_);  // another registry's cache, or thread exit
        give_one_locked(&n);
    }

    /// A batch of free slots from the depot, or from a new slab.
    node_list take_batch() {
        {
            std::lock_guard lock(depot_mu_);
            if (!batches_.empty()) {
                node_list l = batches_.back();
                batches_.pop_back();
                return l;
            }
            if (loose_.count) return std::exchange(loose_, {});
        }
        auto fresh = std::make_unique<slab>();  // may throw: nothing published yet
        std::array<node_list, batches_per_slab> lists;
        for (std::size_t i = 0; i < slab_nodes; ++i) lists[i / node_cache::batch].push(&fresh->nodes[i]);
        std::lock_guard lock(slabs_mu_);
        slabs_.reserve(slabs_.size() + 1);  // may throw, as may the reserve below
        std::lock_guard depot_lock(depot_mu_);
        // Every batch is node_cache::batch distinct slots, so the depot
        // never holds more batches than this: give_locked never allocates.
        batches_.reserve((slabs_.size() + 1) * batches_per_slab);
        for (std::size_t i = 1; i < batches_per_slab; ++i) batches_.push_back(lists[i]);
        slabs_.push_back(std::move(fresh));
        return lists[0];
    }

    void give_locked(node_list l) noexcept {
        if (l.count == node_cache::batch) batches_.push_back(l);
        else
            while (l.count) give_one_locked(l.pop());
    }
    void give_one_locked(goroutine_node* n) noexcept {
        loose_.push(n);
        if (loose_.count == node_cache::batch) batches_.push_back(std::exchange(loose_, {}));
    }

    const std::uint64_t uid_;
    mutable std::mutex slabs_mu_;
    std::vector<std::unique_ptr<slab>> slabs_;  // only ever appended to
    // A spin lock: it is held for a vector push or pop (and, once a new
    // slab, a reserve; the slab itself is allocated outside it). With a
    // std::mutex, W5's two workers (one taking batches, the other giving
    // them back) collided on it often enough that the giver slept in the
    // kernel some 700 times a run, and while it slept the spawner's queue
    // overflowed: runs took up to twice as long.
    spin_mutex depot_mu_;
    std::vector<node_list> batches_;  // capacity reserved for every slot: see take_batch
    node_list loose_;
    mutable std::mutex mu_;  // guards kind_, the error state and the hook
    std::string kind_;
    std::exception_ptr first_error_;
    std::atomic<bool> has_error_{false};
    std::function<void()> on_first_error_;
    on_error policy_;
};

inline void registry_list::give_back(std::uint64_t uid, node_list active, node_list spare) noexcept {
    if (!active.count && !spare.count) return;
    std::lock_guard lock(mu_);
    for (goroutine_registry* r : registries_)
        if (r->uid() == uid) return r->give_lists(active, spare);
}

inline node_cache::~node_cache() {
    if (registry_uid) registry_list::instance().give_back(registry_uid, active, spare);
}

}  // namespace csp::detail
