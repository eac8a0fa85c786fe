// Randomized stress tests of csp::channel with an exact accounting.
//
// Every scenario puts 8 producers and 8 consumers on one channel. Each of
// them is, at random, a goroutine on one of several run_loops (each driven by
// its own thread) or a plain thread going through csp::sync_wait, and it
// either blocks straight away or first tries the non-blocking form a few
// times. Producer p sends p * stride + 0, 1, 2, ...; consumers write down what
// they receive, in order. At the end the test thread checks that what was
// received is exactly what was sent (nothing lost, nothing duplicated, nothing
// that was never sent) and that each consumer saw each producer's values in
// increasing order (FIFO per sender).
//
// How a scenario ends:
//  - close_when_sent: producers send everything, then the channel is closed
//    (by the test thread, another thread or a goroutine) and consumers drain it.
//  - close_racing: some producers send until the channel closes; a consumer
//    closes it mid-stream. A producer stops at its first failed send, and a
//    value whose send failed must never be received. Optionally the other
//    consumers wait for the close, so the buffer fills up and senders are
//    most likely blocked when it happens.
//  - abandon: as close_racing, but consumers walk away soon after the close
//    and the channel dies with values still buffered.
// Each loop also carries goroutines blocked for good on private channels,
// which the loop's destruction must destroy. With csp_test::counted as the
// message, counted::live then proves every message was destroyed exactly once.
//
// The only synchronisation is channels, wait groups and joins: no sleeps and
// no timeouts, so a lost wake-up shows up as a hang and a lost or duplicated
// value as a failed check.
//
// The seed is printed with every failure; set CSP_STRESS_SEED=<seed> to replay
// the same scenarios (the thread interleavings will differ, of course), and
// CSP_STRESS_ROUNDS=<n> to run more rounds (a soak).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

// ThreadSanitizer slows these tests down about twentyfold, AddressSanitizer
// and unoptimised builds about fivefold: they run fewer and shorter rounds.
#if defined(__SANITIZE_THREAD__)
#define CSP_STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CSP_STRESS_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define CSP_STRESS_ASAN_OR_DEBUG 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CSP_STRESS_ASAN_OR_DEBUG 1
#endif
#endif

using csp::chan_status;

