// bench/fanout.cpp - a fan-out through one buffered channel, with compute per item: the
// workload that keeps contention affinity honest (docs/runtime.md). Affinity gathers the
// goroutines that fight over a busy channel on one worker; that must not also gather
// consumers that compute and would rather have a core each.
//
//   bench_fanout <producers> <consumers> <items> <work>    (CSP_THREADS workers, default 2)
//
// P producers send `items` integers (split between them) into a channel of capacity 1024;
// C consumers receive them and run `work` dependent multiply-adds on each. Prints
// "fanout <ms> ms". Examples used in docs/runtime.md: `2 4 400000 500` (compute-bound),
// `2 4 200000 2000` (more so), `8 8 1000000 50` (channel-bound).
#include <csp/csp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

using i64 = std::int64_t;
std::atomic<i64> checksum{0};

csp::task<> producer(csp::channel<i64> ch, i64 n, csp::wait_group* done) {
    for (i64 i = 0; i < n; ++i) co_await ch.send(i);
    done->done();
}

csp::task<> consumer(csp::channel<i64> ch, int work, csp::wait_group* done) {
    i64 acc = 0;
    while (auto v = co_await ch.recv()) {
        auto x = std::uint64_t(*v);
        for (int k = 0; k < work; ++k) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        acc += i64(x & 0xffff);
    }
    checksum += acc;
    done->done();
}

csp::task<> fan_out(int producers, int consumers, i64 items, int work) {
    auto ch = csp::make_channel<i64>(1024);
    csp::wait_group sent, received;
    sent.add(producers);
    received.add(consumers);
    for (int i = 0; i < consumers; ++i) csp::go(consumer(ch, work, &received));
    for (int i = 0; i < producers; ++i) csp::go(producer(ch, items / producers, &sent));
    co_await sent.wait();
    ch.close();
    co_await received.wait();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s <producers> <consumers> <items> <work>\n", argv[0]);
        return 2;
    }
    const int producers = std::atoi(argv[1]), consumers = std::atoi(argv[2]), work = std::atoi(argv[4]);
    const i64 items = std::atoll(argv[3]);
    if (producers < 1 || consumers < 1 || items < producers || work < 0) {
        std::fprintf(stderr, "producers and consumers at least 1, items at least producers, work at least 0\n");
        return 2;
    }
    std::size_t threads = 2;
    if (const char* t = std::getenv("CSP_THREADS")) threads = std::size_t(std::strtoul(t, nullptr, 10));
    const auto t0 = std::chrono::steady_clock::now();
    csp::run(csp::run_options{.threads = threads}, fan_out(producers, consumers, items, work));
    const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - t0;
    std::printf("fanout %.1f ms (checksum %lld)\n", elapsed.count(), static_cast<long long>(checksum.load()));
    return 0;
}
