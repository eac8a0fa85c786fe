// Goroutine dumps: csp::dump_string(), the signal handler, and the deadlock
// error that uses the same format. Every test parks its goroutines on a
// run_loop driven with run_until_idle(), so what they wait on is known when
// the dump is taken; nothing depends on timing.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "catch.hpp"
#include "helpers.hpp"

using namespace std::chrono_literals;

struct dumped_point {
    int x = 0;
};

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string address_of(const void* p) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", p);
    return buf;
}

template <class T>
std::string channel_address(const csp::channel<T>& ch) {
    return address_of(static_cast<const csp::detail::channel_base*>(ch.get()));
}

/// "test_dump.cpp:<line> in <function>", the start location a dump prints
/// for a goroutine started on `line` of this file.
std::string started_at(unsigned line) { return "test_dump.cpp:" + std::to_string(line) + " in "; }

/// The line of `text` that describes goroutine state `state`, plus the
/// "started at" line after it; empty if there is none.
std::string goroutine_entry(const std::string& text, const std::string& state) {
    std::size_t at = text.find(state);
    if (at == std::string::npos) return "";
    std::size_t begin = text.rfind('\n', at) + 1;
    std::size_t first_end = text.find('\n', at);
    std::size_t second_end = text.find('\n', first_end + 1);
    return text.substr(begin, second_end - begin);
}

/// Counts the goroutines of a dump or deadlock report, checking that each
/// is well formed: "  goroutine <id> [<state>]:" followed by
/// "      started at <where>". Returns -1 at the first malformed one.
/// (No Catch assertions: it also runs on a thread of its own.)
long count_goroutines(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    long n = 0;
    while (std::getline(in, line)) {
        if (line.rfind("  goroutine ", 0) != 0) continue;
        std::string next;
        bool ok = line.find(" [") != std::string::npos && line.size() > 2 &&
                  line.compare(line.size() - 2, 2, "]:") == 0 && std::getline(in, next) &&
                  next.rfind("      started at ", 0) == 0 && next.size() > 17;
        if (!ok) return -1;
        ++n;
    }
    return n;
}

}  // namespace

TEST_CASE("a dump shows a goroutine blocked on a receive: the channel, its type, where it was started") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    unsigned line = __LINE__ + 1;
    csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.recv(); });
    loop.run_until_idle();

    std::string dump = csp::dump_string();
    INFO(dump);
    std::string entry = goroutine_entry(dump, "[receive from channel " + channel_address(ch) + " (chan<int>, cap 0)");
    CHECK(contains(entry, started_at(line)));
    CHECK(contains(dump, "run_loop " + address_of(&loop.goroutines()) + ": 1 goroutine\n"));
    CHECK(dump.rfind("csp: goroutine dump: ", 0) == 0);
    CHECK(contains(dump, std::string(csp::dump_end_marker) + "\n"));
    CHECK(count_goroutines(dump) >= 1);
}

TEST_CASE("a dump shows a goroutine blocked on a send, with the element type and capacity") {
    csp::run_loop loop;
    auto ch = csp::make_channel<dumped_point>(1);
    REQUIRE(ch.try_send(dumped_point{}) == csp::chan_status::ok);  // full: the next send blocks
    unsigned line = __LINE__ + 1;
    csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.send(dumped_point{1}); });
    loop.run_until_idle();

    std::string dump = csp::dump_string();
    INFO(dump);
    CHECK(contains(goroutine_entry(dump, "[send on channel " + channel_address(ch) + " (chan<dumped_point>, cap 1)"),
                   started_at(line)));
}

TEST_CASE("a dump shows goroutines in a select, asleep, waiting on a wait_group, or on a nil channel") {
    csp::run_loop loop;
    auto a = csp::make_channel<int>();
    auto b = csp::make_channel<long>(4);
    csp::wait_group wg;
    wg.add(1);
    unsigned select_line = __LINE__ + 1;
    csp::spawn(loop, [a, b]() mutable -> csp::task<> { co_await csp::select(a.recv(), b.recv()); });
    unsigned sleep_line = __LINE__ + 1;
    csp::spawn(loop, []() -> csp::task<> { co_await csp::sleep_for(1h); });
    unsigned wg_line = __LINE__ + 1;
    csp::spawn(loop, [&wg]() -> csp::task<> { co_await wg.wait(); });
    unsigned nil_line = __LINE__ + 1;
    csp::spawn(loop, []() -> csp::task<> { co_await csp::channel<int>().recv(); });
    loop.run_until_idle();

    std::string dump = csp::dump_string();
    INFO(dump);
    CHECK(contains(goroutine_entry(dump, "[select (2 cases)"), started_at(select_line)));
    CHECK(contains(goroutine_entry(dump, "[sleep "), started_at(sleep_line)));
    CHECK(contains(goroutine_entry(dump, "[wait_group wait " + address_of(&wg)), started_at(wg_line)));
    CHECK(contains(goroutine_entry(dump, "[receive from nil channel (chan<int>)"), started_at(nil_line)));
    CHECK(contains(dump, "run_loop " + address_of(&loop.goroutines()) + ": 4 goroutines\n"));
    CHECK(count_goroutines(dump) >= 4);
    wg.done();  // wg must not go out of scope with a waiter; the others are destroyed with the loop
    loop.run_until_idle();
}

