// Randomized stress tests of csp::select, with an exact accounting.
//
// Goroutines spread over three run_loops (each driven by its own thread) and
// plain threads (which block through csp::sync_wait) select over *shared*
// channels: sends, receives, try_send/try_recv, default cases, a send and a
// receive case on the same channel, runtime-sized selects, and closes racing
// all of it. Every value carries its sender's id and a sequence number, so a
// duplicate or a value that was never sent is recognisable. Each participant
// writes down, in its own log, which of its values were sent (a send that
// returned, a select whose send case fired, a try_send that said ok), which
// were not (a send that threw channel_closed, a send case that lost, a
// try_send that would block) and what it received. After everyone has
// finished, the test thread checks that the values received are exactly the
// values sent, each once, and that no value that failed to send was received.
//
// Synchronisation is channels, wait groups and joins only: no sleeps and no
// timeouts, so a lost wake-up shows up as a hang (CTest's timeout) and a lost
// or duplicated value as a failed check.
//
// The seed is printed with every failure; CSP_STRESS_SEED=<seed> replays the
// same random choices (the thread interleavings differ, of course).
// CSP_STRESS_VERBOSE=1 prints how often each interesting path was taken.
#include <algorithm>
#include <atomic>
#include <climits>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

#if defined(__SANITIZE_THREAD__)
#define SSTRESS_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SSTRESS_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SSTRESS_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define SSTRESS_ASAN 1
#endif
#endif