namespace {

// ---- scale -----------------------------------------------------------------

#if defined(CSP_STRESS_TSAN)
constexpr int default_rounds = 8;
constexpr std::int64_t values_per_producer = 3000;
#elif defined(CSP_STRESS_ASAN_OR_DEBUG)
constexpr int default_rounds = 8;
constexpr std::int64_t values_per_producer = 4000;
#else
constexpr int default_rounds = 12;
constexpr std::int64_t values_per_producer = 6000;
#endif

/// Rounds per capacity and ending; CSP_STRESS_ROUNDS=n overrides it for soak runs.
int rounds_per_capacity() {
    static const int rounds = [] {
        if (const char* s = std::getenv("CSP_STRESS_ROUNDS")) return std::max(1, std::atoi(s));
        return default_rounds;
    }();
    return rounds;
}

constexpr std::size_t producer_count = 8;
constexpr std::size_t consumer_count = 8;
constexpr std::size_t loop_count = 3;

// ---- values ----------------------------------------------------------------

using value_t = std::int64_t;

/// Producer p sends p * stride + i for i = 0, 1, ...
constexpr value_t stride = value_t{1} << 32;
/// A producer planned to send this many values only stops when the channel closes.
constexpr value_t until_closed = stride - 1;

constexpr value_t producer_of(value_t v) noexcept { return v / stride; }
constexpr value_t index_of(value_t v) noexcept { return v % stride; }

/// How a test builds, reads and checks its message type.
template <class T>
struct payload;

template <>
struct payload<value_t> {
    static value_t make(value_t v) { return v; }
    static value_t read(const value_t& m) { return m; }
    /// True if a send that did not happen left the message as it was.
    static bool intact(const value_t& m, value_t v) { return m == v; }
};

template <>
struct payload<csp_test::counted> {
    static csp_test::counted make(value_t v) { return csp_test::counted(static_cast<long>(v)); }
    static value_t read(const csp_test::counted& m) { return static_cast<value_t>(m.value); }
    static bool intact(const csp_test::counted& m, value_t v) { return !m.moved_from && m.value == v; }
};

// ---- seeds -----------------------------------------------------------------

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// One seed per process: CSP_STRESS_SEED if set, else a random one.
std::uint64_t base_seed() {
    static const std::uint64_t seed = [] {
        if (const char* s = std::getenv("CSP_STRESS_SEED")) return std::uint64_t{std::strtoull(s, nullptr, 0)};
        std::random_device rd;
        return (std::uint64_t{rd()} << 32) ^ std::uint64_t{rd()};
    }();
    return seed;
}

std::uint64_t derive_seed(std::uint64_t base, std::uint64_t a, std::uint64_t b) noexcept {
    return splitmix64(splitmix64(base ^ splitmix64(a)) ^ b);
}

// ---- what the participants report --------------------------------------------

/// Unexpected events seen off the test thread (Catch2 assertions are only
/// made on the test thread).
class failure_log {
public:
    void add(std::string what) {
        std::lock_guard lock(mu_);
        ++count_;
        if (messages_.size() < 10) messages_.push_back(std::move(what));
    }
    std::size_t count() const {
        std::lock_guard lock(mu_);
        return count_;
    }
    std::string summary() const {
        std::lock_guard lock(mu_);
        std::string s;
        for (const auto& m : messages_) s += m + "\n";
        return s;
    }

private:
    mutable std::mutex mu_;
    std::size_t count_ = 0;
    std::vector<std::string> messages_;
};

enum class where { goroutine, thread };
enum class how { blocking, try_first };

struct role {
    where runs_on;
    how style;
    std::size_t loop;  // for goroutines: which loop_thread
};

/// n roles, with every combination of where and how present at least once.
std::vector<role> make_roles(std::size_t n, std::mt19937_64& rng) {
    std::vector<role> roles;
    std::uniform_int_distribution<std::size_t> pick_loop(0, loop_count - 1);
    std::bernoulli_distribution coin(0.5);
    for (std::size_t i = 0; i < n; ++i) {
        where w = i < 4 ? (i % 2 ? where::thread : where::goroutine) : (coin(rng) ? where::thread : where::goroutine);
        how h = i < 4 ? (i / 2 ? how::try_first : how::blocking) : (coin(rng) ? how::try_first : how::blocking);
        roles.push_back({w, h, pick_loop(rng)});
    }
    std::shuffle(roles.begin(), roles.end(), rng);
    return roles;
}

struct producer_job {
    value_t id;
    value_t count;  // how many values to send (until_closed: send until the channel closes)
    how style;
    std::uint64_t seed;
};

struct producer_result {
    value_t sent = 0;         // values id * stride + [0, sent) were sent
    bool saw_closed = false;  // stopped because the channel was closed
    bool send_threw = false;  // ... learnt from a blocking send throwing channel_closed
};

struct consumer_job {
    how style;
    std::uint64_t seed;
    bool gated;                     // wait for the gate channel to close before receiving
    std::size_t limit_after_close;  // walk away after this many values once closed (max: drain)
};

struct consumer_result {
    std::vector<value_t> got;
    bool saw_end = false;  // received nullopt
};

/// In the racing scenarios, the consumer that finds that `after` values have
/// been received in all closes the channel (and the gate), between two of its
/// receives. Supply is unbounded until then, so that always happens.
struct close_trigger {
    std::size_t after = 0;
    std::atomic<std::size_t> received{0};
    std::atomic<bool> claimed{false};
    std::atomic<bool> closed{false};
};

/// What a consumer does between receives, whether it runs as a goroutine or
/// as a thread.
template <class T>
class consumer_state {
public:
    consumer_state(csp::channel<T> ch, csp::channel<int> gate, const consumer_job& job, close_trigger* trigger,
                   consumer_result* out)
        : ch_(std::move(ch)), gate_(std::move(gate)), limit_(job.limit_after_close), trigger_(trigger), out_(out) {}

