// The lock-free buffer of buffered channels (detail/channel_ring.hpp), and
// the channel paths around it: lock-free sends and receives racing the
// locked path, its gates, selects and closes.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <csp/csp.hpp>

#include "catch.hpp"
#include "helpers.hpp"

using csp::detail::channel_ring;
using csp::detail::ring_result;
using csp_test::counted;

namespace {

/// A ring of `capacity` longs that frees itself.
struct long_ring {
    explicit long_ring(std::size_t capacity) { ring.allocate<long>(capacity); }
    ~long_ring() { ring.release<long>(); }
    bool push(long v, bool privileged = false) { return ring.push<long>(v, privileged) == ring_result::done; }
    std::optional<long> pop(bool privileged = false) {
        std::optional<long> out;
        ring.pop<long>(out, privileged);
        return out;
    }
    channel_ring ring;
};

}  // namespace

TEST_CASE("a channel ring is FIFO across many laps, and reports full and empty") {
    for (std::size_t capacity : {1u, 2u, 3u, 7u, 8u, 64u}) {
        long_ring r(capacity);
        long next_in = 0, next_out = 0;
        for (int lap = 0; lap < 50; ++lap) {
            while (r.push(next_in)) ++next_in;  // fill up
            REQUIRE(r.ring.size() == capacity);
            REQUIRE(std::size_t(next_in - next_out) == capacity);
            std::size_t take = 1 + std::size_t(lap) % capacity;  // drain part of it, so positions wrap unevenly
            for (std::size_t i = 0; i < take; ++i) REQUIRE(r.pop() == next_out++);
            REQUIRE(r.ring.size() == capacity - take);
        }
        while (auto v = r.pop()) REQUIRE(*v == next_out++);
        REQUIRE(next_out == next_in);
        REQUIRE(r.ring.size() == 0);
        REQUIRE_FALSE(r.pop(true));  // a privileged pop agrees: empty
    }
}

TEST_CASE("a raised gate stops lock-free operations on its end but not privileged ones") {
    long_ring r(4);
    REQUIRE(r.push(1));
    r.ring.set_tail_gate(true);
    REQUIRE_FALSE(r.push(2));       // sends go to the locked path
    REQUIRE(r.push(2, true));       // the lock holder still may
    REQUIRE(r.pop() == 1);          // receives are not gated by the tail gate
    r.ring.set_head_gate(true);
    REQUIRE_FALSE(r.pop());
    REQUIRE(r.pop(true) == 2);
    REQUIRE_FALSE(r.pop(true));     // empty, gate or not
    r.ring.set_tail_gate(false);
    r.ring.set_head_gate(false);
    REQUIRE(r.push(3));
    REQUIRE(r.pop() == 3);
}

TEST_CASE("one lock-free try (push_once, pop_once) gives the verdicts of a whole lock-free operation") {
    // await_ready makes this one try itself; only lost and busy, which need
    // another thread, send it on to push_again / pop_again.
    for (std::size_t capacity : {1u, 3u, 16u}) {
        long_ring r(capacity);
        std::optional<long> out;
        REQUIRE(r.ring.pop_once<long>(out) == ring_result::not_ready);  // empty, gate down
        for (long v = 0; v < long(capacity); ++v) REQUIRE(r.ring.push_once(v) == ring_result::done);
        long extra = 99;
        REQUIRE(r.ring.push_once(extra) == ring_result::not_ready);  // full
        for (long v = 0; v < long(capacity); ++v) {
            REQUIRE(r.ring.pop_once<long>(out) == ring_result::done);
            REQUIRE(out == v);
            out.reset();
        }
        r.ring.set_tail_gate(true);  // closed, or someone parked: the locked path must decide
        REQUIRE(r.ring.push_once(extra) == ring_result::refused);
        REQUIRE(r.ring.pop_once<long>(out) == ring_result::refused);  // empty with the tail gate up
        r.ring.set_tail_gate(false);
        REQUIRE(r.ring.push_once(extra) == ring_result::done);
        r.ring.set_head_gate(true);
        REQUIRE(r.ring.pop_once<long>(out) == ring_result::refused);
        r.ring.set_head_gate(false);
        REQUIRE(r.ring.pop_once<long>(out) == ring_result::done);
        REQUIRE(out == 99);
        REQUIRE_FALSE(channel_ring::needs_again(ring_result::done));
        REQUIRE_FALSE(channel_ring::needs_again(ring_result::not_ready));
        REQUIRE_FALSE(channel_ring::needs_again(ring_result::refused));
        REQUIRE(channel_ring::needs_again(ring_result::lost));
        REQUIRE(channel_ring::needs_again(ring_result::busy));
    }
}