namespace {

// ---- scale -----------------------------------------------------------------

// ThreadSanitizer costs these tests about fifteenfold, AddressSanitizer and
// unoptimised builds about fourfold: they move fewer values per round.
#if defined(SSTRESS_TSAN)
constexpr long work_percent = 40;
#elif defined(SSTRESS_ASAN) || !defined(__OPTIMIZE__)
constexpr long work_percent = 50;
#else
constexpr long work_percent = 100;
#endif

constexpr long scaled(long n) noexcept { return std::max(20L, n * work_percent / 100); }

constexpr std::size_t loop_count = 3;

// ---- values ----------------------------------------------------------------

using value_t = std::int64_t;

/// Participant `who` sends who * 2^32 + seq, seq = 0, 1, 2, ...
constexpr value_t value_of(std::size_t who, long seq) noexcept { return (value_t(who) << 32) + value_t(seq); }
constexpr std::size_t sender_of(value_t v) noexcept { return std::size_t(v >> 32); }

/// How a scenario makes, reads and inspects its message type.
template <class T>
struct payload;

template <>
struct payload<value_t> {
    static constexpr const char* name = "int64";
    static value_t make(value_t v) { return v; }
    static value_t read(const value_t& m) { return m; }
    /// A send that did not happen left the message as it was.
    static bool intact(const value_t& m, value_t v) { return m == v; }
    /// A send that happened took the message (nothing to see for an int).
    static bool taken(const value_t&) { return true; }
};

template <>
struct payload<csp_test::counted> {
    static constexpr const char* name = "counted";
    static csp_test::counted make(value_t v) { return csp_test::counted(long(v)); }
    static value_t read(const csp_test::counted& m) { return value_t(m.value); }
    static bool intact(const csp_test::counted& m, value_t v) { return !m.moved_from && value_t(m.value) == v; }
    static bool taken(const csp_test::counted& m) { return m.moved_from; }
};

// ---- seeds -----------------------------------------------------------------

std::uint64_t mix64(std::uint64_t z) noexcept {  // splitmix64's finaliser
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// CSP_STRESS_SEED if set, else a fresh random seed; the same for the whole run.
std::uint64_t run_seed() {
    static const std::uint64_t seed = [] {
        if (const char* s = std::getenv("CSP_STRESS_SEED")) return std::uint64_t(std::strtoull(s, nullptr, 0));
        std::random_device rd;
        return (std::uint64_t(rd()) << 32) ^ std::uint64_t(rd());
    }();
    return seed;
}

std::uint64_t seed_for(std::uint64_t base, std::uint64_t a, std::uint64_t b = 0) noexcept {
    return mix64(mix64(base ^ mix64(a + 1)) + b);
}

bool verbose() {
    static const bool v = std::getenv("CSP_STRESS_VERBOSE") != nullptr;
    return v;
}

/// A participant's private random choices.
class dice {
public:
    explicit dice(std::uint64_t seed) : rng_(seed) {}
    std::size_t below(std::size_t n) { return std::size_t(rng_() % n); }
    bool one_in(std::size_t n) { return below(n) == 0; }

private:
    std::mt19937_64 rng_;
};

// ---- what participants report ------------------------------------------------

/// Unexpected events seen off the test thread (Catch2 assertions are made
/// on the test thread only).
class trouble_log {
public:
    void add(const std::string& what) {
        std::lock_guard lock(mu_);
        if (++count_ <= 8) text_ += what + "\n";
    }
    long count() const {
        std::lock_guard lock(mu_);
        return count_;
    }
    std::string text() const {
        std::lock_guard lock(mu_);
        return text_;
    }

private:
    mutable std::mutex mu_;
    long count_ = 0;
    std::string text_;
};

/// How often the interesting paths were taken (for CSP_STRESS_VERBOSE).
struct path_counts {
    std::atomic<long> sent{0}, send_failed{0}, closed_thrown{0}, send_case_lost{0}, defaults{0},
        try_would_block{0}, received{0}, received_by_sender{0}, closed_seen{0}, dynamic_fired{0},
        same_channel_send{0}, same_channel_recv{0}, done_fired{0}, drained{0};

    void print(const char* what) const {
        if (!verbose()) return;
        std::printf(
            "%s: sent %ld, failed %ld (closed %ld, lost case %ld, default %ld, try %ld), received %ld "
            "(by senders %ld), closes seen %ld, dynamic %ld, same-channel send %ld recv %ld, done %ld, drained %ld\n",
            what, sent.load(), send_failed.load(), closed_thrown.load(), send_case_lost.load(), defaults.load(),
            try_would_block.load(), received.load(), received_by_sender.load(), closed_seen.load(),
            dynamic_fired.load(), same_channel_send.load(), same_channel_recv.load(), done_fired.load(),
            drained.load());
    }
};

struct receipt {
    std::size_t channel;
    value_t value;
};

/// One participant's record; only that participant writes it.
struct actor_log {
    std::vector<value_t> sent;
    std::vector<value_t> failed;
    std::vector<receipt> received;
};

/// Records what a finished send attempt did with its message.
template <class T>
void settle(actor_log& log, trouble_log& trouble, path_counts& paths, const T& msg, value_t v, bool sent) {
    if (sent) {
        log.sent.push_back(v);
        ++paths.sent;
        if (!payload<T>::taken(msg)) trouble.add("a send that happened left its message unmoved: " + std::to_string(v));
    } else {
        log.failed.push_back(v);
        ++paths.send_failed;
        if (!payload<T>::intact(msg, v))
            trouble.add("a send that did not happen moved from (or changed) its message: " + std::to_string(v));
    }
}

/// Checks the books of one round on the test thread: every value sent was
/// received exactly once, nothing else was received, and each receiver saw
/// each sender's values on each channel in the order they were sent.
void check_books(const std::vector<actor_log>& logs, const trouble_log& trouble) {
    std::vector<value_t> sent, failed, received;
    for (const actor_log& l : logs) {
        sent.insert(sent.end(), l.sent.begin(), l.sent.end());
        failed.insert(failed.end(), l.failed.begin(), l.failed.end());
        for (const receipt& r : l.received) received.push_back(r.value);
    }
    std::sort(sent.begin(), sent.end());
    std::sort(failed.begin(), failed.end());
    std::sort(received.begin(), received.end());

    auto describe = [](const char* what, const std::vector<value_t>& vs) {
        std::ostringstream os;
        os << vs.size() << ' ' << what;
        for (std::size_t i = 0; i < vs.size() && i < 5; ++i)
            os << (i ? ", " : ": ") << "sender " << sender_of(vs[i]) << " #" << (vs[i] & 0xffffffff);
        return os.str();
    };
    std::vector<value_t> duplicated, lost, phantom, failed_but_received, sent_and_failed;
    for (std::size_t i = 1; i < received.size(); ++i)
        if (received[i] == received[i - 1]) duplicated.push_back(received[i]);
    std::set_difference(sent.begin(), sent.end(), received.begin(), received.end(), std::back_inserter(lost));
    std::set_difference(received.begin(), received.end(), sent.begin(), sent.end(), std::back_inserter(phantom));
    std::set_intersection(failed.begin(), failed.end(), received.begin(), received.end(),
                          std::back_inserter(failed_but_received));
    std::set_intersection(sent.begin(), sent.end(), failed.begin(), failed.end(), std::back_inserter(sent_and_failed));

    std::size_t out_of_order = 0;
    std::string first_out_of_order;
    for (std::size_t who = 0; who < logs.size(); ++who) {
        std::unordered_map<std::uint64_t, value_t> last;  // (sender, channel) -> last value seen
        for (const receipt& r : logs[who].received) {
            const std::uint64_t key = (std::uint64_t(sender_of(r.value)) << 20) | r.channel;
            auto [it, fresh] = last.try_emplace(key, r.value);
            if (!fresh) {
                if (r.value <= it->second && out_of_order++ == 0)
                    first_out_of_order = "participant " + std::to_string(who) + " got " + std::to_string(r.value) +
                                         " after " + std::to_string(it->second) + " on channel " +
                                         std::to_string(r.channel);
                it->second = r.value;
            }
        }
    }

    INFO("sent " << sent.size() << ", failed " << failed.size() << ", received " << received.size());
    INFO("participants reported:\n" << trouble.text());
    CHECK(trouble.count() == 0);
    INFO(describe("duplicated", duplicated));
    CHECK(duplicated.empty());
    INFO(describe("lost", lost));
    CHECK(lost.empty());
    INFO(describe("received but never sent", phantom));
    CHECK(phantom.empty());
    INFO(describe("failed to send but received", failed_but_received));
    CHECK(failed_but_received.empty());
    INFO(describe("counted both as sent and as failed", sent_and_failed));
    CHECK(sent_and_failed.empty());
    INFO(out_of_order << " out of order; first: " << first_out_of_order);
    CHECK(out_of_order == 0);
}

// ---- awaiting from goroutines and from plain threads ---------------------------

/// An awaiter that is already complete, holding a result computed eagerly.
template <class R>
struct settled {
    R result;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    R await_resume() { return std::move(result); }
};
template <>
struct settled<void> {
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept {}
};

/// `co_await blocking<Threaded>(op)`: a goroutine awaits `op` itself; a
/// plain-thread participant (Threaded) blocks its thread in
/// csp::sync_wait(op) instead and awaits the settled result, which never
/// suspends. Either way a channel_closed surfaces at the co_await.
template <bool Threaded, class A>
auto blocking(A&& op) {
    if constexpr (!Threaded) {
        return std::remove_cvref_t<A>(std::forward<A>(op));
    } else {
        using R = decltype(csp::sync_wait(op));
        if constexpr (std::is_void_v<R>) {
            csp::sync_wait(op);
            return settled<void>{};
        } else {
            return settled<R>{csp::sync_wait(op)};
        }
    }
}

/// dst = std::move(src), for a T that is move-constructible only (csp_test::counted
/// cannot be assigned, so neither can std::optional<counted>).
template <class T>
void put(std::optional<T>& dst, std::optional<T>&& src) {
    dst.reset();
    if (src) dst.emplace(std::move(*src));
}

/// The received optional of case I of a select whose cases 0..N-1 are all
/// receive cases.
template <class T, std::size_t N, std::size_t I = 0, class R>
std::optional<T> take_received(R& r) {
    if constexpr (I + 1 < N) {
        if (r.index() != I) return take_received<T, N, I + 1>(r);
    }
    return std::move(r.template get<I>());
}

/// Where participants run: goroutines on `loop_count` run_loops (one thread
/// each) and plain threads. Destruction joins the threads first, then stops
/// the loops: create it after everything the participants use, and wait for
/// every goroutine to finish before it goes away.
///
/// The wait groups in particular must outlive the arena, not just the
/// sync_wait(wg.wait()) that returned: wait_group::done() still touches the
/// wait_group after it has woken the waiter, so the participant that called
/// it last may not have left done() yet. Joining the threads and stopping the
/// loops (which finishes the goroutine being resumed) makes sure it has.
class arena {
public:
    arena() {
        for (std::size_t i = 0; i < loop_count; ++i) loops_.push_back(std::make_unique<csp_test::loop_thread>());
    }
    arena(const arena&) = delete;
    arena& operator=(const arena&) = delete;
    ~arena() { join_threads(); }

    /// Starts a participant: `make(std::bool_constant<Threaded>{})` builds its
    /// task. where < 0: a plain thread; otherwise a goroutine on loop `where`.
    template <class Make>
    void start(int where, Make make) {
        if (where < 0) threads_.emplace_back([make]() mutable { csp::sync_wait(make(std::true_type{})); });
        else csp::spawn(loops_[std::size_t(where) % loops_.size()]->loop(), make(std::false_type{}));
    }

    void join_threads() {
        for (std::thread& t : threads_) t.join();
        threads_.clear();
    }

private:
    std::vector<std::unique_ptr<csp_test::loop_thread>> loops_;
    std::vector<std::thread> threads_;
};

/// Where participant i of n goes: the first of each kind on a plain thread,
/// the second on a loop, the rest at random (about one in four a thread).
int placement(dice& d, std::size_t i) {
    if (i == 0) return -1;
    if (i == 1) return 0;
    return d.one_in(4) ? -1 : int(d.below(loop_count));
}

// =============================================================================
// Scenario "mixed": senders and receivers over K shared channels, closes racing.
//
// Senders offer each value once, by one of: a plain send, a select offering it
// on two channels, a select with a send case and receive cases (sometimes on
// the same channel), try_send, a select with a default, a runtime-sized
// select of send cases. Whatever happens to that attempt is final: the next
// attempt sends the next value. Receivers take values by static selects over
// four channels (with or without default), runtime-sized selects over all
// channels, try_recv and plain recv, and stop once every channel has given
// them nullopt. Channels are closed at random moments by receivers (when the
// total of receipts reaches a per-channel threshold) and by one sender, and
// the rest by the test thread once every sender has finished.
//
// Progress without timing: "anchor" receivers only ever block in a select
// over every open channel, so a blocked sender always finds one eventually;
// receivers blocked on fewer channels are released by the final closes.
// =============================================================================

struct mixed_setup {
    std::vector<std::size_t> capacities;  // one channel per entry
    std::size_t senders = 6;
    std::size_t receivers = 5;
    std::size_t anchors = 2;
    long values_per_sender = 1000;
};

template <class T>
struct mixed_world {
    mixed_world(const mixed_setup& s, std::uint64_t seed_) : setup(s), seed(seed_), logs(s.senders + s.receivers) {
        dice d(seed_for(seed, 0xC105E));
        const long total = long(s.senders) * s.values_per_sender;
        for (std::size_t k = 0; k < s.capacities.size(); ++k) {
            channels.push_back(csp::make_channel<T>(s.capacities[k]));
            // Half the channels are closed early, after a random share of the traffic.
            close_at.push_back(d.one_in(2) ? 1 + long(d.below(std::size_t(std::max(1L, total * 9 / 10)))) : LONG_MAX);
        }
        closing_sender = d.below(s.senders);
        closing_sender_at = long(d.below(std::size_t(s.values_per_sender)));
        closes_claimed = std::make_unique<std::atomic<bool>[]>(channels.size());
    }

    std::size_t size() const noexcept { return channels.size(); }

    /// Closes channel k unless someone already did (close of a closed channel throws).
    void close_once(std::size_t k) {
        if (!closes_claimed[k].exchange(true)) channels[k].close();
    }

    void count_receipt(std::size_t who, std::size_t k, value_t v) {
        logs[who].received.push_back(receipt{k, v});
        ++paths.received;
        const long n = receipts.fetch_add(1) + 1;
        for (std::size_t c = 0; c < size(); ++c)
            if (n >= close_at[c] && !closes_claimed[c].load(std::memory_order_relaxed)) close_once(c);
    }

    const mixed_setup setup;
    const std::uint64_t seed;
    std::vector<csp::channel<T>> channels;
    std::vector<long> close_at;
    std::unique_ptr<std::atomic<bool>[]> closes_claimed;
    std::size_t closing_sender = 0;
    long closing_sender_at = 0;
    std::atomic<long> receipts{0};
    std::vector<actor_log> logs;  // senders first, then receivers
    csp::wait_group senders_left;
    csp::wait_group receivers_left;
    trouble_log trouble;
    path_counts paths;
};

template <bool Threaded, class T>
csp::task<> mixed_sender(mixed_world<T>& w, std::size_t who) {
    actor_log& log = w.logs[who];
    dice d(seed_for(w.seed, 1, who));
    std::vector<std::size_t> open(w.size());
    std::iota(open.begin(), open.end(), std::size_t{0});
    try {
        for (long seq = 0; seq < w.setup.values_per_sender && !open.empty(); ++seq) {
            if (who == w.closing_sender && seq == w.closing_sender_at) w.close_once(open[d.below(open.size())]);

            const value_t v = value_of(who, seq);
            T msg = payload<T>::make(v);
            const std::size_t a = open[d.below(open.size())];
            const std::size_t b = d.one_in(3) ? a : open[d.below(open.size())];
            csp::channel<T>& ca = w.channels[a];
            csp::channel<T>& cb = w.channels[b];
            bool sent = false;
            std::optional<T> got;              // a value a receive case of ours took
            std::size_t got_from = w.size();  // its channel, if a receive case fired
            bool threw = false;
            try {
                switch (d.below(8)) {
                case 0: {  // plain blocking send
                    co_await blocking<Threaded>(ca.send(std::move(msg)));
                    sent = true;
                    break;
                }
                case 1: {  // one value offered on two channels (perhaps the same one)
                    auto r = co_await blocking<Threaded>(csp::select(ca.send(std::move(msg)), cb.send(std::move(msg))));
                    sent = r.index() <= 1;
                    break;
                }
                case 2: {  // a send case and a receive case
                    auto r = co_await blocking<Threaded>(csp::select(ca.send(std::move(msg)), cb.recv()));
                    if (r.index() == 0) {
                        sent = true;
                        if (a == b) ++w.paths.same_channel_send;
                    } else {
                        put(got, std::move(r.template get<1>()));
                        got_from = b;
                        if (a == b) ++w.paths.same_channel_recv;
                    }
                    break;
                }
                case 3: {  // send and receive on one channel, and receive on another
                    auto r = co_await blocking<Threaded>(csp::select(ca.recv(), ca.send(std::move(msg)), cb.recv()));
                    if (r.index() == 1) {
                        sent = true;
                        ++w.paths.same_channel_send;
                    } else if (r.index() == 0) {
                        put(got, std::move(r.template get<0>()));
                        got_from = a;
                        ++w.paths.same_channel_recv;
                    } else {
                        put(got, std::move(r.template get<2>()));
                        got_from = b;
                    }
                    break;
                }
                case 4: {  // try_send
                    switch (ca.try_send(std::move(msg))) {
                    case csp::chan_status::ok: sent = true; break;
                    case csp::chan_status::would_block: ++w.paths.try_would_block; break;
                    case csp::chan_status::closed: std::erase(open, a); break;
                    }
                    break;
                }
                case 5: {  // a send case or the default
                    auto r = co_await blocking<Threaded>(csp::select(ca.send(std::move(msg)), csp::default_case));
                    sent = r.index() == 0;
                    if (!sent) ++w.paths.defaults;
                    break;
                }
                case 6: {  // a runtime-sized select of send cases, one per open channel
                    std::vector<csp::send_awaiter<T>> cases;
                    cases.reserve(open.size());
                    const bool copies = d.one_in(2);
                    for (std::size_t k : open) {
                        if constexpr (std::is_copy_constructible_v<T>) {
                            if (copies) {
                                cases.push_back(w.channels[k].send(std::as_const(msg)));  // each case holds a copy
                                continue;
                            }
                        }
                        cases.push_back(w.channels[k].send(std::move(msg)));  // all cases point at msg
                    }
                    const bool with_default = d.one_in(3);
                    if (with_default) {
                        auto r = co_await blocking<Threaded>(csp::select(cases, csp::default_case));
                        sent = r.index() < cases.size();
                        if (!sent) ++w.paths.defaults;
                    } else {
                        auto r = co_await blocking<Threaded>(csp::select(cases));
                        sent = r.index() < cases.size();
                    }
                    if (sent) ++w.paths.dynamic_fired;
                    break;
                }
                default: {  // two send cases, a receive case and a default
                    auto r = co_await blocking<Threaded>(
                        csp::select(ca.send(std::move(msg)), cb.send(std::move(msg)), cb.recv(), csp::default_case));
                    if (r.index() <= 1) {
                        sent = true;
                    } else if (r.index() == 2) {
                        put(got, std::move(r.template get<2>()));
                        got_from = b;
                    } else {
                        ++w.paths.defaults;
                    }
                    break;
                }
                }
            } catch (const csp::channel_closed&) {
                threw = true;
            }
            if (threw) {
                ++w.paths.closed_thrown;
                const std::size_t before = open.size();
                std::erase_if(open, [&](std::size_t k) { return w.channels[k].closed(); });
                if (open.size() == before) w.trouble.add("channel_closed thrown, but none of the channels is closed");
            }
            if (got_from < w.size()) {
                ++w.paths.send_case_lost;
                if (got) {
                    ++w.paths.received_by_sender;
                    w.count_receipt(who, got_from, payload<T>::read(*got));
                } else {
                    ++w.paths.closed_seen;
                    std::erase(open, got_from);
                }
            }
            settle(log, w.trouble, w.paths, msg, v, sent);
        }
    } catch (const std::exception& e) {
        w.trouble.add(std::string("sender: unexpected exception: ") + e.what());
    }
    w.senders_left.done();
}

template <bool Threaded, class T>
csp::task<> mixed_receiver(mixed_world<T>& w, std::size_t who, bool anchor) {
    dice d(seed_for(w.seed, 2, who));
    const std::size_t n = w.size();
    std::vector<char> open(n, 1);
    std::size_t open_count = n;
    auto view = [&](std::size_t k) { return open[k] ? w.channels[k] : csp::channel<T>(); };
    auto pick_open = [&] {
        std::size_t i = d.below(open_count);
        for (std::size_t k = 0;; ++k)
            if (open[k] && i-- == 0) return k;
    };
    try {
        while (open_count > 0) {
            std::optional<T> got;
            std::size_t from = n;  // the channel that answered; n: none did
            bool block_on_all = false;
            std::size_t op = d.below(6);
            // Anchors never block on fewer than all open channels.
            if (anchor && ((op <= 1 && n > 4) || op == 5)) op = 2;
            switch (op) {
            case 0:
            case 1: {  // a static select over four channels (all of them, or four open ones)
                std::size_t k[4];
                for (std::size_t i = 0; i < 4; ++i) k[i] = n == 4 ? i : pick_open();
                csp::channel<T> c0 = view(k[0]), c1 = view(k[1]), c2 = view(k[2]), c3 = view(k[3]);
                if (op == 0) {
                    auto r = co_await blocking<Threaded>(csp::select(c0.recv(), c1.recv(), c2.recv(), c3.recv()));
                    from = k[r.index()];
                    put(got, take_received<T, 4>(r));
                } else {
                    auto r = co_await blocking<Threaded>(
                        csp::select(c0.recv(), c1.recv(), c2.recv(), c3.recv(), csp::default_case));
                    if (r.index() == 4) {
                        ++w.paths.defaults;
                        block_on_all = true;
                    } else {
                        from = k[r.index()];
                        put(got, take_received<T, 4>(r));
                    }
                }
                break;
            }
            case 2:
            case 3: {  // a runtime-sized select over every channel (closed ones as nil)
                std::vector<csp::recv_awaiter<T>> cases;
                cases.reserve(n);
                for (std::size_t k = 0; k < n; ++k) cases.push_back(view(k).recv());
                if (op == 2) {
                    auto r = co_await blocking<Threaded>(csp::select(cases));
                    from = r.index();
                    put(got, std::move(r.value()));
                } else {
                    auto r = co_await blocking<Threaded>(csp::select(cases, csp::default_case));
                    if (r.index() == n) {
                        ++w.paths.defaults;
                        block_on_all = true;
                    } else {
                        from = r.index();
                        put(got, std::move(r.value()));
                    }
                }
                if (from < n) ++w.paths.dynamic_fired;
                break;
            }
            case 4: {  // try_recv, and block on everything if that would block
                const std::size_t k = pick_open();
                auto r = w.channels[k].try_recv();
                if (r.status == csp::chan_status::would_block) {
                    ++w.paths.try_would_block;
                    block_on_all = true;
                } else {
                    from = k;
                    put(got, std::move(r.value));  // nullopt when closed
                    if (r.status == csp::chan_status::closed && got) w.trouble.add("try_recv: closed with a value");
                }
                break;
            }
            default: {  // a plain receive on one channel
                const std::size_t k = pick_open();
                put(got, co_await blocking<Threaded>(w.channels[k].recv()));
                from = k;
                break;
            }
            }
            if (block_on_all) {
                std::vector<csp::recv_awaiter<T>> cases;
                cases.reserve(n);
                for (std::size_t k = 0; k < n; ++k) cases.push_back(view(k).recv());
                auto r = co_await blocking<Threaded>(csp::select(cases));
                from = r.index();
                put(got, std::move(r.value()));
            }
            if (from >= n) {
                w.trouble.add("receiver: no case reported");
                break;
            }
            if (!open[from]) w.trouble.add("receiver: a nil case fired");
            if (got) {
                w.count_receipt(who, from, payload<T>::read(*got));
            } else {
                ++w.paths.closed_seen;
                if (!w.channels[from].closed()) w.trouble.add("receiver: nullopt from an open channel");
                if (open[from]) open[from] = 0, --open_count;
            }
        }
    } catch (const std::exception& e) {
        w.trouble.add(std::string("receiver: unexpected exception: ") + e.what());
    }
    w.receivers_left.done();
}

template <class T>
void mixed_round(const mixed_setup& setup, std::uint64_t seed) {
    mixed_world<T> w(setup, seed);
    {
        dice d(seed_for(seed, 0x9A7E));
        arena a;  // after w: destroyed (threads joined, loops stopped) before it
        w.senders_left.add(long(setup.senders));
        w.receivers_left.add(long(setup.receivers));
        for (std::size_t i = 0; i < setup.senders; ++i)
            a.start(placement(d, i), [&w, i](auto threaded) { return mixed_sender<decltype(threaded)::value>(w, i); });
        for (std::size_t j = 0; j < setup.receivers; ++j) {
            const std::size_t who = setup.senders + j;
            const bool anchor = j < setup.anchors;
            a.start(placement(d, j), [&w, who, anchor](auto threaded) {
                return mixed_receiver<decltype(threaded)::value>(w, who, anchor);
            });
        }
        csp::sync_wait(w.senders_left.wait());
        // Close what is still open, while receivers are blocked or draining.
        for (std::size_t k = 0; k < w.size(); ++k) w.close_once(k);
        csp::sync_wait(w.receivers_left.wait());
        a.join_threads();
    }
    w.paths.print(payload<T>::name);
    check_books(w.logs, w.trouble);
}

std::string describe_capacities(const std::vector<std::size_t>& caps) {
    std::string s;
    for (std::size_t c : caps) s += (s.empty() ? "" : ",") + std::to_string(c);
    return s;
}

/// Round r's capacities: all unbuffered, all 1, all `big`, or a random mix.
std::vector<std::size_t> capacities_for(int round, std::size_t channels, std::size_t big, std::uint64_t seed) {
    dice d(seed_for(seed, 0xCA9));
    const std::size_t choices[] = {0, 1, big};
    std::vector<std::size_t> caps(channels);
    for (std::size_t k = 0; k < channels; ++k) caps[k] = round % 4 < 3 ? choices[round % 4] : choices[d.below(3)];
    return caps;
}

// =============================================================================
// Scenario "done": receivers select on a data channel and a done channel that
// is closed (by the receiver whose receipt reaches a random threshold) while
// values are still in flight. Producers select between sending and done.
// Afterwards the test thread drains the data channel; the books must balance.
// =============================================================================

template <class T>
struct done_world {
    done_world(std::size_t capacity, std::size_t producers_, std::size_t receivers_, long values_, std::uint64_t seed_)
        : seed(seed_),
          producers(producers_),
          receivers(receivers_),
          values(values_),
          data(csp::make_channel<T>(capacity)),
          done(csp::make_channel<T>()),
          logs(producers_ + receivers_ + 1) {
        dice d(seed_for(seed, 0xD0E));
        close_at = 1 + long(d.below(std::size_t(long(producers) * values * 9 / 10)));
    }

    const std::uint64_t seed;
    const std::size_t producers, receivers;
    const long values;
    long close_at = 1;
    csp::channel<T> data, done;
    std::atomic<long> receipts{0};
    std::vector<actor_log> logs;  // producers, receivers, then the test thread's drain
    csp::wait_group left;
    trouble_log trouble;
    path_counts paths;
};

template <bool Threaded, class T>
csp::task<> done_producer(done_world<T>& w, std::size_t who) {
    actor_log& log = w.logs[who];
    dice d(seed_for(w.seed, 3, who));
    try {
        bool stop = false;
        for (long seq = 0; seq < w.values && !stop; ++seq) {
            const value_t v = value_of(who, seq);
            T msg = payload<T>::make(v);
            bool sent = false;
            std::size_t op = d.below(6);
            if (op == 0) {  // try first; if that would block, fall back to a select
                const csp::chan_status s = w.data.try_send(std::move(msg));
                if (s == csp::chan_status::ok) {
                    sent = true;
                } else {
                    if (s == csp::chan_status::closed) w.trouble.add("producer: data closed under try_send");
                    if (!payload<T>::intact(msg, v)) w.trouble.add("producer: try_send that would block moved");
                    ++w.paths.try_would_block;
                    op = 1;
                }
            }
            // A select's default, or a would-block try_send, leaves the same
            // message to a blocking select: each message is sent or stopped by done.
            while (!sent && !stop) {
                std::optional<T> from_done;
                std::size_t fired = 0;  // 0: the send case, 1: done
                switch (op) {
                case 1: {
                    auto r = co_await blocking<Threaded>(csp::select(w.data.send(std::move(msg)), w.done.recv()));
                    fired = r.index();
                    if (fired == 1) put(from_done, std::move(r.template get<1>()));
                    break;
                }
                case 2: {
                    auto r = co_await blocking<Threaded>(csp::select(w.done.recv(), w.data.send(std::move(msg))));
                    fired = r.index() == 1 ? 0 : 1;
                    if (fired == 1) put(from_done, std::move(r.template get<0>()));
                    break;
                }
                case 3: {  // done has priority
                    auto r =
                        co_await blocking<Threaded>(csp::select_biased(w.done.recv(), w.data.send(std::move(msg))));
                    fired = r.index() == 1 ? 0 : 1;
                    if (fired == 1) put(from_done, std::move(r.template get<0>()));
                    break;
                }
                case 4: {
                    auto r = co_await blocking<Threaded>(
                        csp::select(w.data.send(std::move(msg)), w.done.recv(), csp::default_case));
                    if (r.index() == 2) {
                        ++w.paths.defaults;
                        if (!payload<T>::intact(msg, v)) w.trouble.add("producer: default case moved the message");
                        op = 1;
                        continue;
                    }
                    fired = r.index();
                    if (fired == 1) put(from_done, std::move(r.template get<1>()));
                    break;
                }
                default: {  // the same message offered twice on data
                    auto r = co_await blocking<Threaded>(
                        csp::select(w.data.send(std::move(msg)), w.done.recv(), w.data.send(std::move(msg))));
                    fired = r.index() == 1 ? 1 : 0;
                    if (fired == 1) put(from_done, std::move(r.template get<1>()));
                    break;
                }
                }
                if (fired == 0) {
                    sent = true;
                } else {
                    stop = true;
                    ++w.paths.done_fired;
                    if (from_done) w.trouble.add("producer: received a value from done");
                }
            }
            settle(log, w.trouble, w.paths, msg, v, sent);
        }
    } catch (const std::exception& e) {
        w.trouble.add(std::string("producer: unexpected exception: ") + e.what());
    }
    w.left.done();
}

template <bool Threaded, class T>
csp::task<> done_receiver(done_world<T>& w, std::size_t who) {
    actor_log& log = w.logs[who];
    dice d(seed_for(w.seed, 4, who));
    try {
        for (;;) {
            std::optional<T> got;
            bool from_data = false;
            std::size_t op = d.below(6);
            if (op == 4) {
                auto r = w.data.try_recv();
                if (r.status == csp::chan_status::ok) {
                    put(got, std::move(r.value));
                    from_data = true;
                } else {
                    if (r.status == csp::chan_status::closed) w.trouble.add("receiver: data closed under try_recv");
                    ++w.paths.try_would_block;
                    op = 0;
                }
            }
            if (op == 2 || op == 3) {  // runtime-sized: data and done as a list
                std::vector<csp::recv_awaiter<T>> cases;
                const bool data_first = d.one_in(2);
                cases.push_back(data_first ? w.data.recv() : w.done.recv());
                cases.push_back(data_first ? w.done.recv() : w.data.recv());
                std::size_t index = 0;
                if (op == 3) {
                    auto r = co_await blocking<Threaded>(csp::select(cases, csp::default_case));
                    index = r.index();
                    if (index < 2) put(got, std::move(r.value()));
                } else {
                    auto r = co_await blocking<Threaded>(csp::select(cases));
                    index = r.index();
                    put(got, std::move(r.value()));
                }
                if (index == 2) {
                    ++w.paths.defaults;
                    op = 0;
                } else {
                    ++w.paths.dynamic_fired;
                    from_data = (index == 0) == data_first;
                }
            }
            if (op == 0 || op == 1 || op == 5) {
                if (op == 1) {
                    auto r = co_await blocking<Threaded>(csp::select(w.done.recv(), w.data.recv()));
                    from_data = r.index() == 1;
                    put(got, take_received<T, 2>(r));
                } else {
                    auto r = co_await blocking<Threaded>(csp::select(w.data.recv(), w.done.recv()));
                    from_data = r.index() == 0;
                    put(got, take_received<T, 2>(r));
                }
            }
            if (!from_data) {  // done fired
                if (got) w.trouble.add("receiver: received a value from done");
                if (!w.done.closed()) w.trouble.add("receiver: done fired while open");
                ++w.paths.done_fired;
                break;
            }
            if (!got) {
                w.trouble.add("receiver: nullopt from data, which is never closed while running");
                break;
            }
            log.received.push_back(receipt{0, payload<T>::read(*got)});
            ++w.paths.received;
            if (w.receipts.fetch_add(1) + 1 == w.close_at) w.done.close();  // exactly one receiver gets here
        }
    } catch (const std::exception& e) {
        w.trouble.add(std::string("receiver: unexpected exception: ") + e.what());
    }
    w.left.done();
}

template <class T>
void done_round(std::size_t capacity, std::uint64_t seed) {
    const std::size_t producers = 5, receivers = 4;
    done_world<T> w(capacity, producers, receivers, scaled(10000), seed);
    {
        dice d(seed_for(seed, 0x9A7E));
        arena a;
        w.left.add(long(producers + receivers));
        for (std::size_t i = 0; i < producers; ++i)
            a.start(placement(d, i), [&w, i](auto threaded) { return done_producer<decltype(threaded)::value>(w, i); });
        for (std::size_t j = 0; j < receivers; ++j) {
            const std::size_t who = producers + j;
            a.start(placement(d, j), [&w, who](auto threaded) { return done_receiver<decltype(threaded)::value>(w, who); });
        }
        csp::sync_wait(w.left.wait());
        a.join_threads();
    }
    // Everyone has stopped. Whatever is still buffered was sent: drain it.
    actor_log& drain = w.logs.back();
    for (;;) {
        auto r = w.data.try_recv();
        if (r.status != csp::chan_status::ok) {
            CHECK(r.status == csp::chan_status::would_block);
            break;
        }
        drain.received.push_back(receipt{0, payload<T>::read(*r.value)});
        ++w.paths.drained;
    }
    CHECK(drain.received.size() <= capacity);
    w.data.close();
    CHECK(w.data.try_recv().status == csp::chan_status::closed);
    CHECK(w.done.closed());
    w.paths.print(payload<T>::name);
    check_books(w.logs, w.trouble);
}

// =============================================================================
// Scenario "pairs": every participant selects to send and to receive on the
// same channel at once, so they must pair up with one another, and on an
// unbuffered channel none may ever receive its own value. Once an actor has
// made all its attempts it only receives, until the last one closes `done`.
// =============================================================================

template <class T>
struct pair_world {
    pair_world(std::size_t capacity_, std::size_t actors_, long attempts_, std::uint64_t seed_)
        : seed(seed_),
          capacity(capacity_),
          actors(actors_),
          attempts(attempts_),
          ch(csp::make_channel<T>(capacity_)),
          done(csp::make_channel<T>()),
          logs(actors_ + 1) {}

    const std::uint64_t seed;
    const std::size_t capacity, actors;
    const long attempts;
    csp::channel<T> ch, done;
    std::atomic<std::size_t> finished{0};
    std::vector<actor_log> logs;  // actors, then the drain
    csp::wait_group left;
    trouble_log trouble;
    path_counts paths;
};

template <bool Threaded, class T>
csp::task<> pair_actor(pair_world<T>& w, std::size_t who) {
    actor_log& log = w.logs[who];
    dice d(seed_for(w.seed, 5, who));
    auto note = [&](std::optional<T>& got) {
        if (!got) {
            w.trouble.add("actor: nullopt from a channel that is never closed while running");
            return;
        }
        const value_t v = payload<T>::read(*got);
        if (w.capacity == 0 && sender_of(v) == who)
            w.trouble.add("actor " + std::to_string(who) + " received its own value through an unbuffered channel");
        log.received.push_back(receipt{0, v});
        ++w.paths.received;
    };
    try {
        for (long seq = 0; seq < w.attempts; ++seq) {
            const value_t v = value_of(who, seq);
            T msg = payload<T>::make(v);
            std::optional<T> got;
            bool sent = false, received = false;
            switch (d.below(5)) {
            case 0: {
                auto r = co_await blocking<Threaded>(csp::select(w.ch.send(std::move(msg)), w.ch.recv()));
                sent = r.index() == 0;
                if (!sent) put(got, std::move(r.template get<1>())), received = true;
                break;
            }
            case 1: {
                auto r = co_await blocking<Threaded>(csp::select(w.ch.recv(), w.ch.send(std::move(msg))));
                sent = r.index() == 1;
                if (!sent) put(got, std::move(r.template get<0>())), received = true;
                break;
            }
            case 2: {
                auto r = co_await blocking<Threaded>(
                    csp::select(w.ch.send(std::move(msg)), w.ch.recv(), csp::default_case));
                sent = r.index() == 0;
                if (r.index() == 1) put(got, std::move(r.template get<1>())), received = true;
                if (r.index() == 2) ++w.paths.defaults;
                break;
            }
            case 3: {  // two receive cases and a send case on one channel
                auto r = co_await blocking<Threaded>(csp::select(w.ch.recv(), w.ch.send(std::move(msg)), w.ch.recv()));
                sent = r.index() == 1;
                if (r.index() == 0) put(got, std::move(r.template get<0>())), received = true;
                if (r.index() == 2) put(got, std::move(r.template get<2>())), received = true;
                break;
            }
            default: {  // biased towards receiving
                auto r = co_await blocking<Threaded>(csp::select_biased(w.ch.recv(), w.ch.send(std::move(msg))));
                sent = r.index() == 1;
                if (!sent) put(got, std::move(r.template get<0>())), received = true;
                break;
            }
            }
            if (sent) ++w.paths.same_channel_send;
            if (received) {
                ++w.paths.same_channel_recv;
                note(got);
            }
            settle(log, w.trouble, w.paths, msg, v, sent);
        }
        if (w.finished.fetch_add(1) + 1 == w.actors) w.done.close();
        for (;;) {  // keep receiving for the others until everyone is done
            auto r = co_await blocking<Threaded>(csp::select(w.ch.recv(), w.done.recv()));
            if (r.index() == 1) {
                if (r.template get<1>()) w.trouble.add("actor: received a value from done");
                break;
            }
            note(r.template get<0>());
        }
    } catch (const std::exception& e) {
        w.trouble.add(std::string("actor: unexpected exception: ") + e.what());
    }
    w.left.done();
}

template <class T>
void pair_round(std::size_t capacity, std::uint64_t seed) {
    const std::size_t actors = 6;
    pair_world<T> w(capacity, actors, scaled(12000), seed);
    {
        dice d(seed_for(seed, 0x9A7E));
        arena a;
        w.left.add(long(actors));
        for (std::size_t i = 0; i < actors; ++i)
            a.start(placement(d, i), [&w, i](auto threaded) { return pair_actor<decltype(threaded)::value>(w, i); });
        csp::sync_wait(w.left.wait());
        a.join_threads();
    }
    actor_log& drain = w.logs.back();
    for (;;) {
        auto r = w.ch.try_recv();
        if (r.status != csp::chan_status::ok) {
            CHECK(r.status == csp::chan_status::would_block);
            break;
        }
        drain.received.push_back(receipt{0, payload<T>::read(*r.value)});
        ++w.paths.drained;
    }
    CHECK(drain.received.size() <= capacity);
    w.paths.print(payload<T>::name);
    check_books(w.logs, w.trouble);
}


}  // namespace

TEST_CASE("selects racing sends, receives and closes lose and duplicate no value") {
    const std::uint64_t seed = run_seed();
    INFO("replay with CSP_STRESS_SEED=" << seed);
    for (int round = 0; round < 24; ++round) {
        const std::uint64_t round_seed = seed_for(seed, 100, std::uint64_t(round));
        mixed_setup setup;
        setup.capacities = capacities_for(round, 4, 32, round_seed);
        setup.values_per_sender = scaled(8000);
        CAPTURE(round, describe_capacities(setup.capacities));
        mixed_round<value_t>(setup, round_seed);
    }
}

TEST_CASE("move-only values racing through selects and closes are each received once or destroyed unsent") {
    const std::uint64_t seed = run_seed();
    INFO("replay with CSP_STRESS_SEED=" << seed);
    const long live_before = csp_test::counted::live.load();
    for (int round = 0; round < 24; ++round) {
        const std::uint64_t round_seed = seed_for(seed, 200, std::uint64_t(round));
        mixed_setup setup;
        setup.capacities = capacities_for(round, 4, 32, round_seed);
        setup.values_per_sender = scaled(6000);
        CAPTURE(round, describe_capacities(setup.capacities));
        mixed_round<csp_test::counted>(setup, round_seed);
        // The round's channels (and whatever they still held) are gone.
        CHECK(csp_test::counted::live.load() == live_before);
    }
}

TEST_CASE("runtime-sized selects over more channels than fit inline lose and duplicate no value") {
    const std::uint64_t seed = run_seed();
    INFO("replay with CSP_STRESS_SEED=" << seed);
    for (int round = 0; round < 12; ++round) {
        const std::uint64_t round_seed = seed_for(seed, 300, std::uint64_t(round));
        mixed_setup setup;
        setup.capacities = capacities_for(3, 20, 8, round_seed);  // random mixes of 0, 1 and 8
        setup.values_per_sender = scaled(6000);
        setup.receivers = 4;
        CAPTURE(round, describe_capacities(setup.capacities));
        mixed_round<value_t>(setup, round_seed);
    }
}

TEST_CASE("receivers selecting on data and a done channel closed mid-stream leave the books balanced after a drain") {
    const std::uint64_t seed = run_seed();
    INFO("replay with CSP_STRESS_SEED=" << seed);
    const long live_before = csp_test::counted::live.load();
    const std::size_t capacities[] = {0, 1, 64};
    int round = 0;
    for (int repeat = 0; repeat < 6; ++repeat) {
        for (std::size_t capacity : capacities) {
            const std::uint64_t round_seed = seed_for(seed, 400, std::uint64_t(round++));
            CAPTURE(round, capacity);
            if (repeat % 2 == 0) done_round<value_t>(capacity, round_seed);
            else done_round<csp_test::counted>(capacity, round_seed);
            CHECK(csp_test::counted::live.load() == live_before);
        }
    }
}

TEST_CASE("selects that send and receive on one channel pair up with each other and never with themselves") {
    const std::uint64_t seed = run_seed();
    INFO("replay with CSP_STRESS_SEED=" << seed);
    const long live_before = csp_test::counted::live.load();
    int round = 0;
    for (std::size_t capacity : {std::size_t{0}, std::size_t{1}}) {
        for (int repeat = 0; repeat < 6; ++repeat) {
            const std::uint64_t round_seed = seed_for(seed, 500, std::uint64_t(round++));
            CAPTURE(round, capacity);
            if (repeat % 2 == 0) pair_round<value_t>(capacity, round_seed);
            else pair_round<csp_test::counted>(capacity, round_seed);
            CHECK(csp_test::counted::live.load() == live_before);
        }
    }
}