    /// Called before each receive: closes the channel if it is time and
    /// nobody has; false once this consumer should walk away.
    bool want_more() {
        if (!trigger_) return true;
        if (trigger_->received.load() >= trigger_->after && !trigger_->claimed.exchange(true)) {
            ch_.close();
            gate_.close();
            trigger_->closed.store(true);
        }
        return !trigger_->closed.load() || taken_after_close_ < limit_;
    }

    /// Records what a receive produced; false once the channel is drained.
    bool record(std::optional<value_t> v) {
        if (!v) {
            out_->saw_end = true;
            return false;
        }
        out_->got.push_back(*v);
        if (trigger_) {
            if (trigger_->closed.load()) ++taken_after_close_;
            trigger_->received.fetch_add(1);
        }
        return true;
    }

private:
    csp::channel<T> ch_;
    csp::channel<int> gate_;
    std::size_t limit_;
    close_trigger* trigger_;
    consumer_result* out_;
    std::size_t taken_after_close_ = 0;
};

/// Tries the non-blocking form 1 to 3 times before blocking.
int try_attempts(std::mt19937_64& rng) { return std::uniform_int_distribution<int>(1, 3)(rng); }

std::string describe(value_t v) {
    return std::to_string(producer_of(v)) + "*stride+" + std::to_string(index_of(v));
}

// ---- producers ---------------------------------------------------------------

template <class T>
csp::task<> produce_in_goroutine(csp::channel<T> ch, producer_job job, producer_result* out, failure_log* log,
                                 csp::wait_group* wg) {
    std::mt19937_64 rng(job.seed);
    try {
        for (value_t i = 0; i < job.count && !out->saw_closed; ++i) {
            const value_t v = job.id * stride + i;
            T msg = payload<T>::make(v);
            bool sent = false;
            if (job.style == how::try_first) {
                for (int a = try_attempts(rng); a > 0 && !sent && !out->saw_closed; --a) {
                    chan_status s = ch.try_send(std::move(msg));
                    if (s == chan_status::ok) {
                        sent = true;
                        break;
                    }
                    if (!payload<T>::intact(msg, v)) log->add("a try_send that did not happen changed " + describe(v));
                    if (s == chan_status::closed) out->saw_closed = true;
                    else co_await csp::yield();
                }
            }
            if (!sent && !out->saw_closed) {
                try {
                    co_await ch.send(std::move(msg));
                    sent = true;
                } catch (const csp::channel_closed&) {
                    out->saw_closed = out->send_threw = true;
                }
                if (!sent && !payload<T>::intact(msg, v)) log->add("a send that threw changed " + describe(v));
            }
            if (sent) out->sent = i + 1;
        }
    } catch (const std::exception& e) {
        log->add(std::string("producer goroutine: unexpected exception: ") + e.what());
    }
    wg->done();
}

template <class T>
void produce_in_thread(csp::channel<T> ch, producer_job job, producer_result* out, failure_log* log,
                       csp::wait_group* wg) {
    std::mt19937_64 rng(job.seed);
    try {
        for (value_t i = 0; i < job.count && !out->saw_closed; ++i) {
            const value_t v = job.id * stride + i;
            T msg = payload<T>::make(v);
            bool sent = false;
            if (job.style == how::try_first) {
                for (int a = try_attempts(rng); a > 0 && !sent && !out->saw_closed; --a) {
                    chan_status s = ch.try_send(std::move(msg));
                    if (s == chan_status::ok) {
                        sent = true;
                        break;
                    }
                    if (!payload<T>::intact(msg, v)) log->add("a try_send that did not happen changed " + describe(v));
                    if (s == chan_status::closed) out->saw_closed = true;
                    else std::this_thread::yield();
                }
            }
            if (!sent && !out->saw_closed) {
                try {
                    csp::sync_wait(ch.send(std::move(msg)));
                    sent = true;
                } catch (const csp::channel_closed&) {
                    out->saw_closed = out->send_threw = true;
                }
                if (!sent && !payload<T>::intact(msg, v)) log->add("a send that threw changed " + describe(v));
            }
            if (sent) out->sent = i + 1;
        }
    } catch (const std::exception& e) {
        log->add(std::string("producer thread: unexpected exception: ") + e.what());
    }
    wg->done();
}

// ---- consumers ---------------------------------------------------------------

template <class T>
csp::task<> consume_in_goroutine(csp::channel<T> ch, csp::channel<int> gate, consumer_job job,
                                 close_trigger* trigger, consumer_result* out, failure_log* log, csp::wait_group* wg) {
    std::mt19937_64 rng(job.seed);
    try {
        consumer_state<T> state(ch, gate, job, trigger, out);
        if (job.gated) {
            if (co_await gate.recv()) log->add("the gate channel delivered a value");
        }
        while (state.want_more()) {
            std::optional<value_t> v;  // stays empty on nullopt
            bool done = false;
            if (job.style == how::try_first) {
                for (int a = try_attempts(rng); a > 0; --a) {
                    auto t = ch.try_recv();
                    if (t.status == chan_status::would_block) {
                        co_await csp::yield();
                        continue;
                    }
                    if (t.status == chan_status::ok) v = payload<T>::read(*t.value);
                    done = true;
                    break;
                }
            }
            if (!done) {
                std::optional<T> r = co_await ch.recv();
                if (r) v = payload<T>::read(*r);
            }
            if (!state.record(v)) break;
        }
    } catch (const std::exception& e) {
        log->add(std::string("consumer goroutine: unexpected exception: ") + e.what());
    }
    wg->done();
}

template <class T>
void consume_in_thread(csp::channel<T> ch, csp::channel<int> gate, consumer_job job, close_trigger* trigger,
                       consumer_result* out, failure_log* log, csp::wait_group* wg) {
    std::mt19937_64 rng(job.seed);
    try {
        consumer_state<T> state(ch, gate, job, trigger, out);
        if (job.gated) {
            if (csp::sync_wait(gate.recv())) log->add("the gate channel delivered a value");
        }
        while (state.want_more()) {
            std::optional<value_t> v;  // stays empty on nullopt
            bool done = false;
            if (job.style == how::try_first) {
                for (int a = try_attempts(rng); a > 0; --a) {
                    auto t = ch.try_recv();
                    if (t.status == chan_status::would_block) {
                        std::this_thread::yield();
                        continue;
                    }
                    if (t.status == chan_status::ok) v = payload<T>::read(*t.value);
                    done = true;
                    break;
                }
            }
            if (!done) {
                std::optional<T> r = csp::sync_wait(ch.recv());
                if (r) v = payload<T>::read(*r);
            }
            if (!state.record(v)) break;
        }
    } catch (const std::exception& e) {
        log->add(std::string("consumer thread: unexpected exception: ") + e.what());
    }
    wg->done();
}

// ---- goroutines that are never meant to finish ----------------------------------

/// Sends more values than `ch` can hold to a channel nobody receives from:
/// it ends up blocked, and the loop's destruction has to destroy it.
template <class T>
csp::task<> send_to_nobody(csp::channel<T> ch, value_t first, value_t n) {
    for (value_t i = 0; i < n; ++i) co_await ch.send(payload<T>::make(first + i));
}

template <class T>
csp::task<> receive_from_nobody(csp::channel<T> ch) {
    (void)co_await ch.recv();
}

// ---- scenarios -------------------------------------------------------------------

enum class ending {
    close_when_sent,  // producers send everything, then someone closes; consumers drain
    close_racing,     // a consumer closes mid-stream; producers stop at the first failed send; all drain
    abandon,          // as close_racing, but consumers stop early and values stay buffered
};

struct scenario {
    std::size_t capacity;
    std::uint64_t seed;
    ending end;
    value_t per_producer = values_per_producer;
};

/// Sorted-vector differences, for a readable failure.
struct accounting {
    std::vector<value_t> missing;     // sent, never received
    std::vector<value_t> duplicated;  // received more than once
    std::vector<value_t> unexpected;  // received, never sent
};

accounting compare(std::vector<value_t> sent, std::vector<value_t> received) {
    std::sort(sent.begin(), sent.end());
    std::sort(received.begin(), received.end());
    accounting a;
    for (std::size_t i = 1; i < received.size(); ++i)
        if (received[i] == received[i - 1]) a.duplicated.push_back(received[i]);
    received.erase(std::unique(received.begin(), received.end()), received.end());
    std::set_difference(sent.begin(), sent.end(), received.begin(), received.end(), std::back_inserter(a.missing));
    std::set_difference(received.begin(), received.end(), sent.begin(), sent.end(), std::back_inserter(a.unexpected));
    return a;
}

std::string first_few(const std::vector<value_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 8; ++i) s += describe(v[i]) + " ";
    if (v.size() > 8) s += "... (" + std::to_string(v.size()) + " in all)";
    return s;
}