TEST_CASE("a channel ring destroys the values it still holds exactly once") {
    long before = counted::live.load();
    {
        channel_ring r;
        r.allocate<counted>(5);
        for (long i = 0; i < 8; ++i) {  // wrap around once
            counted c(i);
            if (r.push<counted>(c, false) != ring_result::done) {
                std::optional<counted> out;
                REQUIRE(r.pop<counted>(out, false) == ring_result::done);
                REQUIRE(r.push<counted>(c, false) == ring_result::done);
                REQUIRE(c.moved_from);
            }
        }
        REQUIRE(counted::live.load() == before + 5);
        r.release<counted>();
    }
    REQUIRE(counted::live.load() == before);
}

TEST_CASE("a channel ring holds over-aligned values at their alignment") {
    struct alignas(64) wide {
        long v;
    };
    channel_ring r;
    r.allocate<wide>(3);
    for (long i = 0; i < 10; ++i) {
        wide w{i};
        REQUIRE(r.push<wide>(w, false) == ring_result::done);
        std::optional<wide> out;
        REQUIRE(r.pop<wide>(out, false) == ring_result::done);
        REQUIRE(out->v == i);
    }
    r.release<wide>();
}

TEST_CASE("threads racing on a channel ring lose, duplicate and reorder nothing (randomized)") {
    // 3 producers and 3 consumers on a small ring, through lock-free and
    // privileged operations (the privileged ones under a mutex, as the
    // channel's lock would hold them), while a gate keeper raises and lowers
    // the gates under the same mutex. Each producer's values must come out in
    // order, and every value exactly once.
    constexpr int producers = 3, consumers = 3;
    constexpr long per_producer = 20000;
    long_ring r(3);
    std::mutex lock;
    std::atomic<bool> done_producing{false};
    std::vector<std::vector<long>> got(consumers);
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            std::minstd_rand rng(unsigned(p) + 1);
            for (long i = 0; i < per_producer;) {
                long v = p * per_producer + i;
                bool ok;
                if (rng() % 4 == 0) {
                    std::lock_guard g(lock);
                    ok = r.push(v, true);
                } else {
                    ok = r.push(v);
                }
                if (ok) ++i;
                else std::this_thread::yield();
            }
        });
    for (int c = 0; c < consumers; ++c)
        threads.emplace_back([&, c] {
            std::minstd_rand rng(unsigned(c) + 100);
            for (;;) {
                std::optional<long> v;
                if (rng() % 4 == 0) {
                    std::lock_guard g(lock);
                    v = r.pop(true);
                } else {
                    v = r.pop();
                }
                if (v) got[std::size_t(c)].push_back(*v);
                else if (done_producing.load() && r.ring.size() == 0) return;
                else std::this_thread::yield();
            }
        });
    std::thread keeper([&] {
        std::minstd_rand rng(7);
        while (!done_producing.load()) {
            std::lock_guard g(lock);
            r.ring.set_tail_gate(rng() % 2);
            r.ring.set_head_gate(rng() % 2);
        }
        std::lock_guard g(lock);
        r.ring.set_tail_gate(false);
        r.ring.set_head_gate(false);
    });
    for (int p = 0; p < producers; ++p) threads[std::size_t(p)].join();
    done_producing = true;
    keeper.join();
    for (std::size_t t = producers; t < threads.size(); ++t) threads[t].join();

    std::vector<int> seen(std::size_t(producers * per_producer), 0);
    for (auto& list : got) {
        std::array<long, producers> last;
        last.fill(-1);
        for (long v : list) {
            ++seen[std::size_t(v)];
            long p = v / per_producer, i = v % per_producer;
            REQUIRE(i > last[std::size_t(p)]);  // one producer's values in order
            last[std::size_t(p)] = i;
        }
    }
    for (int n : seen) REQUIRE(n == 1);
}

