// A TCP echo server: one goroutine per connection, as a Go programmer would
// write it. Reads and writes look blocking; they suspend only the goroutine.
//
//   example_echo_server [address:port] [max_connections] [threads]
//
// Defaults: 127.0.0.1:0 (an ephemeral port), serve forever, one worker per
// core. It prints "listening on ADDRESS" first, so a script can find the port.
// With max_connections it exits once that many connections have come and gone.
#include <csp/csp.hpp>

#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

using csp::net::tcp_listener;
using csp::net::tcp_stream;

csp::task<> echo(tcp_stream conn, csp::wait_group& finished) {
    conn.set_no_delay();
    try {
        char buf[4096];
        while (std::size_t n = co_await conn.read(std::span(buf))) co_await conn.write_all(std::span(buf, n));
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "connection ended: %s\n", e.what());  // e.g. reset by the peer
    }
    finished.done();
}

int main(int argc, char** argv) {
    std::string at = argc > 1 ? argv[1] : "127.0.0.1:0";
    long max_connections = argc > 2 ? std::atol(argv[2]) : -1;  // -1: forever
    csp::run_options options;
    if (argc > 3) options.threads = std::size_t(std::atoi(argv[3]));
    return csp::run(options, [&]() -> csp::task<int> {
        auto listener = tcp_listener::bind(csp::net::address::parse(at));
        std::printf("listening on %s\n", listener.local_address().to_string().c_str());
        std::fflush(stdout);
        csp::wait_group finished;
        for (long served = 0; max_connections < 0 || served < max_connections; ++served) {
            tcp_stream conn = co_await listener.accept();
            finished.add(1);
            csp::go(echo(std::move(conn), finished));
        }
        co_await finished.wait();  // let the last connections finish
        co_return 0;
    });
}