TEST_CASE("a dump lists goroutines oldest first with increasing ids, running and runnable ones too") {
    csp::run_loop loop;
    std::string seen_from_inside;
    csp::spawn(loop, [&]() -> csp::task<> {
        seen_from_inside = csp::dump_string();
        co_return;
    });
    csp::spawn(loop, []() -> csp::task<> { co_return; });  // queued behind: runnable
    REQUIRE(loop.run_one());

    INFO(seen_from_inside);
    std::string block = seen_from_inside.substr(seen_from_inside.find("run_loop " + address_of(&loop.goroutines())));
    CHECK(contains(block, ": 2 goroutines\n"));
    std::size_t first = block.find("  goroutine ");
    std::size_t second = block.find("  goroutine ", first + 1);
    REQUIRE(second != std::string::npos);
    unsigned long id1 = std::stoul(block.substr(first + 12));
    unsigned long id2 = std::stoul(block.substr(second + 12));
    CHECK(id1 < id2);
    CHECK(contains(block.substr(first, second - first), "[runnable or running]"));
    CHECK(contains(block.substr(second), "[runnable or running]"));
    loop.run_until_idle();
}

TEST_CASE("a finished goroutine and a destroyed executor leave the dump") {
    auto ch = csp::make_channel<int>(1);
    std::string address;
    {
        csp::run_loop loop;
        address = address_of(&loop.goroutines());
        csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.recv(); });
        loop.run_until_idle();
        CHECK(contains(csp::dump_string(), "run_loop " + address + ": 1 goroutine\n"));
        REQUIRE(ch.try_send(1) == csp::chan_status::ok);
        loop.run_until_idle();
        CHECK_FALSE(contains(csp::dump_string(), "run_loop " + address));  // no goroutines: not shown

        csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.recv(); });
        loop.run_until_idle();
        CHECK(contains(csp::dump_string(), "run_loop " + address));
    }
    CHECK_FALSE(contains(csp::dump_string(), "receive from channel " + channel_address(ch)));
}

TEST_CASE("dump writes to a stream") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.recv(); });
    loop.run_until_idle();
    std::ostringstream out;
    csp::dump(out);
    CHECK(contains(out.str(), "receive from channel " + channel_address(ch)));
    CHECK(contains(out.str(), csp::dump_end_marker));
}