/// Counts the places where a consumer received a producer's value after a
/// later value of the same producer.
std::size_t fifo_violations(const std::vector<consumer_result>& consumers, std::string& example) {
    std::size_t n = 0;
    for (std::size_t c = 0; c < consumers.size(); ++c) {
        std::vector<value_t> last(producer_count, -1);
        for (value_t v : consumers[c].got) {
            auto p = static_cast<std::size_t>(producer_of(v));
            if (p >= producer_count) continue;  // reported as unexpected
            if (index_of(v) <= last[p]) {
                if (n++ == 0)
                    example = "consumer " + std::to_string(c) + " got " + describe(v) + " after index " +
                              std::to_string(last[p]);
            }
            last[p] = std::max(last[p], index_of(v));
        }
    }
    return n;
}

const char* name(ending e) {
    switch (e) {
    case ending::close_when_sent: return "close when everything is sent";
    case ending::close_racing: return "close racing the producers";
    case ending::abandon: return "close racing, then abandon the channel";
    }
    return "?";
}

/// CHECK, and remember a failure in `ok` (the rounds stop at the first
/// failing scenario rather than repeat its report). The condition must have
/// no side effects: it is evaluated twice.
#define STRESS_CHECK(...)                                  \
    do {                                                   \
        ok = static_cast<bool>(__VA_ARGS__) && ok;         \
        CHECK(__VA_ARGS__);                                \
    } while (false)