namespace {

// One message: who sent it and its sequence number for that sender.
struct tagged {
    int sender;
    long seq;
};

csp::task<> blocking_sender(csp::channel<tagged> ch, int id, long count, csp::wait_group* wg) {
    for (long i = 0; i < count; ++i) co_await ch.send(tagged{id, i});
    wg->done();
}

// Sends with selects that also offer a second channel that nobody reads.
csp::task<> select_sender(csp::channel<tagged> ch, csp::channel<tagged> idle, int id, long count,
                          csp::wait_group* wg) {
    for (long i = 0; i < count;) {
        auto r = co_await csp::select(ch.send(tagged{id, i}), idle.send(tagged{-1, -1}));
        if (r.index() == 0) ++i;
    }
    wg->done();
}

// Receives until the channel is closed: blocking receives and selects with
// and without a default case, in turn.
csp::task<> mixed_receiver(csp::channel<tagged> ch, csp::channel<tagged> idle, std::vector<tagged>* out,
                           csp::wait_group* wg) {
    for (unsigned turn = 0;; ++turn) {
        std::optional<tagged> v;
        if (turn % 3 == 0) {
            v = co_await ch.recv();
            if (!v) break;
        } else if (turn % 3 == 1) {
            auto r = co_await csp::select(ch.recv(), idle.recv());
            if (r.index() != 0) continue;
            v = std::move(r.get<0>());
            if (!v) break;
        } else {
            auto r = co_await csp::select(ch.recv(), csp::default_case);
            if (r.index() != 0) continue;
            v = std::move(r.get<0>());
            if (!v) break;
        }
        out->push_back(*v);
    }
    wg->done();
}

}  // namespace

TEST_CASE("buffered channels mixing lock-free and parked operations, selects and plain threads lose, duplicate and "
          "reorder nothing (randomized)") {
    // Small capacities make the channel flip between the lock-free path and
    // parked senders or receivers all the time.
    for (std::size_t capacity : {1u, 2u, 5u}) {
        csp::work_stealing_pool pool(2);
        auto ch = csp::make_channel<tagged>(capacity);
        auto idle = csp::make_channel<tagged>(capacity);  // never sent to or received from
        constexpr int goroutine_senders = 3, select_senders = 2, thread_senders = 2, receivers = 4;
        constexpr long count = 3000;
        constexpr int senders = goroutine_senders + select_senders + thread_senders;
        csp::wait_group sent, received;
        sent.add(goroutine_senders + select_senders);
        received.add(receivers);
        std::vector<std::vector<tagged>> got(receivers + 1);
        for (int i = 0; i < goroutine_senders; ++i) csp::spawn(pool, blocking_sender(ch, i, count, &sent));
        for (int i = 0; i < select_senders; ++i)
            csp::spawn(pool, select_sender(ch, idle, goroutine_senders + i, count, &sent));
        for (int r = 0; r < receivers; ++r) csp::spawn(pool, mixed_receiver(ch, idle, &got[std::size_t(r)], &received));
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_senders; ++t)
            threads.emplace_back([&, t] {  // non-blocking sends from outside the pool
                int id = goroutine_senders + select_senders + t;
                for (long i = 0; i < count;) {
                    if (ch.try_send(tagged{id, i}) == csp::chan_status::ok) ++i;
                    else std::this_thread::yield();
                }
            });
        std::thread thief([&] {  // non-blocking receives from outside the pool, until the close
            for (;;) {
                auto r = ch.try_recv();
                if (r.status == csp::chan_status::closed) return;
                if (r) got[receivers].push_back(*r.value);
                else std::this_thread::yield();
            }
        });
        for (auto& t : threads) t.join();
        csp::sync_wait(sent.wait());
        ch.close();
        thief.join();
        csp::sync_wait(received.wait());

        std::vector<std::vector<int>> seen(senders, std::vector<int>(count, 0));
        for (auto& list : got) {
            std::array<long, senders> last;
            last.fill(-1);
            for (const tagged& t : list) {
                REQUIRE(t.sender >= 0);  // nothing from the idle channel
                ++seen[std::size_t(t.sender)][std::size_t(t.seq)];
                REQUIRE(t.seq > last[std::size_t(t.sender)]);  // FIFO per sender
                last[std::size_t(t.sender)] = t.seq;
            }
        }
        for (auto& s : seen)
            for (int n : s) REQUIRE(n == 1);
        REQUIRE(ch.size() == 0);
    }
}