TEST_CASE("the blocked time is printed in ms, s, or m and s") {
    using csp::detail::format_duration;
    CHECK(format_duration(0) == "");
    CHECK(format_duration(999'999) == "");
    CHECK(format_duration(35'000'000) == "35ms");
    CHECK(format_duration(1'250'000'000) == "1.250s");
    CHECK(format_duration(723'000'000'000) == "12m03s");
    std::string vector_of_strings = csp::detail::type_name(typeid(std::vector<std::string>));
    CHECK(vector_of_strings.rfind("std::vector<std::string, std::allocator<std::string", 0) == 0);
    CHECK_FALSE(contains(vector_of_strings, "basic_string"));

    csp::detail::wait_snapshot w;
    w.what = "receive from channel";
    w.detail = {&typeid(int), 8};
    w.since_ns = 1'000'000'000;
    CHECK(csp::detail::format_wait(w, 3'500'000'000) == "receive from channel (chan<int>), 2.500s");
    w.object = &w;
    CHECK(csp::detail::format_wait(w, 1'000'000'000) ==
          "receive from channel " + address_of(&w) + " (chan<int>, cap 8)");
}

TEST_CASE("sync_wait loops appear in the dump with the goroutines started inside them") {
    auto release = csp::make_channel<int>();
    auto inner = csp::make_channel<int>();
    std::thread t([&] {
        csp::sync_wait([&]() -> csp::task<> {
            csp::go([inner]() mutable -> csp::task<> { co_await inner.recv(); });
            co_await release.recv();
        }());
    });
    // Wait until the goroutine has parked: the dump is the only observer.
    std::string dump;
    std::string wanted = "[receive from channel " + channel_address(inner);
    do {
        std::this_thread::yield();
        dump = csp::dump_string();
    } while (!contains(dump, wanted));
    INFO(dump);
    CHECK(contains(dump, "sync_wait "));
    csp::sync_wait(release.send(1));
    t.join();
}

TEST_CASE("dumps taken while goroutines run on other threads are consistent (randomized, for TSan)") {
    const unsigned seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    std::atomic<bool> done{false};
    std::atomic<long> dumps{0};
    std::atomic<long> malformed{0};
    std::thread dumper([&] {
        // At least a few dumps, however fast the goroutines finish.
        while (!done.load(std::memory_order_acquire) || dumps.load() < 5) {
            if (count_goroutines(csp::dump_string()) < 0) ++malformed;
            ++dumps;
        }
    });
    std::thread loop_churn([&] {  // registries come and go while dumps walk the list
        while (!done.load(std::memory_order_acquire)) {
            csp::run_loop loop;
            auto ch = csp::make_channel<int>();
            csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.recv(); });
            loop.run_until_idle();
        }
    });

    csp::work_stealing_pool pool(2);
    const int pairs = 4;
    const int rounds = 300 + int(rng() % 300);
    csp::wait_group wg;
    wg.add(2 * pairs);
    for (int p = 0; p < pairs; ++p) {
        auto ch = csp::make_channel<int>(rng() % 3);
        auto other = csp::make_channel<int>();
        csp::spawn(pool, [ch, rounds, &wg]() mutable -> csp::task<> {
            for (int i = 0; i < rounds; ++i) co_await ch.send(i);
            ch.close();
            wg.done();
        });
        csp::spawn(pool, [ch, other, &wg]() mutable -> csp::task<> {
            for (;;) {
                auto r = co_await csp::select(ch.recv(), other.recv());
                if (r.index() == 0 && !r.get<0>()) break;
                csp::go([]() -> csp::task<> { co_return; });  // goroutines start and finish meanwhile
            }
            wg.done();
        });
    }
    csp::sync_wait(wg.wait());
    done.store(true, std::memory_order_release);
    dumper.join();
    loop_churn.join();
    CHECK(dumps.load() >= 5);
    CHECK(malformed.load() == 0);
}

namespace {
std::atomic<int> previous_handler_calls{0};
extern "C" void count_signal(int) { previous_handler_calls.fetch_add(1, std::memory_order_relaxed); }

/// Reads from `fd` until a whole dump has arrived.
std::string read_dump(int fd) {
    std::string out;
    char buf[4096];
    while (!contains(out, csp::dump_end_marker)) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, std::size_t(n));
    }
    return out;
}
}  // namespace

TEST_CASE("the signal handler writes a dump from its own thread, and uninstall restores the previous handler") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    struct sigaction counting {};
    counting.sa_handler = &count_signal;
    sigemptyset(&counting.sa_mask);
    struct sigaction original {};
    REQUIRE(::sigaction(SIGUSR1, &counting, &original) == 0);

    csp::run_loop loop;
    auto ch = csp::make_channel<int>();
    unsigned line = __LINE__ + 1;
    csp::spawn(loop, [ch]() mutable -> csp::task<> { co_await ch.recv(); });
    loop.run_until_idle();

    csp::install_dump_on_signal(SIGUSR1, fds[1]);
    CHECK_THROWS_AS(csp::install_dump_on_signal(SIGUSR1, fds[1]), std::logic_error);
    for (int i = 0; i < 2; ++i) {  // the handler keeps working
        REQUIRE(std::raise(SIGUSR1) == 0);
        std::string dump = read_dump(fds[0]);
        INFO(dump);
        CHECK(contains(goroutine_entry(dump, "[receive from channel " + channel_address(ch)), started_at(line)));
        CHECK(count_goroutines(dump) >= 1);
    }
    CHECK(previous_handler_calls.load() == 0);

    csp::uninstall_dump_on_signal();
    csp::uninstall_dump_on_signal();  // a second uninstall does nothing
    REQUIRE(std::raise(SIGUSR1) == 0);
    CHECK(previous_handler_calls.load() == 1);

    // Installing again works after an uninstall.
    csp::install_dump_on_signal(SIGUSR1, fds[1]);
    REQUIRE(std::raise(SIGUSR1) == 0);
    CHECK(contains(read_dump(fds[0]), "receive from channel " + channel_address(ch)));
    csp::uninstall_dump_on_signal();

    ::sigaction(SIGUSR1, &original, nullptr);
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("the deadlock error of csp::run lists the goroutines in the dump's format") {
    std::string a_address, b_address;
    unsigned run_line = 0, go_line = 0;
    try {
        run_line = __LINE__ + 1;
        csp::run(csp::run_options{.threads = 2}, [&]() -> csp::task<> {
            auto a = csp::make_channel<int>();
            auto b = csp::make_channel<dumped_point>(2);
            a_address = channel_address(a);
            b_address = channel_address(b);
            go_line = __LINE__ + 1;
            csp::go([b]() mutable -> csp::task<> { co_await b.recv(); });
            co_await csp::select(a.recv(), a.recv(), a.recv());
        });
        FAIL("no deadlock_error");
    } catch (const csp::deadlock_error& e) {
        std::string msg = e.what();
        INFO(msg);
        CHECK(msg.rfind("csp: all goroutines are asleep - deadlock!\n", 0) == 0);
        CHECK(count_goroutines(msg) == 2);
        CHECK(contains(goroutine_entry(msg, "[select (3 cases)"), started_at(run_line)));
        CHECK(contains(goroutine_entry(msg, "[receive from channel " + b_address + " (chan<dumped_point>, cap 2)"),
                       started_at(go_line)));
        // The main goroutine (started first) comes first.
        CHECK(msg.find("[select") < msg.find("[receive from channel"));
    }
}