/// Runs one scenario and checks its accounting on the test thread. Returns
/// false if the accounting is wrong.
template <class T>
bool run_scenario(const scenario& sc) {
    const std::string kind = name(sc.end);
    const std::size_t capacity = sc.capacity;
    const std::uint64_t scenario_seed = sc.seed;
    CAPTURE(kind, capacity, scenario_seed);

    std::mt19937_64 rng(sc.seed);
    const bool racing = sc.end != ending::close_when_sent;
    const std::vector<role> producer_roles = make_roles(producer_count, rng);
    const std::vector<role> consumer_roles = make_roles(consumer_count, rng);

    // Plans. While racing, some producers (at least two) send until the
    // channel is closed, so the close trigger is always reached; the others
    // stop after a random number of values, maybe before the close.
    std::vector<bool> unbounded(producer_count, false);
    if (racing) {
        for (std::size_t p = 0; p < producer_count; ++p) unbounded[p] = p < 2 || rng() % 2 == 0;
        std::shuffle(unbounded.begin(), unbounded.end(), rng);
    }
    std::vector<producer_job> pjobs;
    for (std::size_t p = 0; p < producer_count; ++p) {
        value_t count = sc.per_producer;
        if (racing) count = unbounded[p] ? until_closed : static_cast<value_t>(rng() % (2 * sc.per_producer + 1));
        pjobs.push_back({static_cast<value_t>(p), count, producer_roles[p].style, rng()});
    }

    // While racing, the channel is closed once a random number of values
    // have been received. If gated, only consumer 0 receives until then, so
    // the buffer fills up and senders are blocked when it happens.
    const bool gated = racing && rng() % 2 == 0;
    close_trigger trigger;
    trigger.after = static_cast<std::size_t>(rng() % (2 * sc.per_producer + 1));
    const std::size_t close_after = trigger.after;
    std::vector<consumer_job> cjobs;
    for (std::size_t c = 0; c < consumer_count; ++c) {
        // When abandoning, consumers take at most a few more values once
        // the channel is closed and walk away.
        std::size_t limit = std::numeric_limits<std::size_t>::max();
        if (sc.end == ending::abandon) limit = rng() % 2 ? 0 : static_cast<std::size_t>(rng() % 3);
        cjobs.push_back({consumer_roles[c].style, rng(), gated && c != 0, limit});
    }
    CAPTURE(gated, close_after);
    close_trigger* const closing = racing ? &trigger : nullptr;

    failure_log log;
    std::vector<producer_result> produced(producer_count);
    std::vector<consumer_result> consumed(consumer_count);
    csp::wait_group producers;  // producers only
    csp::wait_group everyone;   // consumers, and whoever waits for the producers
    auto ch = csp::make_channel<T>(sc.capacity);
    auto gate = csp::make_channel<int>();

    {
        // Loops are destroyed after the threads are joined: by then every
        // goroutine on them has finished, except the ones left blocked on
        // private channels on purpose.
        std::vector<std::unique_ptr<csp_test::loop_thread>> loops;
        for (std::size_t i = 0; i < loop_count; ++i) loops.push_back(std::make_unique<csp_test::loop_thread>());
        std::vector<std::jthread> threads;

        producers.add(static_cast<long>(producer_count));
        everyone.add(static_cast<long>(consumer_count) + 1);  // + whoever waits for the producers

        for (std::size_t c = 0; c < consumer_count; ++c) {
            if (consumer_roles[c].runs_on == where::goroutine)
                csp::spawn(loops[consumer_roles[c].loop]->loop(),
                           consume_in_goroutine<T>(ch, gate, cjobs[c], closing, &consumed[c], &log, &everyone));
            else
                threads.emplace_back(consume_in_thread<T>, ch, gate, cjobs[c], closing, &consumed[c], &log, &everyone);
        }
        for (std::size_t p = 0; p < producer_count; ++p) {
            if (producer_roles[p].runs_on == where::goroutine)
                csp::spawn(loops[producer_roles[p].loop]->loop(),
                           produce_in_goroutine<T>(ch, pjobs[p], &produced[p], &log, &producers));
            else
                threads.emplace_back(produce_in_thread<T>, ch, pjobs[p], &produced[p], &log, &producers);
        }

        // Goroutines that stay blocked on channels nobody else uses, for the
        // loops' destruction to clean up.
        for (std::size_t i = 0; i < loop_count; ++i) {
            auto lonely = csp::make_channel<T>(i);
            csp::spawn(loops[i]->loop(),
                       send_to_nobody<T>(lonely, static_cast<value_t>(producer_count + i) * stride,
                                         static_cast<value_t>(i + 2)));
            csp::spawn(loops[i]->loop(), receive_from_nobody<T>(csp::make_channel<T>(i)));
        }

        // Someone waits for the producers and, unless a consumer closes the
        // channel itself, closes it: this thread, another thread or a goroutine.
        const bool close_here = !racing;
        switch (rng() % 3) {
        case 0:
            csp::sync_wait(producers.wait());
            if (close_here) ch.close();
            everyone.done();
            break;
        case 1:
            threads.emplace_back([&] {
                csp::sync_wait(producers.wait());
                if (close_here) ch.close();
                everyone.done();
            });
            break;
        default:
            csp::spawn(loops[rng() % loop_count]->loop(),
                       [](csp::channel<T> c, csp::wait_group* ps, csp::wait_group* all, bool close_it) -> csp::task<> {
                           co_await ps->wait();
                           if (close_it) c.close();
                           all->done();
                       },
                       ch, &producers, &everyone, close_here);
            break;
        }

        csp::sync_wait(everyone.wait());
        for (auto& t : threads) t.join();
    }

    // ---- the accounting ----
    bool ok = true;
    INFO("failures seen off the test thread:\n" << log.summary());
    STRESS_CHECK(log.count() == 0);

    std::vector<value_t> sent;
    std::size_t threw = 0, closed_seen = 0;
    for (std::size_t p = 0; p < producer_count; ++p) {
        const producer_result& r = produced[p];
        for (value_t i = 0; i < r.sent; ++i) sent.push_back(pjobs[p].id * stride + i);
        threw += r.send_threw;
        closed_seen += r.saw_closed;
        const auto producer = p;
        const auto planned = pjobs[p].count;
        const auto sent_count = r.sent;
        const bool saw_closed = r.saw_closed;
        CAPTURE(producer, planned, sent_count, saw_closed);
        if (!racing) {
            STRESS_CHECK(r.sent == pjobs[p].count);
            STRESS_CHECK(!r.saw_closed);
        } else if (pjobs[p].count == until_closed) {
            STRESS_CHECK(r.saw_closed);  // it can only stop by finding the channel closed
            if (pjobs[p].style == how::blocking) STRESS_CHECK(r.send_threw);
        } else {
            STRESS_CHECK((r.sent == pjobs[p].count || r.saw_closed));
        }
    }
    INFO("producers stopped by the close: " << closed_seen << " (" << threw << " by a blocking send throwing)");

    std::vector<value_t> received;
    for (std::size_t c = 0; c < consumer_count; ++c) {
        received.insert(received.end(), consumed[c].got.begin(), consumed[c].got.end());
        if (sc.end != ending::abandon) {
            const auto consumer = c;
            CAPTURE(consumer);
            STRESS_CHECK(consumed[c].saw_end);  // every receiver ends with nullopt once drained
        }
    }

    STRESS_CHECK(ch.closed());
    const std::size_t left_buffered = ch.size();
    accounting a = compare(sent, received);
    INFO("missing: " << first_few(a.missing));
    INFO("duplicated: " << first_few(a.duplicated));
    INFO("never sent: " << first_few(a.unexpected));
    STRESS_CHECK(a.duplicated.empty());
    STRESS_CHECK(a.unexpected.empty());  // includes values whose send threw
    if (sc.end == ending::abandon) {
        // What nobody received is still in the buffer, to be destroyed with the channel.
        STRESS_CHECK(a.missing.size() == left_buffered);
    } else {
        STRESS_CHECK(a.missing.empty());
        STRESS_CHECK(left_buffered == 0);
    }
    STRESS_CHECK(received.size() + left_buffered == sent.size());

    std::string fifo_example;
    const std::size_t out_of_order = fifo_violations(consumed, fifo_example);
    INFO("first FIFO violation: " << fifo_example);
    STRESS_CHECK(out_of_order == 0);

    // A closed channel keeps refusing sends without touching the message.
    {
        T msg = payload<T>::make(-1);
        CHECK(ch.try_send(std::move(msg)) == chan_status::closed);
        CHECK_THROWS_AS(csp::sync_wait(ch.send(std::move(msg))), csp::channel_closed);
        CHECK(payload<T>::intact(msg, -1));
        CHECK_THROWS_AS(ch.close(), csp::channel_closed);
    }
    if (sc.end != ending::abandon) {
        CHECK(ch.try_recv().status == chan_status::closed);
        CHECK_FALSE(csp::sync_wait(ch.recv()).has_value());
    }
    return ok;
}

