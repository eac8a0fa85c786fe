// A load generator for echo servers: C connections, each doing 64-byte round
// trips (write 64 bytes, read the 64 back, check them) as fast as it can for
// a fixed time. Prints the round trips per second. It is also the client of
// benchmark W9 (bench/w9.sh), the same for every server measured.
//
//   example_echo_client address:port [connections=50] [seconds=1] [threads]
//
// With seconds=0 each connection does exactly 100 round trips (a smoke test).
#include <csp/csp.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

using csp::net::tcp_stream;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s address:port [connections] [seconds] [threads]\n", argv[0]);
        return 2;
    }
    auto server = csp::net::address::parse(argv[1]);
    int connections = argc > 2 ? std::atoi(argv[2]) : 50;
    double seconds = argc > 3 ? std::atof(argv[3]) : 1.0;
    csp::run_options options;
    if (argc > 4) options.threads = std::size_t(std::atoi(argv[4]));

    std::atomic<long> round_trips{0};
    auto start = csp::clock::now();
    auto deadline = start + std::chrono::duration_cast<csp::clock::duration>(std::chrono::duration<double>(seconds));
    int failures = csp::run(options, [&]() -> csp::task<int> {
        csp::wait_group wg;
        std::atomic<int> failed{0};
        for (int c = 0; c < connections; ++c) {
            wg.add(1);
            csp::go([&, c]() -> csp::task<> {
                try {
                    tcp_stream s = co_await tcp_stream::connect(server);
                    s.set_no_delay();
                    char msg[64], back[64];
                    for (int i = 0; i < 64; ++i) msg[i] = char('A' + (c + i) % 26);
                    for (long i = 0; seconds > 0 ? csp::clock::now() < deadline : i < 100; ++i) {
                        co_await s.write_all(std::span<const char>(msg));
                        co_await s.read_exact(std::span(back));
                        if (std::memcmp(msg, back, sizeof msg) != 0) throw std::runtime_error("echo mismatch");
                        round_trips.fetch_add(1, std::memory_order_relaxed);
                    }
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "connection %d: %s\n", c, e.what());
                    failed.fetch_add(1);
                }
                wg.done();
            });
        }
        co_await wg.wait();
        co_return failed.load();
    });
    double elapsed = std::chrono::duration<double>(csp::clock::now() - start).count();
    std::printf("%d connections, %ld round trips in %.3f s: %.0f round trips/s\n", connections, round_trips.load(),
                elapsed, double(round_trips.load()) / elapsed);
    return failures == 0 ? 0 : 1;
}