TEST_CASE("a receiver parked on an empty buffered channel gets the next value, not a lock-free receiver that came "
          "later") {
    // Deterministic: on a run_loop, R1 parks; then a plain try_recv (the
    // lock-free path) must not take the value that a later send hands to R1.
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(4);
    std::optional<int> r1;
    auto receiver = [&]() -> csp::task<> { r1 = co_await ch.recv(); };
    csp::spawn(loop, receiver());
    loop.run_until_idle();
    REQUIRE_FALSE(r1);
    REQUIRE(ch.try_send(7) == csp::chan_status::ok);  // handed to R1 (G1 sends it to the locked path)
    REQUIRE(ch.try_recv().status == csp::chan_status::would_block);
    loop.run_until_idle();
    REQUIRE(r1 == 7);
    REQUIRE(ch.try_send(8) == csp::chan_status::ok);  // nobody parked: into the buffer, lock-free
    REQUIRE(ch.size() == 1);
    REQUIRE(ch.try_recv().value == 8);
}

TEST_CASE("a sender parked on a full buffered channel is not overtaken by a later lock-free send") {
    csp::run_loop loop;
    auto ch = csp::make_channel<int>(2);
    REQUIRE(ch.try_send(1) == csp::chan_status::ok);
    REQUIRE(ch.try_send(2) == csp::chan_status::ok);
    bool sent = false;
    auto sender = [&]() -> csp::task<> {
        co_await ch.send(3);
        sent = true;
    };
    csp::spawn(loop, sender());
    loop.run_until_idle();
    REQUIRE_FALSE(sent);
    REQUIRE(ch.try_recv().value == 1);  // frees a slot: the parked sender's 3 moves in
    REQUIRE(ch.try_send(4) == csp::chan_status::would_block);  // full again, 4 may not overtake 3
    loop.run_until_idle();
    REQUIRE(sent);
    REQUIRE(ch.try_recv().value == 2);
    REQUIRE(ch.try_recv().value == 3);
    REQUIRE(ch.try_send(4) == csp::chan_status::ok);
    REQUIRE(ch.try_recv().value == 4);
}

// Go's TestNonblockRecvRace, TestNonblockSelectRace and TestNonblockSelectRace2
// (runtime/chan_test.go): a select with a default case must not choose the
// default while one of its channels is ready throughout, even though the
// other side changes the channels through their lock-free paths meanwhile.
namespace {

constexpr int nonblock_rounds = 1000;

// The goroutine's side: reports on `done` whether a channel case fired.
csp::task<> select_with_default(csp::channel<int> c1, csp::channel<int> c2, csp::channel<bool> done) {
    auto r = co_await csp::select(c1.recv(), c2.recv(), csp::default_case);
    co_await done.send(r.index() != 2);
}

csp::task<> recv_with_default(csp::channel<int> c, csp::channel<bool> done) {
    auto r = co_await csp::select(c.recv(), csp::default_case);
    co_await done.send(r.index() == 0);
}

}  // namespace

TEST_CASE("a select with default never chooses the default while its buffered channel holds a value or is closed "
          "(Go's TestNonblockRecvRace)") {
    csp::work_stealing_pool pool(2);
    auto done = csp::make_channel<bool>(1);
    for (int i = 0; i < nonblock_rounds; ++i) {
        auto c = csp::make_channel<int>(1);
        REQUIRE(c.try_send(1) == csp::chan_status::ok);
        csp::spawn(pool, recv_with_default(c, done));
        c.close();
        (void)c.try_recv();  // <-c: the value, or (if the select took it) closed
        REQUIRE(csp::sync_wait(done.recv()) == std::optional<bool>(true));
    }
}

TEST_CASE("a select with default over two channels never chooses the default while one of them is ready throughout "
          "(Go's TestNonblockSelectRace and TestNonblockSelectRace2)") {
    csp::work_stealing_pool pool(2);
    auto done = csp::make_channel<bool>(1);
    for (int i = 0; i < nonblock_rounds; ++i) {
        bool closing = i % 2 == 1;  // Race2: c2 unbuffered and closed instead of filled
        auto c1 = csp::make_channel<int>(1);
        auto c2 = csp::make_channel<int>(closing ? 0 : 1);
        REQUIRE(c1.try_send(1) == csp::chan_status::ok);
        csp::spawn(pool, select_with_default(c1, c2, done));
        if (closing) c2.close();
        else REQUIRE(c2.try_send(1) == csp::chan_status::ok);
        (void)c1.try_recv();  // select { case <-c1: default: }
        REQUIRE(csp::sync_wait(done.recv()) == std::optional<bool>(true));
    }
}