template <class T>
void run_rounds(std::initializer_list<std::size_t> capacities, std::initializer_list<ending> endings,
                std::uint64_t test_id) {
    const std::uint64_t seed = base_seed();
    INFO("replay with CSP_STRESS_SEED=" << seed);
    for (std::size_t capacity : capacities)
        for (ending e : endings)
            for (int round = 0; round < rounds_per_capacity(); ++round) {
                const std::uint64_t scenario_seed =
                    derive_seed(seed, test_id * 1000 + capacity, static_cast<std::uint64_t>(e) * 100 + round);
                if (!run_scenario<T>({capacity, scenario_seed, e})) return;  // one failing scenario is enough
            }
}

}  // namespace

TEST_CASE("8 producers and 8 consumers on an unbuffered channel lose and duplicate nothing and keep each "
          "producer's order") {
    run_rounds<value_t>({0}, {ending::close_when_sent}, 1);
}

TEST_CASE("8 producers and 8 consumers on buffered channels (capacity 1 or 7 or 1024) lose and duplicate nothing "
          "and keep each producer's order") {
    run_rounds<value_t>({1, 7, 1024}, {ending::close_when_sent}, 2);
}

TEST_CASE("closing a channel while producers race fails exactly the sends that did not happen and receivers "
          "drain the buffer before nullopt") {
    run_rounds<value_t>({0, 1, 7, 1024}, {ending::close_racing}, 3);
}

TEST_CASE("a channel closed and abandoned with values still buffered accounts for every value") {
    run_rounds<value_t>({1, 7, 1024}, {ending::abandon}, 4);
}

TEST_CASE("every counted message is destroyed exactly once when sends fail and when channels with buffered "
          "values or blocked goroutines are destroyed") {
    const long live_before = csp_test::counted::live.load();
    run_rounds<csp_test::counted>({0, 1, 7, 1024}, {ending::close_when_sent, ending::close_racing, ending::abandon},
                                  5);
    CHECK(csp_test::counted::live.load() == live_before);
}

TEST_CASE("a channel whose handles are dropped on several workers at once is destroyed exactly once (randomized)") {
    // The last handle frees the channel; one that finds the count at 1 does
    // so without decrementing it. Buffered counted values tell a channel
    // destroyed twice (live goes below its start, or ASan reports a double
    // free) from one never destroyed (live stays above it; LeakSanitizer).
    const unsigned seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const long live_before = csp_test::counted::live.load();
    csp::work_stealing_pool pool(2);
    for (int round = 0; round < 200; ++round) {
        const int holders = 1 + int(rng() % 6);
        csp::wait_group dropped;
        dropped.add(holders);
        {
            auto ch = csp::make_channel<csp_test::counted>(4);
            REQUIRE(ch.try_send(csp_test::counted(round)) == csp::chan_status::ok);
            REQUIRE(ch.try_send(csp_test::counted(-round)) == csp::chan_status::ok);
            for (int h = 0; h < holders; ++h) {
                const int yields = int(rng() % 4);
                csp::spawn(pool, [ch, yields, &dropped]() mutable -> csp::task<> {
                    for (int y = 0; y < yields; ++y) co_await csp::yield();
                    { auto mine = std::move(ch); }  // drop this goroutine's handle now
                    dropped.done();
                });
            }
        }  // the main thread's handle goes while the goroutines may be dropping theirs
        csp::sync_wait(dropped.wait());
    }
    pool.stop();
    pool.join();
    CHECK(csp_test::counted::live.load() == live_before);
}
